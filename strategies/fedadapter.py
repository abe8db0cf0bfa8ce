"""``fedadapter``: federated MLLM adapter tuning (FedAvg over the tensors a tuning method trains).

For LoRASculpt (arXiv 2503.16843) and the tuning taxonomy (arXiv 2503.04543); the federated protocol is
our choice (spec ``lorasculpt.md`` §7). Per round the server samples clients (``clients_per_round``,
seeded), broadcasts the global adapter tensors with ``train.adapter`` (:mod:`fedsim.mllm.flower`), and
aggregates the replies weighted by ``num-examples`` (sorted by partition id, so a resumed run averages in
the same order). Round 1 broadcasts the method's initial adapter, which every client also builds from the
same seed, so the run equals the in-process loop :func:`fedsim.mllm.federated.run_federated`.

``aggregation``:

* ``fedavg``: example-weighted mean of every tensor (A and B of LoRA separately, FedIT-style).
* ``masked``: each entry averaged only over the clients that kept it (sent a non-zero value there); an
  entry nobody kept stays zero. LoRASculpt clients zero everything outside their own top-10% masks, so
  plain FedAvg shrinks each kept entry by the share of clients that did not keep it, and the client then
  cuts the shrunken average back to its own pattern: the masked arms barely learn. ``masked`` removes that
  dilution without any mask leaving a client (the support is visible in the tensors anyway). For dense
  methods it equals ``fedavg``. Measured (benchmarks/results/tuning_table.md): it does not help here; the
  undiluted union of the clients' B entries times the shared A adds cross-client terms that cost upstream
  accuracy, so ``fedavg`` stays the default.

Evaluation, each ``eval_every`` rounds: the server evaluates the *global* adapter on the base model
(``E``, ``F``, ``O``, ``down_acc``, ``up_acc``, ``avg`` against the pretrained base, the relative change of
the adapter since round 0 ``adapter_delta`` and its density ``adapter_nonzero``); with ``client_eval``
each client also reports the accuracies of the global adapter under its own client state (its mask), logged
per client as ``client_*`` (their means land in the global row). The base is pretrained once here, in
:meth:`setup`, and cached under ``artifacts_dir`` (None: ``$FEDSIM_ARTIFACTS`` or ``./artifacts``), so
clients only load it.

The ``world``, ``mllm``, ``pretrain`` and ``method`` mappings are validated when the config loads
(:func:`fedsim.mllm.flower.resolve_sections`); the top-level ``data``/``model``/``trainer`` sections are
unused by this strategy (they describe image clients).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedsim.config import choice, ranged
from fedsim.errors import ConfigError
from fedsim.mllm.flower import ADAPTER, EVAL_ACTION, TRAIN_ACTION  # registers the client actions
from fedsim.registry import STRATEGIES
from strategies.base import FedsimStrategy, StrategyConfig


@dataclass
class FedAdapterConfig(StrategyConfig):
    """The ``strategy:`` section of a federated adapter-tuning experiment."""

    name: str = "fedadapter"
    aggregation: str = choice("fedavg", "masked")
    #: optimiser steps per client per round (the method's ``steps``)
    local_steps: int = ranged(20, 1, None)
    #: Dirichlet concentration of the non-IID split over downstream question types
    alpha: float = ranged(0.3, 1e-3, None)
    #: size of the downstream training pool split across clients
    n_train: int = ranged(2000, 1, None)
    n_test_per_family: int = ranged(80, 1, None)
    #: also ask every client for the accuracy of the global adapter under its own state (its mask)
    client_eval: bool = True
    #: where the pretrained base is cached (None: $FEDSIM_ARTIFACTS or ./artifacts)
    artifacts_dir: str | None = None
    method: dict[str, Any] = field(default_factory=lambda: {"name": "lorasculpt"})
    world: dict[str, Any] = field(default_factory=dict)
    mllm: dict[str, Any] = field(default_factory=dict)
    pretrain: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Validate the MLLM sections now (bad keys fail at load time) and store them with all defaults."""
        from fedsim.mllm.flower import resolve_sections

        for key, obj in resolve_sections(dataclasses.asdict(self)).items():
            setattr(self, key, dataclasses.asdict(obj))


def _prefixed(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    return {f"{prefix}{k}": v for k, v in metrics.items()}


@STRATEGIES.register("fedadapter")
class FedAdapter(FedsimStrategy):
    """FedAvg (plain or mask-aware) over MLLM adapter tensors; clients keep masks and trainer state."""

    name = "fedadapter"
    image_clients = False
    Config = FedAdapterConfig

    # -- setup ----------------------------------------------------------------------------------------
    def setup(self) -> None:
        from fedsim.mllm.federated import trainable_state
        from fedsim.mllm.flower import base_model, new_trainer, task_metric, task_of
        from fedsim.mllm.pretrain import default_artifacts_dir

        self.task = task_of(self.cfg)
        self._check_mask_step()
        self.artifacts = str(Path(self.scfg.artifacts_dir or default_artifacts_dir()).resolve())
        self.base = base_model(self.task, self.artifacts)
        self.metric = task_metric(self.task)
        self.before = self.metric.evaluate(self.base)
        self.server = new_trainer(self.task, self.base)  # holds the global adapter for evaluation
        if not hasattr(self, "adapter"):  # not resumed
            self.initial = trainable_state(self.server)
            self.adapter = {k: v.copy() for k, v in self.initial.items()}
        self.client_metrics: dict[int, dict[str, float]] = {}

    def _check_mask_step(self) -> None:
        m = self.task.method
        total = self.cfg.rounds * self.scfg.local_steps
        if getattr(m, "use_mask", False) and m.mask_step >= total:
            raise ConfigError(f"strategy.method.mask_step: {m.mask_step} >= rounds * local_steps = {total}; "
                              "the mask would never be taken (about 10% of the total is the spec's choice)")

    def message_config(self) -> dict[str, Any]:
        return {"artifacts-dir": self.artifacts}

    def adapter_arrays(self) -> dict[str, Any]:
        from fedsim.mllm.federated import to_array_record

        return {ADAPTER: to_array_record(self.adapter)}

    # -- one round ------------------------------------------------------------------------------------
    def round(self, r: int) -> dict[str, float]:
        from fedsim.mllm.federated import aggregate, from_array_record

        replies = self.ctx.broadcast(TRAIN_ACTION, r, self.ctx.sample(r), self.message_config(),
                                     self.adapter_arrays())
        if not replies:
            raise RuntimeError(f"round {r}: no client returned an adapter")
        ordered = [replies[pid] for pid in sorted(replies)]
        states = [from_array_record(rep.arrays[ADAPTER]) for rep in ordered]
        weights = [rep.metrics["num-examples"] for rep in ordered]
        self.adapter = aggregate(states, weights, self.scfg.aggregation)
        self.client_metrics = {rep.pid: _prefixed(self._train_metrics(rep.metrics), "train_") for rep in ordered}
        return self._mean(list(self.client_metrics.values()))

    @staticmethod
    def _train_metrics(m: dict[str, Any]) -> dict[str, float]:
        return {k.removeprefix("train_"): float(v) for k, v in m.items() if k not in ("partition-id", "num-examples")}

    @staticmethod
    def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
        keys = sorted({k for m in rows for k in m})
        return {k: sum(m[k] for m in rows if k in m) / sum(k in m for m in rows) for k in keys}

    # -- evaluation -----------------------------------------------------------------------------------
    def _efo(self, up: dict[str, float], down: dict[str, float]) -> dict[str, float]:
        r = self.metric.compute(self.before, (up, down))
        return {"E": r.E, "F": r.F, "O": r.O, "down_acc": r.downstream_after, "up_acc": r.upstream_after,
                "avg": r.avg}

    def evaluate(self, r: int) -> dict[int, dict[str, float]]:
        """Per client: its training metrics of this round and, with ``client_eval``, E/F/O of its model."""
        out = {pid: dict(m) for pid, m in self.client_metrics.items()}
        if not self.scfg.client_eval:
            return out
        replies = self.ctx.broadcast(EVAL_ACTION, r, self.ctx.pids, self.message_config(), self.adapter_arrays())
        for pid, rep in replies.items():
            up = {k[3:]: float(v) for k, v in rep.metrics.items() if k.startswith("up/")}
            down = {k[5:]: float(v) for k, v in rep.metrics.items() if k.startswith("down/")}
            out.setdefault(pid, {}).update(_prefixed(self._efo(up, down), "client_"))
        return out

    def evaluate_global(self, r: int) -> dict[str, float]:
        """E/F/O of the global adapter on the pretrained base, evaluated once on the server."""
        import numpy as np

        from fedsim.mllm.federated import load_trainable_state
        from fedsim.mllm.flower import nonzero_fraction

        load_trainable_state(self.server, self.adapter)
        delta = np.sqrt(sum(float(((self.adapter[k] - v) ** 2).sum()) for k, v in self.initial.items()))
        norm0 = np.sqrt(sum(float((v ** 2).sum()) for v in self.initial.values()))
        return {**self._efo(*self.metric.evaluate(self.server.mllm)),
                "adapter_delta": float(delta / max(norm0, 1e-12)), "adapter_nonzero": nonzero_fraction(self.adapter)}

    # -- resume ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"adapter": self.adapter, "initial": self.initial}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.adapter, self.initial = state["adapter"], state["initial"]
