"""Federated adapter tuning over Flower: the client side of the ``fedadapter`` strategy.

Part of fedsim's LoRASculpt (arXiv 2503.16843) and tuning-taxonomy (arXiv 2503.04543) support; the
federated protocol is our choice (spec ``lorasculpt.md`` §7) and matches the in-process reference
:func:`fedsim.mllm.federated.run_federated` step for step (a test checks it):

* ``train.adapter``: the node builds its MLLM runtime once per process (the upstream-pretrained base from
  the artifacts cache, its non-IID shard over question types, its tuning method wrapped around a copy of
  the base), loads the global adapter tensors it received (``ArrayRecord`` ``adapter``), lets the method
  react (a LoRASculpt client re-applies its *own* mask there), runs ``local_steps`` optimiser steps and
  returns its trainable tensors, ``num-examples`` and training metrics.
* ``evaluate.adapter``: the node loads the global adapter the same way and returns the accuracy of the
  resulting model (for LoRASculpt: global values, client's own sparsity pattern) on every upstream and
  downstream question family (``up/<family>``, ``down/<family>``); the server turns them into E/F/O.

Client state never leaves the client: the trainer's ``state_dict`` (LoRASculpt masks, the global step
that decides when the mask is taken, top-k selections, a persistent optimiser) is written atomically to
``<run_dir>/checkpoints/clients/<pid>/r<round>.pt`` after every training round, the same layout as image
clients, so ``--resume`` (which prunes states newer than the last completed round) and a fresh Ray worker
find it. An actor keeps the runtimes it built and reuses one while its state file is unchanged. The CMR
weights are a function of the frozen base weights and are recomputed, not stored.

The experiment lives in the ``strategy`` section (like the MAS strategy): ``world``, ``mllm``,
``pretrain`` and ``method`` (a tuning trainer's config: ``name`` plus its knobs) are plain mappings
validated here into their dataclasses (:func:`resolve_sections`), because the top-level ``data`` / ``model``
/ ``trainer`` sections describe image classifiers. This module imports no transformers/peft at top level
(every run imports it through ``strategies.fedadapter``).
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedsim.client import Reply, action
from fedsim.errors import ConfigError

TRAIN_ACTION = "train.adapter"
EVAL_ACTION = "evaluate.adapter"
#: name of the ``ArrayRecord`` holding adapter tensors, both ways
ADAPTER = "adapter"


# -- the experiment, typed -------------------------------------------------------------------------------
def _typed(cls: type, raw: Any, key: str) -> Any:
    """``raw`` (a mapping) validated into dataclass ``cls``; errors name ``key.<field>``."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from fedsim.config import _as_config_error, _check_ranges

    try:
        obj = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), raw or {}))
    except OmegaConfBaseException as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, ConfigError) else None
        if cause is not None:  # a check in the dataclass's __post_init__
            raise _prefixed(cause, key) from None
        raise _as_config_error(exc, prefix=key) from None
    except ConfigError as exc:
        raise _prefixed(exc, key) from None
    _check_ranges(obj, key)
    return obj


def _prefixed(exc: ConfigError, key: str) -> ConfigError:
    msg = re.sub(r"^(world|model|trainer|pretrain)\.", "", str(exc))
    return ConfigError(msg if msg.startswith(key) else f"{key}.{msg}")


def resolve_sections(section: dict[str, Any], key: str = "strategy") -> dict[str, Any]:
    """The ``world``, ``mllm``, ``pretrain`` and ``method`` mappings as validated dataclasses."""
    from fedsim.mllm import register_trainers
    from fedsim.mllm.model import MLLMConfig
    from fedsim.mllm.pretrain import PretrainConfig
    from fedsim.mllm.tuning import TuningTrainer
    from fedsim.mllm.world import WorldConfig
    from fedsim.registry import TRAINERS

    register_trainers()
    method = dict(section.get("method") or {})
    if "name" not in method:
        raise ConfigError(f"{key}.method.name: missing; choose an MLLM tuning trainer, e.g. lorasculpt")
    cls = TRAINERS.get(method["name"], key=f"{key}.method.name")
    if not (isinstance(cls, type) and issubclass(cls, TuningTrainer)):
        raise ConfigError(f"{key}.method.name: {method['name']!r} is not an MLLM tuning trainer")
    return {"world": _typed(WorldConfig, section.get("world"), f"{key}.world"),
            "mllm": _typed(MLLMConfig, section.get("mllm"), f"{key}.mllm"),
            "pretrain": _typed(PretrainConfig, section.get("pretrain"), f"{key}.pretrain"),
            "method": _typed(cls.Config, method, f"{key}.method")}


@dataclass
class AdapterTask:
    """Everything a fedadapter client or server needs, built from the experiment config."""

    world: Any  # WorldConfig
    mllm: Any  # MLLMConfig
    pretrain: Any  # PretrainConfig
    method: Any  # the tuning trainer's Config, ``steps`` = local steps per round
    n_train: int
    n_test_per_family: int
    alpha: float
    num_clients: int
    seed: int

    def key(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True, default=str)


def task_of(cfg: Any) -> AdapterTask:
    """The :class:`AdapterTask` of an :class:`~fedsim.config.ExperimentConfig` run by ``fedadapter``."""
    s = cfg.strategy
    if "method" not in s or "local_steps" not in s:
        raise ConfigError(f"strategy.name: {TRAIN_ACTION} needs the fedadapter strategy, got {s.get('name')!r}")
    typed = resolve_sections(s)
    method = dataclasses.replace(typed["method"], steps=int(s["local_steps"]))
    return AdapterTask(typed["world"], typed["mllm"], typed["pretrain"], method, int(s["n_train"]),
                       int(s["n_test_per_family"]), float(s["alpha"]), cfg.num_clients, cfg.seed)


# -- shared pieces (per-process caches) ------------------------------------------------------------------
_BASES: dict[str, Any] = {}
_DATA: dict[str, Any] = {}


def base_model(task: AdapterTask, artifacts_dir: str | Path) -> Any:
    """The upstream-pretrained base (trained and cached on first use; loaded once per process)."""
    from fedsim.mllm.pretrain import pretrained_mllm

    key = json.dumps([dataclasses.asdict(task.mllm), dataclasses.asdict(task.world),
                      dataclasses.asdict(task.pretrain), str(artifacts_dir)], default=str)
    if key not in _BASES:
        _BASES.clear()  # one experiment per process at a time; do not pile up models
        _BASES[key] = pretrained_mllm(task.mllm, task.world, task.pretrain, artifacts_dir)
    return _BASES[key]


def downstream_train_set(world: Any, n: int, seed: int) -> Any:
    """The downstream training pool the clients' shards are cut from (the benchmark uses the same)."""
    from fedsim.mllm.world import build_dataset

    return build_dataset(world, world.downstream, n, "train", seed=seed + 11)


def efo_metric(world: Any, n_test_per_family: int) -> Any:
    """Fixed upstream and downstream test sets, one per question family (the benchmark uses the same)."""
    from fedsim.mllm.metrics import EFOMetric
    from fedsim.mllm.world import build_dataset

    n = n_test_per_family
    up = build_dataset(world, world.upstream, n * len(world.upstream), "test", seed=1)
    down = build_dataset(world, world.downstream, n * len(world.downstream), "test", seed=2)
    return EFOMetric.from_families(up, down)


def _cached(key: str, build: Any) -> Any:
    if key not in _DATA:
        if len(_DATA) > 8:
            _DATA.clear()
        _DATA[key] = build()
    return _DATA[key]


def client_shard(task: AdapterTask, pid: int) -> Any:
    from fedsim.mllm.federated import client_shards

    def build() -> Any:
        pool = downstream_train_set(task.world, task.n_train, task.seed)
        return client_shards(pool, task.num_clients, task.alpha, task.seed)

    return _cached("shards" + task.key(), build)[pid]


def task_metric(task: AdapterTask) -> Any:
    return _cached(f"efo{task.n_test_per_family}" + json.dumps(dataclasses.asdict(task.world), default=str),
                   lambda: efo_metric(task.world, task.n_test_per_family))


def new_trainer(task: AdapterTask, base: Any) -> Any:
    """The method around a copy of ``base``; the same seed everywhere gives every node the same init."""
    from fedsim.mllm.model import clone_mllm
    from fedsim.mllm.tuning import build_trainer

    return build_trainer(task.method, clone_mllm(base), task.seed)


# -- client state ----------------------------------------------------------------------------------------
_STATE_RE = re.compile(r"^r(\d+)\.pt$")


def latest_state(state_dir: Path, upto: int) -> Path | None:
    """The newest ``r<k>.pt`` with k <= ``upto`` in ``state_dir`` (None: the client has not trained yet)."""
    if not state_dir.is_dir():
        return None
    files = {int(m.group(1)): p for p in state_dir.iterdir() if (m := _STATE_RE.match(p.name))}
    files = {k: p for k, p in files.items() if k <= upto}
    return files[max(files)] if files else None


@dataclass
class AdapterNode:
    """One client's runtime: its trainer (model + client-local state), its data and its state file."""

    pid: int
    trainer: Any
    data: Any
    state_dir: Path
    token: tuple[str, int] = ("initial", 0)

    def receive(self, arrays: dict[str, Any]) -> None:
        """Load the global adapter tensors, then let the method re-apply its client-local state."""
        from fedsim.mllm.federated import from_array_record, load_trainable_state

        if ADAPTER not in arrays:
            raise ValueError(f"message carries no {ADAPTER!r} ArrayRecord")
        load_trainable_state(self.trainer, from_array_record(arrays[ADAPTER]))
        self.trainer.on_global_weights()

    def save(self, round_idx: int) -> None:
        """Persist the trainer's client-local state for round ``round_idx`` (keep the previous round)."""
        from fedsim.federation import atomic_torch_save

        path = self.state_dir / f"r{round_idx}.pt"
        atomic_torch_save({"trainer": self.trainer.state_dict()}, path)
        self.token = (str(path), path.stat().st_mtime_ns)
        for p in self.state_dir.iterdir():
            m = _STATE_RE.match(p.name)
            if m and int(m.group(1)) < round_idx - 1:
                p.unlink(missing_ok=True)


_NODES: dict[tuple[str, str], AdapterNode] = {}


def open_node(cfg: Any, pid: int, run_dir: str, upto: int, artifacts_dir: str) -> AdapterNode:
    """Client ``pid``'s runtime holding its newest state at or before round ``upto``."""
    import torch

    task = task_of(cfg)
    state_dir = Path(run_dir) / "checkpoints" / "clients" / str(pid)
    key = (str(state_dir), task.key())
    latest = latest_state(state_dir, upto)
    want = (str(latest), latest.stat().st_mtime_ns) if latest else ("initial", 0)
    node = _NODES.get(key)
    if node is None or node.token != want:  # new here, or another process trained this client since
        trainer = new_trainer(task, base_model(task, artifacts_dir))
        if latest is not None:
            trainer.load_state_dict(torch.load(latest, weights_only=False)["trainer"])
        node = AdapterNode(pid, trainer, client_shard(task, pid), state_dir, want)
        if len(_NODES) > 16:
            _NODES.clear()
        _NODES[key] = node
    return node


def nonzero_fraction(state: dict[str, Any]) -> float:
    """Share of non-zero entries over all tensors of an adapter state."""
    import numpy as np

    total = sum(int(np.asarray(v).size) for v in state.values())
    return sum(int(np.count_nonzero(v)) for v in state.values()) / max(total, 1)


# -- actions ---------------------------------------------------------------------------------------------
@action(TRAIN_ACTION, image_runtime=False)
def train_adapter(rt: Any, conf: dict[str, Any], arrays: dict[str, Any]) -> Reply:
    """Load the global adapter, train ``local_steps`` steps on this client's shard, return the adapter."""
    from fedsim.mllm.federated import local_fit, to_array_record, trainable_state

    node = open_node(rt.cfg, rt.pid, conf["run-dir"], rt.round - 1, conf["artifacts-dir"])
    node.receive(arrays)
    metrics = local_fit(node.trainer, node.data, rt.pid, rt.round - 1)  # rounds count from 0 in the plain loop
    node.save(rt.round)
    state = trainable_state(node.trainer)
    metrics["nonzero"] = nonzero_fraction(state)
    return Reply(metrics=metrics, arrays={ADAPTER: to_array_record(state)})


@action(EVAL_ACTION, image_runtime=False)
def evaluate_adapter(rt: Any, conf: dict[str, Any], arrays: dict[str, Any]) -> Reply:
    """Accuracy per question family of the global adapter as this client uses it (its own mask applied)."""
    node = open_node(rt.cfg, rt.pid, conf["run-dir"], rt.round, conf["artifacts-dir"])
    node.receive(arrays)
    up, down = task_metric(task_of(rt.cfg)).evaluate(node.trainer.mllm)
    return Reply(metrics={**{f"up/{k}": v for k, v in up.items()}, **{f"down/{k}": v for k, v in down.items()}})
