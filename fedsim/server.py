"""Server-side plumbing shared by every strategy: node map, message fan-out, the round loop.

Strategies (in ``strategies/``) implement one communication round in terms of client actions
(:mod:`fedsim.actions`); :class:`ServerContext` turns "send action A to clients {pid: conf}" into Flower
messages over the Grid, waits for replies with the round timeout, and returns replies keyed by
partition id. A failed reply is logged, counted and left out; the round goes on without it.
:func:`run_rounds` is the loop every run uses: rounds, evaluation, metrics, checkpoint, progress.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from fedsim.config import ExperimentConfig, to_yaml
from fedsim.federation import atomic_torch_save
from fedsim.results import RunRecorder

log = logging.getLogger("fedsim")


@dataclass
class ClientReply:
    pid: int
    metrics: dict[str, float]
    config: dict[str, Any]
    arrays: dict[str, ArrayRecord]

    def tensors(self, name: str = "outputs") -> dict[str, torch.Tensor]:
        return self.arrays[name].to_torch_state_dict()


@dataclass
class ServerContext:
    grid: Any
    cfg: ExperimentConfig
    run_dir: Path
    recorder: RunRecorder
    node_of: dict[int, int] = field(default_factory=dict)  # partition id -> node id
    info: dict[int, dict[str, Any]] = field(default_factory=dict)  # partition id -> hello reply
    failures: int = 0
    _yaml: str = ""

    def __post_init__(self) -> None:
        self._yaml = to_yaml(self.cfg)

    # -- nodes ------------------------------------------------------------------------------------
    def connect(self, deadline_s: float = 300.0) -> None:
        """Wait until all simulated nodes exist, then map node ids to partition ids (query.hello)."""
        start = time.time()
        nodes = list(self.grid.get_node_ids())
        while len(nodes) < self.cfg.num_clients:
            if time.time() - start > deadline_s:
                raise RuntimeError(f"only {len(nodes)} of {self.cfg.num_clients} client nodes connected")
            time.sleep(0.5)
            nodes = list(self.grid.get_node_ids())
        msgs = [self._message("query.hello", nid, 0, {}, {}) for nid in nodes]
        for reply in self.grid.send_and_receive(msgs, timeout=self.cfg.round_timeout):
            if reply.has_error():
                raise RuntimeError(f"client failed to start: {reply.error.reason}")
            m = reply.content["metrics"]
            pid = int(m["partition-id"])
            self.node_of[pid] = reply.metadata.src_node_id
            self.info[pid] = {**dict(m), **dict(reply.content.config_records.get("config", {}))}

    @property
    def pids(self) -> list[int]:
        return sorted(self.node_of)

    def sample(self, round_idx: int) -> list[int]:
        """Clients taking part in ``round_idx``: all, or ``clients_per_round`` drawn from (seed, round)."""
        k = self.cfg.clients_per_round
        if not k or k >= len(self.pids):
            return self.pids
        g = torch.Generator().manual_seed(self.cfg.seed * 100003 + round_idx)
        return sorted(self.pids[i] for i in torch.randperm(len(self.pids), generator=g)[:k].tolist())

    # -- messages ---------------------------------------------------------------------------------
    def base_config(self, round_idx: int) -> dict[str, Any]:
        return {"fedsim-config": self._yaml, "run-dir": str(self.run_dir), "server-round": round_idx}

    def _message(self, action: str, node_id: int, round_idx: int, conf: dict[str, Any],
                 arrays: dict[str, ArrayRecord]) -> Message:
        content = RecordDict({"config": ConfigRecord({**self.base_config(round_idx), **conf}), **arrays})
        return Message(content=content, dst_node_id=node_id, message_type=action)

    def send(self, action: str, round_idx: int, requests: dict[int, tuple[dict[str, Any], dict[str, ArrayRecord]]]
             ) -> dict[int, ClientReply]:
        """Send ``action`` to each partition id in ``requests`` and collect the successful replies."""
        msgs = [self._message(action, self.node_of[pid], round_idx, conf, arrays)
                for pid, (conf, arrays) in requests.items()]
        replies: dict[int, ClientReply] = {}
        pid_of = {nid: pid for pid, nid in self.node_of.items()}
        for reply in self.grid.send_and_receive(msgs, timeout=self.cfg.round_timeout):
            pid = pid_of.get(reply.metadata.src_node_id, -1)
            if reply.has_error():
                self.failures += 1
                log.warning("round %d: %s failed on client %d: %s", round_idx, action, pid, reply.error.reason)
                continue
            c = reply.content
            replies[pid] = ClientReply(pid, dict(c.metric_records.get("metrics", MetricRecord())),
                                       dict(c.config_records.get("config", ConfigRecord())), dict(c.array_records))
        missing = set(requests) - set(replies)
        if missing:
            log.warning("round %d: no %s reply from clients %s", round_idx, action, sorted(missing))
        return replies

    def broadcast(self, action: str, round_idx: int, pids: list[int], conf: dict[str, Any] | None = None,
                  arrays: dict[str, ArrayRecord] | None = None) -> dict[int, ClientReply]:
        return self.send(action, round_idx, {pid: (conf or {}, arrays or {}) for pid in pids})


def server_checkpoint_path(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints" / "server.pt"


def save_server_checkpoint(run_dir: Path, round_idx: int, state: dict[str, Any]) -> None:
    atomic_torch_save({"round": round_idx, "strategy": state}, server_checkpoint_path(run_dir))


def load_server_checkpoint(run_dir: Path) -> tuple[int, dict[str, Any]]:
    path = server_checkpoint_path(run_dir)
    if not path.is_file():
        return 0, {}
    ck = torch.load(path, weights_only=False)
    return int(ck["round"]), ck["strategy"]


def prune_client_states(run_dir: Path, completed: int) -> None:
    """Before resuming: drop client states written by the interrupted round."""
    root = Path(run_dir) / "checkpoints" / "clients"
    if not root.is_dir():
        return
    for f in root.glob("*/r*.pt"):
        if int(f.stem[1:]) > completed:
            f.unlink()


def run_rounds(strategy, ctx: ServerContext, start_round: int, progress) -> None:
    """The loop of every run: round, evaluation, metrics, checkpoint, progress, per round."""
    cfg = ctx.cfg
    for r in range(start_round, cfg.rounds + 1):
        t0 = time.time()
        train_metrics = strategy.round(r) or {}
        row: dict[str, Any] = {f"train_{k}" if not k.startswith("train") else k: v for k, v in train_metrics.items()}
        if r % cfg.eval_every == 0 or r == cfg.rounds:
            per_client = strategy.evaluate(r)
            for pid, m in sorted(per_client.items()):
                ctx.recorder.log(r, pid, m)
            row.update(mean_metrics_from(per_client))
            row.update(strategy.evaluate_global(r))
        row["round_seconds"] = time.time() - t0
        row["failures"] = ctx.failures
        ctx.recorder.log(r, None, row)
        save_server_checkpoint(ctx.run_dir, r, strategy.state_dict())
        ctx.recorder.round_done(r)
        progress(r, row)


def mean_metrics_from(per_client: dict[int, dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for m in per_client.values() for k in m if k not in ("num-examples", "partition-id")})
    return {k: sum(m[k] for m in per_client.values() if k in m) / max(1, sum(k in m for m in per_client.values()))
            for k in keys}
