"""``fedproto``: FedProto, federated prototype learning (no public data, no weights travel).

Paper: Tan, Long, Liu, Zhou, Lu, Jiang, Zhang, "FedProto: Federated Prototype Learning across Heterogeneous
Clients", AAAI 2022 (arXiv 2105.00243). Each round every client trains locally with its trainer's loss
plus lambda * MSE between each sample's embedding and the global prototype of its class (regulariser
``fedproto``; skipped in the first round, when no global prototypes exist yet). Then each client sends its
per-class mean embeddings and class counts (``query.prototypes``), and the server forms the global
prototype of class c as the count-weighted mean sum_k n_kc p_kc / sum_k n_kc; classes no client holds are
marked absent and not regularised.

Departures: heterogeneous architectures have different feature sizes, so embeddings are the models'
shared-size projection ``proj(features)`` (the projector the official RAHFL models carry) rather than the
raw penultimate layer. Clients send prototypes computed in eval mode after training (FedProto averages the
embeddings seen during the last local epoch). Accuracy is that of the classifier head; FedProto's
nearest-prototype inference is not used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from flwr.app import ArrayRecord

from fedsim.config import ranged
from fedsim.registry import STRATEGIES
from strategies.base import FedsimStrategy, StrategyConfig, mean_of


@dataclass
class FedProtoConfig(StrategyConfig):
    name: str = "fedproto"
    #: weight of the prototype regulariser (FedProto's lambda)
    proto_lambda: float = ranged(1.0, 0.0, None)


def aggregate_prototypes(local: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Count-weighted global prototypes from ``[(prototypes (C, D), counts (C,)), ...]``.

    Returns (global prototypes (C, D), present (C,) as 0/1 floats).
    """
    protos = torch.stack([p for p, _ in local])
    counts = torch.stack([c for _, c in local]).to(protos)
    total = counts.sum(0)
    weighted = (protos * counts.unsqueeze(-1)).sum(0) / total.clamp(min=1).unsqueeze(-1)
    return weighted, (total > 0).to(protos)


@STRATEGIES.register("fedproto")
class FedProto(FedsimStrategy):
    """FedProto: local training pulled toward count-weighted global class prototypes."""

    name = "fedproto"
    Config = FedProtoConfig

    def __init__(self, scfg, ctx) -> None:
        super().__init__(scfg, ctx)
        self.prototypes: torch.Tensor | None = None
        self.present: torch.Tensor | None = None

    def round(self, r: int) -> dict[str, float]:
        pids = self.ctx.sample(r)
        conf: dict[str, Any] = {}
        arrays: dict[str, ArrayRecord] = {}
        if self.prototypes is not None:
            conf = {"regularizer": "fedproto", "proto-lambda": self.scfg.proto_lambda}
            arrays = {"prototypes": ArrayRecord({"prototypes": self.prototypes, "present": self.present})}
        replies = self.ctx.broadcast("train", r, pids, conf, arrays)
        protos = self.ctx.broadcast("query.prototypes", r, sorted(replies))
        local = [(t["prototypes"], t["counts"]) for t in (
            protos[p].tensors("prototypes") for p in sorted(protos))]
        if local:
            self.prototypes, self.present = aggregate_prototypes(local)
        return {"train_loss": mean_of(replies, "train_loss"),
                "classes_present": float(self.present.sum()) if self.present is not None else 0.0}

    def state_dict(self) -> dict[str, Any]:
        return {} if self.prototypes is None else {"prototypes": self.prototypes, "present": self.present}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "prototypes" in state:
            self.prototypes, self.present = state["prototypes"], state["present"]


__all__ = ["FedProto", "FedProtoConfig", "aggregate_prototypes"]
