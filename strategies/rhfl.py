"""``rhfl``: RHFL, robust heterogeneous FL against noisy clients.

Paper: Fang & Ye, "Robust Federated Learning with Noisy and Heterogeneous Clients", CVPR 2022
(official code github.com/FangXiuwen/Robust_HFL; also MarsFL's ``RHFLSever``). Each round:

1. *Client confidence re-weighting*: from each client's mean private loss in the last two rounds'
   local training, quality q_i = (L_i^{prev} - L_i^{cur}) / L_i^{cur}; a_i = 1/(K-1) + beta * q_i / sum_j q_j
   (beta = 0.5); w = softmax(a) over the K clients. Before two losses exist, w_i = 1/(K-1): the weights
   first move in round 3, after two local phases, as in MarsFL (local update before the server step).
2. *Heterogeneous alignment* on public data: every client's softmax outputs on the public batches;
   client k takes one Adam step per batch (fresh optimiser, as the official loop) on
   sum_{i != k} w_i KL(p_i || p_k). The server sends t_k = sum_{i != k} w_i p_i, an unnormalised mixture:
   F.kl_div(log p_k, t_k) differs from the weighted sum of KLs by a constant only, so the gradient is
   identical.
3. *Local learning* with symmetric cross-entropy (trainer ``sce``, alpha 0.1 / beta 1.0, set in the config's
   ``trainer`` section; a warning is logged for another trainer). Its mean loss feeds step 1.

Departures / unknowns: when sum_j q_j is (near) zero the quality term is dropped instead of dividing by
zero (the official code would produce inf/nan). Targets come from one query of all public batches, then one
pass of steps (the official loop alternates per batch). The optimiser is the trainer's (MarsFL adds weight
decay 1e-3 to the public Adam; the original RHFL does not).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import torch

import fedsim.trainers.sce  # noqa: F401  (registers the "sce" trainer)
from fedsim.config import ranged
from fedsim.registry import STRATEGIES
from strategies.base import mean_of
from strategies.public import PublicConfig, PublicDataStrategy

log = logging.getLogger("fedsim")


@dataclass
class RHFLConfig(PublicConfig):
    name: str = "rhfl"
    #: strength of the quality term in the client-confidence weights (RHFL / MarsFL: 0.5)
    beta: float = ranged(0.5, 0.0, None)


def confidence_weights(prev: dict[int, float], cur: dict[int, float], pids: list[int],
                       beta: float = 0.5) -> dict[int, float]:
    """RHFL's client confidence: softmax over clients of 1/(K-1) + beta * q_i / sum_j q_j.

    q_i = (prev_i - cur_i) / cur_i is the relative decrease of client i's private loss (a client learning
    fast from clean data is trusted more). Without a loss pair for every client: uniform 1/(K-1).
    """
    base = 1.0 / max(len(pids) - 1, 1)
    if not all(p in prev and p in cur for p in pids):
        return {p: base for p in pids}
    quality = {p: (prev[p] - cur[p]) / max(cur[p], 1e-12) for p in pids}
    total = sum(quality.values())
    amount = {p: base + (beta * quality[p] / total if abs(total) > 1e-12 else 0.0) for p in pids}
    norm = sum(math.exp(a) for a in amount.values())
    return {p: math.exp(a) / norm for p, a in amount.items()}


def weighted_targets(probs: dict[int, torch.Tensor], weights: dict[int, float]) -> dict[int, torch.Tensor]:
    """t_k = sum_{i != k} w_i p_i for every client k with at least one peer."""
    return {k: sum(weights[i] * probs[i] for i in sorted(probs) if i != k) for k in probs if len(probs) > 1}


@STRATEGIES.register("rhfl")
class RHFL(PublicDataStrategy):
    """RHFL: confidence-weighted KL alignment on public data, then symmetric-CE local learning."""

    name = "rhfl"
    Config = RHFLConfig

    def __init__(self, scfg, ctx) -> None:
        super().__init__(scfg, ctx)
        self.prev_loss: dict[int, float] = {}
        self.cur_loss: dict[int, float] = {}

    def setup(self) -> None:
        super().setup()
        if self.cfg.trainer.get("name") != "sce":
            log.warning("rhfl: trainer is %r; RHFL's local loss is symmetric CE (trainer.name=sce)",
                        self.cfg.trainer.get("name"))

    def round(self, r: int) -> dict[str, float]:
        pids = self.ctx.sample(r)
        outs = self.public_outputs(r, pids, ("probs",), bn_mode=self.scfg.bn_mode)
        self.weights = confidence_weights(self.prev_loss, self.cur_loss, sorted(outs), self.scfg.beta)
        targets = weighted_targets({p: o["probs"] for p, o in outs.items()}, self.weights)
        collab = mean_of(self.distill(r, targets, "kl", fresh_optimizer=True), "distill_loss") if targets \
            else float("nan")
        replies = self.ctx.broadcast("train", r, pids)
        for pid, rep in replies.items():
            if pid in self.cur_loss:
                self.prev_loss[pid] = self.cur_loss[pid]
            self.cur_loss[pid] = float(rep.metrics["train_loss"])
        return {"train_loss": mean_of(replies, "train_loss"), "collab_loss": collab}

    def evaluate(self, r: int) -> dict[int, dict[str, float]]:
        per_client = super().evaluate(r)
        for pid, w in getattr(self, "weights", {}).items():
            per_client.setdefault(pid, {})["confidence_weight"] = w
        return per_client

    def state_dict(self) -> dict[str, Any]:
        return {"prev_loss": dict(self.prev_loss), "cur_loss": dict(self.cur_loss)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.prev_loss = {int(k): float(v) for k, v in state.get("prev_loss", {}).items()}
        self.cur_loss = {int(k): float(v) for k, v in state.get("cur_loss", {}).items()}


__all__ = ["RHFL", "RHFLConfig", "confidence_weights", "weighted_targets"]
