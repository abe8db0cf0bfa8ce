"""Plain supervised training: cross-entropy on (optionally flip/crop-augmented) private images.

The default local trainer of ``fedavg`` and ``local``, and the pre-training phase of RAHFL.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fedsim.data.base import ImageSet
from fedsim.registry import TRAINERS
from fedsim.trainers.base import Regularizer, Trainer, TrainerConfig, normalise


@dataclass
class SupervisedConfig(TrainerConfig):
    name: str = "supervised"
    #: random crop (pad 4) + horizontal flip on each batch
    augment: bool = False


def flip_crop(x: torch.Tensor, g: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Per-image random crop with reflect padding of ``pad`` pixels, then a random horizontal flip."""
    n, _, h, w = x.shape
    xp = F.pad(x.float(), (pad, pad, pad, pad), mode="reflect")
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=g).tolist()
    flips = (torch.rand(n, generator=g) < 0.5).tolist()
    out = torch.stack([xp[i, :, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(offsets)])
    out[flips] = out[flips].flip(-1)
    return out.to(x.dtype)


@TRAINERS.register("supervised")
class SupervisedTrainer(Trainer):
    """Cross-entropy on the private labels (plus any strategy regulariser)."""

    name = "supervised"
    Config = SupervisedConfig

    def loss(self, x: torch.Tensor, y: torch.Tensor, data: ImageSet, g: torch.Generator,
             regularizer: Regularizer | None) -> torch.Tensor:
        if self.cfg.augment:
            x = flip_crop(x, g)
        logits, feats = self.model.forward_all(normalise(x, data))
        loss = F.cross_entropy(logits, y)
        if regularizer is not None:
            loss = loss + regularizer(self.model, x, y, logits, feats)
        return loss
