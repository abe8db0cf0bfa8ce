"""Plain supervised training: cross-entropy on (optionally flip/crop-augmented) private images.

The default local trainer of ``fedavg`` and ``local``, and the pre-training phase of RAHFL.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fedsim.data.augment import base_view, hflip_ok
from fedsim.data.base import ImageSet
from fedsim.registry import TRAINERS
from fedsim.trainers.base import Regularizer, Trainer, TrainerConfig, normalise


@dataclass
class SupervisedConfig(TrainerConfig):
    name: str = "supervised"
    #: random crop (pad 4) + horizontal flip on each batch
    augment: bool = False


@TRAINERS.register("supervised")
class SupervisedTrainer(Trainer):
    """Cross-entropy on the private labels (plus any strategy regulariser)."""

    name = "supervised"
    Config = SupervisedConfig

    def criterion(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The supervised loss; a variant (e.g. SCE) overrides only this."""
        return F.cross_entropy(logits, y)

    def loss(self, x: torch.Tensor, y: torch.Tensor, data: ImageSet, g: torch.Generator,
             regularizer: Regularizer | None) -> torch.Tensor:
        if self.cfg.augment:
            x = base_view(x, g, hflip=hflip_ok(data))
        xf = normalise(x, data)
        logits, feats = self.model.forward_all(xf)
        loss = self.criterion(logits, y)
        if regularizer is not None:
            loss = loss + regularizer(self.model, xf, y, logits, feats)
        return loss
