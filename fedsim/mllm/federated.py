"""Federated adapter tuning: client-local MLLM tuning with FedAvg over the trainable tensors.

Part of fedsim's LoRASculpt (arXiv 2503.16843) and tuning-taxonomy (arXiv 2503.04543) support; the
federated protocol is our choice (spec ``lorasculpt.md`` §7). Only tensors a method trains travel:
LoRA/DoRA factors, adapter or prompt weights, the selected weights of a selective method (sent as
the whole tensor; entries the client may not change are unchanged), or every LLM weight for full
fine-tuning. The server averages them weighted by client sample counts (FedAvg of A and B
separately, which is not the average of BA, as in FedIT-style federated LoRA).

Client state that never leaves the client: LoRASculpt masks and CMR weights, top-k selections,
the global step. After loading the aggregated tensors a client calls its trainer's
``on_global_weights`` hook; a LoRASculpt client re-applies its own mask there (our choice, default
on), since averaging destroys each client's sparsity pattern.

Aggregation (``aggregate``): ``fedavg`` is the example-weighted mean of every tensor. ``masked`` (our
choice, for sparse-update methods) averages each entry only over the clients that *kept* it, i.e. whose
sent tensor is non-zero there, weighted by their example counts; an entry no client kept stays zero.
Why: a LoRASculpt client re-masks after its last local step, so outside its own 10% mask it sends exact
zeros. Plain FedAvg counts those zeros as votes for "no update" and shrinks every kept entry by the
share of clients that did not keep it (about 1/4 with 4 clients and little mask overlap); the client
then cuts the average back to its own pattern, so the masked arms barely learned (benchmark, session 1).
The support is read from the tensors themselves, so no mask leaves the client; for dense methods
(no exact zeros) ``masked`` equals ``fedavg``. In the tuning benchmark it did not make the masked arms
learn more (see ``benchmarks/results/tuning_table.md``), so ``fedavg`` is the default.

Tensors are exchanged as ``dict[str, np.ndarray]`` (what Flower's ``ArrayRecord`` holds);
:func:`to_array_record` / :func:`from_array_record` convert. The plain loop :func:`run_federated` is the
in-process reference; the Flower path is :mod:`fedsim.mllm.flower` (client) and
``strategies/fedadapter.py`` (server), and a test checks that the two agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from fedsim.errors import ConfigError
from fedsim.mllm.model import MLLM, clone_mllm
from fedsim.mllm.tuning import TuningConfig, TuningTrainer, build_trainer
from fedsim.mllm.world import MMDataset

State = dict[str, np.ndarray]


def trainable_state(trainer: TuningTrainer) -> State:
    """The tensors this client's method trains, as float32 numpy arrays keyed by parameter name."""
    return {n: p.detach().cpu().float().numpy().copy() for n, p in trainer.trainable()}


@torch.no_grad()
def load_trainable_state(trainer: TuningTrainer, state: State) -> None:
    """Copy ``state`` into the trainable parameters (keys and shapes must match exactly)."""
    params = dict(trainer.trainable())
    if set(params) != set(state):
        diff = sorted(set(params) ^ set(state))[:5]
        raise ValueError(f"adapter state does not match the model's trainable tensors: {diff}")
    for n, arr in state.items():
        p = params[n]
        if tuple(arr.shape) != tuple(p.shape):
            raise ValueError(f"adapter tensor {n}: shape {arr.shape} != {tuple(p.shape)}")
        p.copy_(torch.from_numpy(np.asarray(arr)).to(p.dtype))


def fedavg(states: Sequence[State], weights: Sequence[float]) -> State:
    """Weighted mean of each tensor over clients (weights are normalised here)."""
    if not states or len(states) != len(weights):
        raise ValueError("fedavg: need one weight per state and at least one state")
    total = float(sum(weights))
    keys = states[0].keys()
    return {k: sum(np.asarray(s[k], dtype=np.float64) * (w / total) for s, w in zip(states, weights))
            .astype(np.float32) for k in keys}


def masked_fedavg(states: Sequence[State], weights: Sequence[float]) -> State:
    """Per entry, the weighted mean over the clients whose tensor is non-zero there (0 if none is)."""
    if not states or len(states) != len(weights):
        raise ValueError("masked_fedavg: need one weight per state and at least one state")
    out: State = {}
    for k in states[0]:
        num = sum(np.asarray(s[k], dtype=np.float64) * w for s, w in zip(states, weights))
        den = sum((np.asarray(s[k]) != 0) * float(w) for s, w in zip(states, weights))
        out[k] = np.divide(num, den, out=np.zeros_like(num), where=den > 0).astype(np.float32)
    return out


AGGREGATORS = {"fedavg": fedavg, "masked": masked_fedavg}


def aggregate(states: Sequence[State], weights: Sequence[float], how: str = "fedavg") -> State:
    """Aggregate client states with the rule named ``how`` (``fedavg`` | ``masked``)."""
    if how not in AGGREGATORS:
        raise ConfigError(f"aggregation: {how!r}; choose one of {sorted(AGGREGATORS)}")
    return AGGREGATORS[how](states, weights)


def to_array_record(state: State):
    """A Flower ``ArrayRecord`` holding ``state`` (import deferred: fedsim.mllm works without flwr)."""
    from flwr.app import Array, ArrayRecord

    return ArrayRecord(array_dict={k: Array(np.ascontiguousarray(v)) for k, v in state.items()})


def from_array_record(record) -> State:
    return {k: record[k].numpy() for k in record.keys()}


# -- non-IID partition -----------------------------------------------------------------------------
def client_shards(data: MMDataset, num_clients: int, alpha: float, seed: int) -> list[MMDataset]:
    """The clients' training sets: :func:`partition_by_family` applied to ``data``."""
    return [data.subset(ix) for ix in partition_by_family(data, num_clients, alpha, seed)]


def partition_by_family(data: MMDataset, num_clients: int, alpha: float, seed: int) -> list[list[int]]:
    """Non-IID over question types: each family's samples split across clients by Dirichlet(alpha).

    Smaller ``alpha`` -> each client dominated by few families. Every client gets at least one sample.
    """
    if num_clients < 1 or alpha <= 0:
        raise ConfigError("federated.num_clients must be >= 1 and federated.alpha > 0")
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in range(num_clients)]
    for fam in sorted(set(data.families)):
        idx = rng.permutation([i for i, f in enumerate(data.families) if f == fam])
        cuts = (np.cumsum(rng.dirichlet([alpha] * num_clients))[:-1] * len(idx)).astype(int)
        for c, chunk in enumerate(np.split(idx, cuts)):
            parts[c].extend(int(i) for i in chunk)
    for p in parts:
        if not p:  # steal one sample from the largest client
            big = max(range(num_clients), key=lambda j: len(parts[j]))
            p.append(parts[big].pop())
    return [sorted(p) for p in parts]


# -- plain federated loop --------------------------------------------------------------------------
@dataclass
class FederatedConfig:
    num_clients: int = 4
    rounds: int = 5
    alpha: float = 0.3
    #: optimiser steps per client per round (overrides the trainer's ``steps``)
    local_steps: int = 20
    seed: int = 0
    #: ``fedavg`` | ``masked`` (see the module docstring)
    aggregation: str = "fedavg"


@dataclass
class AdapterClient:
    """One client: its own model copy, trainer (with client-local state) and data."""

    cid: int
    trainer: TuningTrainer
    data: MMDataset
    history: list[dict[str, float]] = field(default_factory=list)

    def fit_round(self, global_state: State | None, round_idx: int) -> tuple[State, int]:
        if global_state is not None:
            load_trainable_state(self.trainer, global_state)
            self.trainer.on_global_weights()
        self.history.append(local_fit(self.trainer, self.data, self.cid, round_idx))
        return trainable_state(self.trainer), len(self.data)


def local_fit(trainer: TuningTrainer, data: MMDataset, cid: int, round_idx: int) -> dict[str, float]:
    """One round of local training with torch's global RNG (LoRA/adapter dropout) seeded from
    (trainer seed, client, round): batches already come from the trainer's own seeded generator, so a
    client's update is then the same whichever process (or Ray worker) computes it."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(trainer.seed * 1_000_003 + cid * 1009 + round_idx)
        return trainer.fit(data, round_idx=round_idx)


def make_clients(base: MLLM, tcfg: TuningConfig, parts: Sequence[MMDataset],
                 seed: int) -> list[AdapterClient]:
    """One client per data part; every client starts from the same base and the same adapter init."""
    return [AdapterClient(c, build_trainer(tcfg, clone_mllm(base), seed), d) for c, d in enumerate(parts)]


def run_federated(base: MLLM, tcfg: TuningConfig, data: MMDataset, fed: FederatedConfig,
                  ) -> tuple[TuningTrainer, list[AdapterClient]]:
    """FedAvg over ``fed.rounds`` rounds; returns a trainer whose model holds the global weights.

    Adapters are initialised with the same seed on every client (a server broadcast of the initial
    adapter in a real deployment), so round 1 averages comparable tensors.
    """
    import dataclasses

    local_cfg = dataclasses.replace(tcfg, steps=fed.local_steps)
    clients = make_clients(base, local_cfg, client_shards(data, fed.num_clients, fed.alpha, fed.seed), fed.seed)
    state: State | None = None
    for r in range(fed.rounds):
        replies = [c.fit_round(state, r) for c in clients]
        state = aggregate([s for s, _ in replies], [n for _, n in replies], fed.aggregation)
    server = build_trainer(local_cfg, clone_mllm(base), fed.seed)
    load_trainable_state(server, state)
    return server, clients
