"""The run directory of the results contract (DESIGN.md), written atomically.

``config.yaml`` (resolved config), ``metrics.jsonl`` (one object per round and client; ``client`` is
null for the federation-level line), ``summary.json`` (``status`` running/completed/interrupted/failed,
``rounds_completed``, ``wall_seconds``, ``final``, ``per_client``), ``plots/*.png`` and
``checkpoints/server.pt`` (the last completed round and the strategy's server state). A run that is
not ``completed`` never looks complete: ``summary.json`` says ``running`` until the end.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from fedsim.config import ExperimentConfig, to_yaml


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def default_run_dir(cfg: ExperimentConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    return Path(cfg.output_dir) / cfg.experiment / stamp


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


@dataclass
class RunRecorder:
    run_dir: Path
    cfg: ExperimentConfig
    started: float = field(default_factory=time.time)
    wall_before: float = 0.0  # wall time of earlier segments of a resumed run
    rounds_completed: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    #: set when the launcher marked the run interrupted: a server thread still running writes nothing more
    frozen: bool = False

    @classmethod
    def create(cls, run_dir: Path, cfg: ExperimentConfig) -> RunRecorder:
        rec = cls(Path(run_dir), cfg)
        rec.run_dir.mkdir(parents=True, exist_ok=True)
        (rec.run_dir / "checkpoints").mkdir(exist_ok=True)
        atomic_write_text(rec.run_dir / "config.yaml", to_yaml(cfg))
        atomic_write_text(rec.run_dir / "metrics.jsonl", "")
        rec.write_summary("running")
        _LIVE[id(rec)] = rec
        return rec

    @classmethod
    def reopen(cls, run_dir: Path, cfg: ExperimentConfig, completed: int) -> RunRecorder:
        """Continue a run: keep metrics of rounds <= ``completed``, drop the rest."""
        rec = cls(Path(run_dir), cfg, rounds_completed=completed)
        old = json.loads((rec.run_dir / "summary.json").read_text()) if (rec.run_dir / "summary.json").is_file() else {}
        rec.wall_before = float(old.get("wall_seconds") or 0.0)
        rec.history = [r for r in read_metrics(rec.run_dir) if r["round"] <= completed]
        atomic_write_text(rec.run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rec.history))
        rec.write_summary("running")
        _LIVE[id(rec)] = rec
        return rec

    # -- during the run -------------------------------------------------------------------------
    def log(self, round_idx: int, client: int | None, metrics: dict[str, Any]) -> None:
        row = {"round": round_idx, "client": client, **{k: _clean(v) for k, v in metrics.items()}}
        self.history.append(row)
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")

    def round_done(self, round_idx: int) -> None:
        self.rounds_completed = round_idx
        self.write_summary("running")

    def wall(self) -> float:
        return self.wall_before + time.time() - self.started

    # -- at the end ------------------------------------------------------------------------------
    def interrupt(self) -> dict[str, Any]:
        return self.abandon("interrupted")

    def abandon(self, status: str, error: str | None = None) -> dict[str, Any]:
        """Final status written from outside the ServerApp thread (Ctrl-C, a dead engine); the thread, if it
        still runs, writes nothing more, so a run dir never stays ``running`` after its process has left."""
        summary = self.write_summary(status, error)
        self.frozen = True
        _LIVE.pop(id(self), None)
        return summary

    def write_summary(self, status: str, error: str | None = None) -> dict[str, Any]:
        if self.frozen:
            return json.loads((self.run_dir / "summary.json").read_text())
        final, per_client = last_metrics(self.history)
        summary = {
            "status": status,
            "experiment": self.cfg.experiment,
            "rounds_completed": self.rounds_completed,
            "rounds_planned": self.cfg.rounds,
            "wall_seconds": round(self.wall(), 3),
            "final": final,
            "per_client": per_client,
        }
        if error:
            summary["error"] = error
        atomic_write_text(self.run_dir / "summary.json", json.dumps(summary, indent=2))
        return summary

    def finish(self, status: str, error: str | None = None) -> dict[str, Any]:
        from fedsim.plots import plot_run

        _LIVE.pop(id(self), None)
        if self.frozen:
            return self.write_summary(status)
        try:
            plot_run(self.run_dir, self.history)
        except Exception as exc:  # plots must never turn a finished run into a failed one
            error = error or f"plotting failed: {exc}"
        return self.write_summary(status, error)


#: recorders of this process's runs that have not written a final status yet (by ``id``)
_LIVE: dict[int, RunRecorder] = {}


def abandon_live(status: str = "interrupted", error: str | None = None) -> None:
    """Give every unfinished run of this process a final status (the CLI calls it on Ctrl-C before exiting)."""
    for rec in list(_LIVE.values()):
        rec.abandon(status, error)


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def last_metrics(history: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Latest value of every metric: federation-level (``client`` null) and per client."""
    final: dict[str, Any] = {}
    per_client: dict[str, dict[str, Any]] = {}
    for row in history:
        vals = {k: v for k, v in row.items() if k not in ("round", "client")}
        if row["client"] is None:
            final.update(vals)
        else:
            per_client.setdefault(str(row["client"]), {}).update(vals)
    return final, per_client
