"""Live progress of a run: a rich progress bar over rounds plus one line per round."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fedsim.config import ExperimentConfig

SHOWN = ("acc_clean", "acc_corrupt", "train_loss", "round_seconds")


class RoundProgress:
    """Context manager; ``update(round, row)`` after each round."""

    def __init__(self, cfg: ExperimentConfig, start_round: int) -> None:
        self.cfg = cfg
        self.console = Console(stderr=True)
        self.bar = Progress(TextColumn(f"[bold]{cfg.experiment}[/] {cfg.strategy['name']}"), BarColumn(),
                            MofNCompleteColumn(), TimeElapsedColumn(), console=self.console, transient=True)
        self.task = self.bar.add_task("rounds", total=cfg.rounds, completed=start_round - 1)

    def __enter__(self) -> RoundProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def update(self, round_idx: int, row: dict[str, Any]) -> None:
        shown = "  ".join(f"{k}={row[k]:.4f}" if isinstance(row[k], float) else f"{k}={row[k]}"
                          for k in SHOWN if k in row and row[k] is not None)
        self.bar.console.print(f"round {round_idx}/{self.cfg.rounds}  {shown}")
        self.bar.update(self.task, completed=round_idx)
