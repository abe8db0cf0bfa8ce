"""What a client-local trainer is: an object that owns a model's local update rule and its state.

A trainer is built once per client (per actor process it lands in) and its ``state_dict`` travels
with the client's checkpoint, so masks, Fisher estimates or teacher snapshots survive across rounds
and Ray workers. Trainers are registered by name in :data:`fedsim.registry.TRAINERS`; each has a
``Config`` dataclass (a subclass of :class:`TrainerConfig`) that the experiment config's ``trainer``
section is validated against, so ``trainer.jsd_weight=12`` is type-checked before anything runs.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from fedsim.data.base import ClientData, ImageSet, to_float


@dataclass
class TrainerConfig:
    """Fields every trainer understands; a method's Config subclasses this."""

    name: str = "supervised"
    lr: float = 1e-3
    batch_size: int = 64
    optimizer: str = "adam"  # adam | sgd
    momentum: float = 0.9
    weight_decay: float = 0.0
    #: Re-create the optimiser every round (official RAHFL code) or keep its state across rounds.
    persistent_optimizer: bool = False
    drop_last: bool = True


Regularizer = Any  # callable(model, x, y, logits, features) -> scalar loss tensor


class Trainer:
    """Base class: subclasses implement :meth:`loss`; the epoch loop lives here once.

    ``regularizer``, when given to :meth:`fit`, is called as ``regularizer(model, x, y, logits,
    features)`` and added to the loss: this is how strategies such as FedProto add a term to any
    trainer without a copy of its loop.
    """

    name = "base"
    Config: ClassVar[type[TrainerConfig]] = TrainerConfig

    def __init__(self, cfg: TrainerConfig, model: nn.Module, seed: int) -> None:
        self.cfg = cfg
        self.model = model
        self.seed = seed
        self._opt: torch.optim.Optimizer | None = None

    # -- hooks a method overrides -------------------------------------------------------------
    def loss(self, x: torch.Tensor, y: torch.Tensor, data: ImageSet, g: torch.Generator,
             regularizer: Regularizer | None) -> torch.Tensor:
        """Loss on one uint8 batch ``x`` (the trainer does its own augmentation)."""
        raise NotImplementedError

    # -- shared machinery ---------------------------------------------------------------------
    def optimizer(self) -> torch.optim.Optimizer:
        if self._opt is None or not self.cfg.persistent_optimizer:
            self._opt = make_optimizer(self.cfg, self.model.parameters())
        return self._opt

    def fit(self, data: ClientData, epochs: int, round_idx: int,
            regularizer: Regularizer | None = None) -> dict[str, float]:
        """``epochs`` passes over ``data.train``; returns mean loss and ``num-examples``."""
        self.model.train()
        opt = self.optimizer()
        g = self.generator(round_idx)
        total, steps, seen = 0.0, 0, 0
        for _ in range(epochs):
            for idx in batch_indices(len(data.train), self.cfg.batch_size, g, self.cfg.drop_last):
                x, y = data.train.x[idx], data.train.y[idx]
                loss = self.loss(x, y, data.train, g, regularizer)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach())
                steps += 1
                seen += len(idx)
        return {"train_loss": total / max(steps, 1), "num-examples": float(len(data.train))}

    def state_dict(self) -> dict[str, Any]:
        if self.cfg.persistent_optimizer and self._opt is not None:
            return {"optimizer": self._opt.state_dict()}
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "optimizer" in state and self.cfg.persistent_optimizer:
            self.optimizer().load_state_dict(state["optimizer"])

    def generator(self, round_idx: int, salt: int = 0) -> torch.Generator:
        """A torch generator seeded from (seed, round, salt): reruns and resumes draw identically."""
        return seeded_generator(self.seed, round_idx, salt)


def seeded_generator(*parts: int | str) -> torch.Generator:
    """A generator whose seed is a stable hash of ``parts`` (same in every process)."""
    g = torch.Generator()
    g.manual_seed(zlib.crc32(repr(parts).encode()) & 0x7FFFFFFF)
    return g


def batch_indices(n: int, batch_size: int, g: torch.Generator, drop_last: bool = True):
    """Shuffled index batches; keeps a short last batch when the set is smaller than one batch."""
    perm = torch.randperm(n, generator=g)
    stop = n - n % batch_size if (drop_last and n >= batch_size) else n
    for i in range(0, stop, batch_size):
        yield perm[i : i + batch_size]


def make_optimizer(cfg: TrainerConfig, params) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    raise ValueError(f"trainer.optimizer: unknown {cfg.optimizer!r}; choose adam or sgd")


def normalise(x: torch.Tensor, data: ImageSet) -> torch.Tensor:
    return to_float(x, data.mean, data.std)
