"""Containers shared by every image data source, partitioner and trainer.

Images are kept as ``uint8`` tensors of shape ``(N, 3, H, W)``: the form torchvision's v2 transforms
(AugMix, crops, flips) accept, and the form corruptions are applied to. Trainers convert batches to
normalised floats with :func:`to_float`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ImageSet:
    """A labelled (or unlabelled: ``y`` is -1) set of uint8 images with its normalisation."""

    x: torch.Tensor  # uint8, (N, 3, H, W)
    y: torch.Tensor  # int64, (N,); -1 where unlabelled
    num_classes: int
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.x.dtype != torch.uint8 or self.x.ndim != 4 or self.x.shape[1] != 3:
            raise ValueError(f"ImageSet.x must be uint8 (N,3,H,W), got {self.x.dtype} {tuple(self.x.shape)}")
        if len(self.x) != len(self.y):
            raise ValueError(f"ImageSet: {len(self.x)} images but {len(self.y)} labels")

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx: torch.Tensor | list[int]) -> ImageSet:
        idx = torch.as_tensor(idx, dtype=torch.long)
        return ImageSet(self.x[idx], self.y[idx], self.num_classes, self.mean, self.std, dict(self.meta))

    def with_images(self, x: torch.Tensor) -> ImageSet:
        return ImageSet(x, self.y, self.num_classes, self.mean, self.std, dict(self.meta))


def to_float(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 (N,3,H,W) -> normalised float32."""
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x.float() / 255.0 - m) / s


@dataclass
class ClientData:
    """Everything one client holds: private train split, selection split, test sets, public set."""

    train: ImageSet
    val: ImageSet | None = None  # held-out selection split (RAHFL's quality query)
    test_clean: ImageSet | None = None
    test_corrupt: ImageSet | None = None
    public: ImageSet | None = None  # unlabelled, identical on every client
