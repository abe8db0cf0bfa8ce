"""``fedmd``: FedMD, heterogeneous FL by model distillation on a shared public set.

Paper: Li & Wang, "FedMD: Heterogenous Federated Learning via Model Distillation", NeurIPS 2019 FL
workshop (arXiv 1910.03581). Each round every client computes its class scores (logits) on the round's
public batches; the server averages them over all participating clients into a *consensus*; every client
then *digests* it (``digest_epochs`` passes over the public batches minimising the L1 distance of its
logits to the consensus, FedMD's mean-absolute-error step, one Adam optimiser per round) and *revisits*
its private data (the client's trainer for ``local_epochs``). No weights travel.

Departures: FedMD starts with transfer learning on a *labelled* public set; RAHFL's public set is unlabelled,
so fedsim's round-0 model (``pretrain_epochs`` of CE on private data) takes that role, as in RAHFL's
comparison. FedMD draws a fresh random public subset per round; here ``public_batches`` (0 = the whole
set) batches of a per-round seeded shuffle are used, with the same augmentation for every client. Logits
come from BatchNorm in ``bn_mode`` (default ``train``, as RAHFL's public phase).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fedsim.config import ranged
from fedsim.registry import STRATEGIES
from strategies.base import mean_of
from strategies.public import PublicConfig, PublicDataStrategy, mean_stack


@dataclass
class FedMDConfig(PublicConfig):
    name: str = "fedmd"
    #: passes over the public batches toward the consensus per round (FedMD's "digest")
    digest_epochs: int = ranged(1, 1, None)


def consensus(outputs: dict[int, dict[str, torch.Tensor]], key: str = "logits") -> torch.Tensor:
    """FedMD's consensus: the plain mean of every client's class scores on the public batches."""
    return mean_stack([outputs[pid][key] for pid in sorted(outputs)])


@STRATEGIES.register("fedmd")
class FedMD(PublicDataStrategy):
    """FedMD: digest the clients' mean public logits (L1), then revisit private data."""

    name = "fedmd"
    Config = FedMDConfig

    def round(self, r: int) -> dict[str, float]:
        pids = self.ctx.sample(r)
        outs = self.public_outputs(r, pids, ("logits",), bn_mode=self.scfg.bn_mode)
        digest = float("nan")
        if outs:
            target = consensus(outs)
            digest = mean_of(self.distill(r, {pid: target for pid in outs}, "l1", self.scfg.digest_epochs),
                             "distill_loss")
        return {**self.local_train(r, pids), "digest_loss": digest}


__all__ = ["FedMD", "FedMDConfig", "consensus"]
