"""``fccl``: FCCL, federated cross-correlation learning with non-forgetting distillation.

Paper: Huang, Ye, Du, "Learn from Others and Be Yourself in Heterogeneous Federated Learning", CVPR 2022
(official code github.com/WenkeHuang/FCCL; the same authors' FCCL+ lives in MarsFL). Each round:

1. *Cross-correlation learning* on the round's public batches: every client's logits are collected; client
   k's target is the mean logits (of all clients, as the official code; ``target: others`` leaves k out).
   With both batches standardised per class dimension over the batch, the cross-correlation matrix
   C = z_k^T z_bar / B is pushed toward the identity: sum_u (1 - C_uu)^2 + 0.0051 sum_{u != v} C_uv^2
   (loss ``fccl`` of :mod:`fedsim.trainers.distill`). One Adam step per public batch with a fresh optimiser,
   as the official loop.
2. *Federated non-forgetting distillation* during local training: CE (the client's trainer) plus
   KL toward the post-collaboration model (inter-domain knowledge) and toward the pre-trained model
   (intra-domain knowledge, fedsim's round-0 weights), regulariser ``fccl_nfd`` of
   :mod:`fedsim.actions_extra`.

Departures / unknowns: the official code computes the loss on the forward that produced the targets; here
the targets come from one query and the step makes a second forward (same weights, same batch). The
distillation temperature (``nfd_temperature``, default 1) and the equal weights of the two teachers are
our reading of the paper. FCCL needs pre-trained clients: with ``pretrain_epochs: 0`` the intra-domain
teacher is the random initialisation (a warning is logged).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

import fedsim.actions_extra  # noqa: F401  (registers the fccl_nfd regulariser in every process loading strategies)
from fedsim.config import choice, ranged
from fedsim.registry import STRATEGIES
from strategies.base import mean_of
from strategies.public import PublicConfig, PublicDataStrategy, mean_stack

log = logging.getLogger("fedsim")


@dataclass
class FCCLConfig(PublicConfig):
    name: str = "fccl"
    #: whose logits make client k's cross-correlation target: ``all`` (official code) or ``others``
    target: str = choice("all", "others")
    #: temperature of the non-forgetting distillation
    nfd_temperature: float = ranged(1.0, 1e-3, None)
    #: weight of the KL toward the post-collaboration model
    nfd_inter: float = ranged(1.0, 0.0, None)
    #: weight of the KL toward the pre-trained (round-0) model
    nfd_intra: float = ranged(1.0, 0.0, None)


def correlation_targets(outputs: dict[int, dict[str, torch.Tensor]],
                        include_self: bool) -> dict[int, torch.Tensor]:
    """Per client, the mean logits of all clients (``include_self``) or of the other clients."""
    targets = {}
    for k in outputs:
        peers = [outputs[j]["logits"] for j in sorted(outputs) if include_self or j != k]
        if peers:
            targets[k] = mean_stack(peers)
    return targets


@STRATEGIES.register("fccl")
class FCCL(PublicDataStrategy):
    """FCCL: cross-correlation alignment on public logits, then local CE + non-forgetting distillation."""

    name = "fccl"
    Config = FCCLConfig

    def setup(self) -> None:
        super().setup()
        if self.cfg.pretrain_epochs == 0:
            log.warning("fccl: pretrain_epochs=0, so the intra-domain teacher is the random initialisation")

    def round(self, r: int) -> dict[str, float]:
        pids = self.ctx.sample(r)
        outs = self.public_outputs(r, pids, ("logits",), bn_mode=self.scfg.bn_mode)
        targets = correlation_targets(outs, self.scfg.target == "all")
        collab = mean_of(self.distill(r, targets, "fccl", fresh_optimizer=True), "distill_loss") if targets \
            else float("nan")
        conf = {"regularizer": "fccl_nfd", "nfd-temperature": self.scfg.nfd_temperature,
                "nfd-inter": self.scfg.nfd_inter, "nfd-intra": self.scfg.nfd_intra}
        return {**self.local_train(r, pids, conf), "collab_loss": collab}


__all__ = ["FCCL", "FCCLConfig", "correlation_targets"]
