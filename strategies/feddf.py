"""``feddf``: FedDF, ensemble distillation of the clients' models on unlabelled proxy data.

Paper: Lin, Kong, Stich, Jaggi, "Ensemble Distillation for Robust Model Fusion in Federated Learning",
NeurIPS 2020 (arXiv 2006.07242). Each round clients first train locally on private data; then every
client's logits on the round's public batches are averaged into the ensemble, whose softened output
``softmax(mean_j z_j / T)`` is the distillation target; each client takes ``distill_epochs`` passes of
KL(target || softmax(z_k)) over the public batches (one Adam optimiser per round).

Departures: FedDF averages the weights of each architecture's clients into a prototype and distils into
that fused model on the server; with RAHFL's one-client-per-architecture setting the fused prototype of an
architecture is the client's own model, so the client distils its own model (no weights travel).
FedDF stops distillation early on a validation set; here the number of passes is fixed. ``temperature``
softens the target only (the student side uses T = 1; with the default T = 1 this is FedDF's loss).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fedsim.config import ranged
from fedsim.registry import STRATEGIES
from strategies.base import mean_of
from strategies.public import PublicConfig, PublicDataStrategy, mean_stack


@dataclass
class FedDFConfig(PublicConfig):
    name: str = "feddf"
    #: passes over the public batches toward the ensemble per round
    distill_epochs: int = ranged(1, 1, None)
    #: temperature of the ensemble's softmax (target side)
    temperature: float = ranged(1.0, 1e-3, None)


def ensemble_target(outputs: dict[int, dict[str, torch.Tensor]], temperature: float = 1.0) -> torch.Tensor:
    """softmax(mean of all clients' logits / T): FedDF's averaged-logit ensemble."""
    return (mean_stack([outputs[pid]["logits"] for pid in sorted(outputs)]) / temperature).softmax(1)


@STRATEGIES.register("feddf")
class FedDF(PublicDataStrategy):
    """FedDF: local training, then KL distillation toward the clients' averaged-logit ensemble."""

    name = "feddf"
    Config = FedDFConfig

    def round(self, r: int) -> dict[str, float]:
        pids = self.ctx.sample(r)
        metrics = self.local_train(r, pids)
        outs = self.public_outputs(r, pids, ("logits",), bn_mode=self.scfg.bn_mode)
        loss = float("nan")
        if outs:
            target = ensemble_target(outs, self.scfg.temperature)
            loss = mean_of(self.distill(r, {pid: target for pid in outs}, "kl", self.scfg.distill_epochs),
                           "distill_loss")
        return {**metrics, "distill_loss": loss}


__all__ = ["FedDF", "FedDFConfig", "ensemble_target"]
