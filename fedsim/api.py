"""Python API: ``fedsim.load_config(...)`` then ``fedsim.run(cfg)``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedsim.config import ExperimentConfig, load_config
from fedsim.errors import ConfigError
from fedsim.results import default_run_dir, read_metrics


@dataclass
class RunResult:
    summary: dict[str, Any]
    metrics: list[dict[str, Any]]
    run_dir: Path


def run(cfg: ExperimentConfig, output_dir: str | Path | None = None) -> RunResult:
    """Run one experiment through Flower's simulation engine on Ray; returns summary, metrics, run dir."""
    from fedsim.launch import launch

    run_dir = Path(output_dir) if output_dir else default_run_dir(cfg)
    run_dir = run_dir.resolve()
    if (run_dir / "summary.json").exists():
        raise ConfigError(f"--output-dir: {run_dir} already holds a run; use --resume to continue it")
    summary = launch(cfg, run_dir)
    return RunResult(summary, read_metrics(run_dir), run_dir)


def resume(run_dir: str | Path) -> RunResult:
    """Continue an interrupted run from its last completed round."""
    from fedsim.launch import launch

    run_dir = Path(run_dir).resolve()
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"--resume: {run_dir} is not a fedsim run directory (no config.yaml)")
    cfg = load_config(run_dir / "config.yaml")
    summary = launch(cfg, run_dir, resume=True)
    return RunResult(summary, read_metrics(run_dir), run_dir)
