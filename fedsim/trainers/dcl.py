"""RAHFL's client-local learning: CE + AugMix-JSD + DCL (Fang, Ye, Du, TPAMI 2025; arXiv 2503.09206).

DCL (Diversity-enhanced supervised Contrastive Learning) makes features robust to corrupted private
images. Per batch of private images (``shared/specs/rahfl.md`` §4)::

    x0 = base view (reflect-pad 4, crop, flip);  x1, x2 = two AugMix mixtures of x0;
    x3 = weak SimCLR-style view of the image
    logits = model([x0; x1; x2])            (one forward; BatchNorm sees the 3B batch)
    f      = normalise(backbone([x0; x1; x3]))   (a second backbone forward, as the official code)
    L = CE(logits0, y) + 12 * JSD(p0, p1, p2) + SupCon({f0, f3}) + beta * L_sim(f0, f3, f1)

``mode`` selects the last part: ``dcl`` (above), ``supcon`` (the code's plain SupCon on {f0, f1}
instead of DCL) or ``jsd`` (CE + JSD only: AugMix training as AugHFL's local learning, registered
also as the ``augmix_jsd`` trainer; no feature forward is made then).

Departures from the official code (github.com/FangXiuwen/RAHFL, ``HHF/RAHFL.py``, ``loss.py``):

* Augmentation runs on uint8 tensors with a seeded generator (``fedsim.data.augment``), batched,
  instead of per-sample PIL transforms in DataLoader workers; AugMix is our reimplementation of the
  Hendrycks 9-op variant. The base view omits the code's no-op ``ColorJitter()``.
* The "backbone" features are the FedModel's penultimate features (``model.features``); the
  official models' projector output is unused by every RAHFL loss, so nothing is lost.
* ``supcon`` mode makes the same two forwards as ``dcl`` (x3 included in the feature batch) so
  BatchNorm statistics do not depend on the mode; the official code's choice here is unknown.
* An optional strategy regulariser is called as ``regularizer(model, x0, y, logits0, feats0)``,
  with ``x0`` the normalised float base view and ``feats0`` its features from the logits forward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fedsim.data.augment import augmix, base_view, hflip_ok, weak_view
from fedsim.data.base import ImageSet
from fedsim.errors import ConfigError
from fedsim.registry import TRAINERS
from fedsim.trainers.base import Regularizer, Trainer, TrainerConfig, normalise
from fedsim.trainers.losses import dcl_loss, jsd, supcon

MODES = ("dcl", "supcon", "jsd")


@dataclass
class DCLConfig(TrainerConfig):
    name: str = "dcl"
    #: dcl = CE + JSD + SupCon + beta * L_sim; supcon = CE + JSD + SupCon{x0, x1}; jsd = CE + JSD
    mode: str = "dcl"
    jsd_weight: float = 12.0
    supcon_temperature: float = 0.2
    base_temperature: float = 0.07
    beta: float = 1.0
    sim_temperature: float = 0.2
    augmix_width: int = 3
    augmix_depth_min: int = 1
    augmix_depth_max: int = 3
    augmix_severity: float = 3.0
    augmix_alpha: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"trainer.mode: unknown {self.mode!r}; choose one of {list(MODES)}")
        if not 1 <= self.augmix_depth_min <= self.augmix_depth_max:
            raise ConfigError("trainer.augmix_depth_min/max: need 1 <= min <= max, got "
                              f"{self.augmix_depth_min}, {self.augmix_depth_max}")
        if self.augmix_width < 1:
            raise ConfigError(f"trainer.augmix_width: must be >= 1, got {self.augmix_width}")
        if not 0.1 < self.augmix_severity <= 10:
            raise ConfigError(f"trainer.augmix_severity: must be in (0.1, 10], got {self.augmix_severity}")
        for key in ("supcon_temperature", "base_temperature", "sim_temperature", "augmix_alpha"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"trainer.{key}: must be > 0, got {getattr(self, key)}")


@dataclass
class AugMixJSDConfig(DCLConfig):
    name: str = "augmix_jsd"
    mode: str = "jsd"


@TRAINERS.register("dcl")
class DCLTrainer(Trainer):
    """RAHFL local learning: CE + 12 * AugMix-JSD + DCL (SupCon + similarity-distribution KL)."""

    name = "dcl"
    Config = DCLConfig
    cfg: DCLConfig

    def _augmix(self, x0: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        c = self.cfg
        return augmix(x0, g, c.augmix_width, (c.augmix_depth_min, c.augmix_depth_max), c.augmix_severity,
                      c.augmix_alpha)

    def loss(self, x: torch.Tensor, y: torch.Tensor, data: ImageSet, g: torch.Generator,
             regularizer: Regularizer | None) -> torch.Tensor:
        c = self.cfg
        dev = next(self.model.parameters()).device  # views are drawn on the CPU (seeded), then moved
        y = y.to(dev)
        x0 = base_view(x, g, hflip=hflip_ok(data))
        x1, x2 = self._augmix(x0, g), self._augmix(x0, g)
        x0f, x1f = normalise(x0, data).to(dev), normalise(x1, data).to(dev)
        logits, feats = self.model.forward_all(torch.cat([x0f, x1f, normalise(x2, data).to(dev)]))
        l0, l1, l2 = logits.chunk(3)
        loss = F.cross_entropy(l0, y) + c.jsd_weight * jsd(*(F.softmax(t, dim=1) for t in (l0, l1, l2)))
        if c.mode != "jsd":
            x3 = weak_view(x, g, hflip=hflip_ok(data))
            f = F.normalize(self.model.features(torch.cat([x0f, x1f, normalise(x3, data).to(dev)])), dim=1)
            f0, f1, f3 = f.chunk(3)
            if c.mode == "dcl":
                loss = loss + dcl_loss(f0, f3, f1, y, c.supcon_temperature, c.base_temperature, c.beta,
                                       c.sim_temperature)
            else:
                loss = loss + supcon(torch.stack([f0, f1], 1), y, c.supcon_temperature, c.base_temperature)
        if regularizer is not None:
            loss = loss + regularizer(self.model, x0f, y, l0, feats[: len(y)])
        return loss


@TRAINERS.register("augmix_jsd")
class AugMixJSDTrainer(DCLTrainer):
    """AugHFL local learning: CE + 12 * AugMix-JSD (DCLTrainer in ``jsd`` mode)."""

    name = "augmix_jsd"
    Config = AugMixJSDConfig
