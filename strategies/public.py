"""Shared machinery of the strategies that learn from each other on unlabelled public data.

RAHFL and the heterogeneous-model baselines (FedMD, FedDF, FCCL, RHFL, KT-pFL, AugHFL) all do:
ask clients for outputs on the same public batches, turn them into one target per client, have each
client take steps toward its target, and train locally. No weights travel. This module holds those
steps once; each method's module only says how targets are made and which loss the client uses.
Every client derives the identical augmented public batch from ``(round seed, batch index)``, so only
outputs cross the network (spec rahfl.md §7.4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from flwr.app import ArrayRecord

from fedsim.config import choice, ranged
from fedsim.data.augment import public_num_batches
from fedsim.server import ClientReply
from fedsim.trainers.base import seeded_generator
from strategies.base import FedsimStrategy, StrategyConfig, mean_of


@dataclass
class PublicConfig(StrategyConfig):
    #: public batches per round (0 = one pass over the public set, as the official code)
    public_batches: int = ranged(0, 0, None)
    #: BatchNorm mode for public outputs: ``train`` (official RAHFL: batch statistics) or ``eval``
    bn_mode: str = choice("train", "eval")
    public_augment: bool = True
    #: weight of the collaborative loss
    collab_weight: float = ranged(1.0, 0.0, None)


class PublicDataStrategy(FedsimStrategy):
    """Base of public-data collaboration; subclasses implement :meth:`round` with the helpers below."""

    Config = PublicConfig

    def setup(self) -> None:
        pub = self.cfg.data.public
        if pub.source == "none":
            from fedsim.errors import ConfigError

            raise ConfigError(f"data.public.source: strategy {self.scfg.name} needs public data; got 'none'")
        n = public_num_batches(pub.size, pub.batch_size)
        self.num_batches = min(n, self.scfg.public_batches) if self.scfg.public_batches else n

    def public_conf(self, r: int, **extra: Any) -> dict[str, Any]:
        seed = seeded_generator(self.cfg.seed, "public-round", r).initial_seed()
        return {"public-batch-size": self.cfg.data.public.batch_size, "public-seed": seed,
                "public-augment": self.scfg.public_augment, **extra}

    # -- steps ------------------------------------------------------------------------------------
    def public_outputs(self, r: int, pids: list[int], outputs: tuple[str, ...] = ("logits",),
                       view: str = "plain", bn_mode: str | None = None) -> dict[int, dict[str, torch.Tensor]]:
        """Every client's outputs on this round's public batches (concatenated over batches)."""
        conf = self.public_conf(r, batches=list(range(self.num_batches)), outputs=list(outputs),
                                view=view, **{"bn-mode": bn_mode or "eval"})
        replies = self.ctx.broadcast("query.public", r, pids, conf)
        return {pid: rep.tensors() for pid, rep in replies.items()}

    def distill(self, r: int, targets: dict[int, torch.Tensor], loss: str, epochs: int = 1,
                fresh_optimizer: bool = False, view: str = "plain") -> dict[int, ClientReply]:
        """Clients in ``targets`` take ``epochs`` passes over the public batches toward their target."""
        conf = self.public_conf(r, batches=list(range(self.num_batches)), loss=loss, epochs=epochs,
                                weight=self.scfg.collab_weight, view=view,
                                **{"fresh-optimizer": fresh_optimizer})
        requests = {pid: (conf, {"target": ArrayRecord({"target": t.contiguous()})}) for pid, t in targets.items()}
        return self.ctx.send("train.distill", r, requests)

    def local_train(self, r: int, pids: list[int], conf: dict[str, Any] | None = None,
                    arrays: dict[str, ArrayRecord] | None = None) -> dict[str, float]:
        replies = self.ctx.broadcast("train", r, pids, conf, arrays)
        return {"train_loss": mean_of(replies, "train_loss")}


def mean_stack(tensors: list[torch.Tensor], weights: list[float] | None = None) -> torch.Tensor:
    """(Weighted) mean of same-shape tensors."""
    stacked = torch.stack(tensors)
    if weights is None:
        return stacked.mean(0)
    w = torch.tensor(weights, dtype=stacked.dtype).view(-1, *([1] * (stacked.dim() - 1)))
    return (stacked * w).sum(0) / w.sum()
