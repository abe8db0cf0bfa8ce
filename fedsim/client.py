"""The client side of every fedsim run: a client's runtime state and the actions it answers.

A Flower message reaches a client as ``<category>.<action>`` (``train``, ``evaluate``,
``query.acc``, ``train.collab``, ...). :data:`ACTIONS` maps each name to a function
``fn(rt, conf, arrays) -> Reply``; the ClientApp in :mod:`fedsim.apps` registers every entry with
Flower, so a strategy composes these primitives and a plugin adds an action with one decorator.

State: a client's model and trainer state live in ``<run_dir>/checkpoints/clients/<pid>/r<round>.pt``
(written atomically after every mutating action). Any Ray actor can serve any client, and
``--resume`` finds every client's state at the last completed round. An actor keeps the runtimes it
served in memory and reuses one while its state file is unchanged, so consecutive messages to the same
client in the same process skip rebuilding and reloading the model.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from flwr.app import ArrayRecord

from fedsim.config import ExperimentConfig, config_hash
from fedsim.data.base import ClientData, ImageSet, to_float
from fedsim.federation import atomic_torch_save, build_client_model, build_trainer, cache_root, federation_data
from fedsim.models.base import FedModel
from fedsim.trainers.base import Trainer
from fedsim.trainers.supervised import SupervisedConfig, SupervisedTrainer


@dataclass
class Reply:
    """What an action returns: scalar metrics, optional strings, optional tensors."""

    metrics: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, ArrayRecord] = field(default_factory=dict)
    mutated: bool = False


Action = Callable[["ClientRuntime", dict[str, Any], dict[str, ArrayRecord]], Reply]
ACTIONS: dict[str, Action] = {}
#: actions that need only the node's identity and config, not the image-classification runtime
NODE_ACTIONS: set[str] = set()


def action(name: str, image_runtime: bool = True) -> Callable[[Action], Action]:
    """Register ``fn`` as the handler of message type ``name`` (e.g. ``"query.acc"``).

    With ``image_runtime=False`` the handler receives a :class:`NodeRuntime` (config, partition id,
    round) instead of a :class:`ClientRuntime`, so nodes that are not image classifiers (LLM agents)
    never build image data or models.
    """

    def deco(fn: Action) -> Action:
        ACTIONS[name] = fn
        if not image_runtime:
            NODE_ACTIONS.add(name)
        return fn

    return deco


def run_action(name: str, cfg: ExperimentConfig, pid: int, conf: dict[str, Any],
               arrays: dict[str, ArrayRecord]) -> Reply:
    """Run client action ``name`` for partition ``pid``: the one dispatch the ClientApp and the
    in-process context (:mod:`fedsim.testing`) share. Node actions get a :class:`NodeRuntime`, the others
    the client's stateful runtime at ``conf['server-round']``, saved when the action changed it."""
    server_round = int(conf["server-round"])
    if name in NODE_ACTIONS:
        rt: Any = NodeRuntime(cfg, pid, server_round)
    else:
        rt = open_runtime(cfg, pid, conf["run-dir"], server_round)
    reply = ACTIONS[name](rt, conf, arrays)
    if reply.mutated:
        rt.save()
    return reply


@dataclass
class NodeRuntime:
    """What an action that brings its own state gets: the experiment config and who/when it is."""

    cfg: ExperimentConfig
    pid: int
    round: int
    mutated: bool = False

    def save(self) -> None:  # such actions keep their own state
        return None


_STATE_RE = re.compile(r"r(\d+)\.pt$")


@dataclass
class ClientRuntime:
    cfg: ExperimentConfig
    pid: int
    data: ClientData
    model: FedModel
    trainer: Trainer
    state_dir: Path
    round: int
    extra: dict[str, Any] = field(default_factory=dict)  # strategy-side client state (e.g. RHFL weights)
    #: identifies the state file the in-memory model equals; None after a temporary change
    token: tuple[str, int] | None = None

    # -- state on disk ------------------------------------------------------------------------
    def state_files(self) -> dict[int, Path]:
        if not self.state_dir.is_dir():
            return {}
        return {int(m.group(1)): p for p in self.state_dir.iterdir() if (m := _STATE_RE.search(p.name))}

    def latest_state(self, upto: int) -> Path | None:
        files = {r: p for r, p in self.state_files().items() if r <= upto}
        return files[max(files)] if files else None

    def load(self, path: Path) -> None:
        state = torch.load(path, weights_only=False)
        self.model.load_state_dict(state["model"])
        self.trainer.load_state_dict(state["trainer"])
        self.extra = state.get("extra", {})
        self.token = (str(path), path.stat().st_mtime_ns)

    def save(self) -> None:
        path = self.state_dir / f"r{self.round}.pt"
        atomic_torch_save({"model": self.model.state_dict(), "trainer": self.trainer.state_dict(),
                           "extra": self.extra}, path)
        self.token = (str(path), path.stat().st_mtime_ns)
        for r, p in self.state_files().items():  # keep the previous round for --resume
            if r < self.round - 1:
                p.unlink(missing_ok=True)

    # -- evaluation -----------------------------------------------------------------------------
    def accuracy(self, images: ImageSet, batch_size: int = 256) -> tuple[float, float]:
        return evaluate_model(self.model, images, batch_size)


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, images: ImageSet, batch_size: int = 256) -> tuple[float, float]:
    """(accuracy, mean CE loss) of ``model`` in eval mode on ``images``."""
    model.eval()
    correct, loss = 0, 0.0
    for i in range(0, len(images), batch_size):
        x = to_float(images.x[i : i + batch_size], images.mean, images.std)
        y = images.y[i : i + batch_size]
        logits = model(x)
        correct += int((logits.argmax(1) == y).sum())
        loss += float(F.cross_entropy(logits, y, reduction="sum"))
    n = max(len(images), 1)
    return correct / n, loss / n


_RUNTIMES: dict[tuple[str, int], ClientRuntime] = {}


def open_runtime(cfg: ExperimentConfig, pid: int, run_dir: str, server_round: int) -> ClientRuntime:
    """The client's runtime with the newest state at or before ``server_round``."""
    state_dir = Path(run_dir) / "checkpoints" / "clients" / str(pid)
    key = (str(state_dir), pid)
    rt = _RUNTIMES.get(key)
    if rt is None or rt.cfg is not cfg and config_hash(rt.cfg) != config_hash(cfg):
        data = federation_data(cfg).client(pid)
        model = build_client_model(cfg, pid, data.train.num_classes)
        rt = ClientRuntime(cfg, pid, data, model, build_trainer(cfg, model, pid), state_dir, 0)
        if len(_RUNTIMES) > 16:
            _RUNTIMES.clear()
        _RUNTIMES[key] = rt
    latest = rt.latest_state(server_round)
    want = (str(latest), latest.stat().st_mtime_ns) if latest else ("initial", 0)
    if rt.token != want:  # another process (or a temporary load) changed the state since we held it
        if latest is not None:
            rt.load(latest)
        else:
            rt.model.load_state_dict(_initial_state(rt))
            rt.trainer = build_trainer(cfg, rt.model, pid)
            rt.extra, rt.token = {}, want
    rt.round = server_round
    return rt


def _pretrain_extra_keys(cfg: ExperimentConfig) -> tuple[str, ...]:
    """Pre-training knobs that enter the cache key only when changed, so caches made before they existed
    (defaults) stay valid."""
    return tuple(k for k, default in (("pretrain_augment", True), ("pretrain_batch_size", 0))
                 if getattr(cfg, k) != default)


def _initial_state(rt: ClientRuntime) -> dict[str, torch.Tensor]:
    """Round-0 weights: random init, then ``pretrain_epochs`` of CE (cached across runs)."""
    cfg = rt.cfg
    fresh = build_client_model(cfg, rt.pid, rt.data.train.num_classes)
    if cfg.pretrain_epochs == 0:
        return fresh.state_dict()
    # the public set plays no part in CE pre-training: changing it reuses the cached weights
    key = config_hash(cfg, "data", "model", "seed", "num_clients", "pretrain_epochs", *_pretrain_extra_keys(cfg),
                      exclude=("data.public",))
    path = cache_root(cfg) / "pretrain" / f"{key}-{rt.pid}.pt"
    if path.is_file():
        return torch.load(path, weights_only=True)
    tcfg = SupervisedConfig(lr=1e-3, batch_size=cfg.pretrain_batch_size or rt.trainer.cfg.batch_size,
                            optimizer="adam", persistent_optimizer=True, augment=cfg.pretrain_augment)
    SupervisedTrainer(tcfg, fresh, seed=cfg.seed * 1000 + rt.pid).fit(rt.data, cfg.pretrain_epochs, -1)
    atomic_torch_save(fresh.state_dict(), path)
    return fresh.state_dict()
