"""Curves a researcher looks at: every metric per round, one line per client plus the mean."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

SKIP = {"num-examples", "partition-id", "num-params", "feature-dim"}


def series(history: list[dict[str, Any]]) -> dict[str, dict[Any, list[tuple[int, float]]]]:
    """metric -> client (None = federation) -> [(round, value)]."""
    out: dict[str, dict[Any, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    for row in history:
        for k, v in row.items():
            if k in ("round", "client") or k in SKIP or not isinstance(v, (int, float)) or isinstance(v, bool):
                continue
            out[k][row["client"]].append((row["round"], float(v)))
    return out


def plot_run(run_dir: Path, history: list[dict[str, Any]]) -> list[Path]:
    """One PNG per metric under ``run_dir/plots``; accuracy metrics also in one combined figure."""
    plots = Path(run_dir) / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    written = []
    data = series(history)
    for metric, by_client in sorted(data.items()):
        fig, ax = plt.subplots(figsize=(6, 4))
        for client, pts in sorted(by_client.items(), key=lambda kv: (kv[0] is None, str(kv[0]))):
            xs, ys = zip(*pts)
            if client is None:
                ax.plot(xs, ys, "k-o", lw=2.5, label="mean / global")
            else:
                ax.plot(xs, ys, "-", lw=1.2, alpha=0.8, label=f"client {client}")
        ax.set_xlabel("round")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(metric)
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = plots / f"{metric}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def plot_comparison(runs: dict[str, list[dict[str, Any]]], metric: str, path: Path) -> None:
    """Mean ``metric`` per round for several runs in one figure (``fedsim report``)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, history in runs.items():
        pts = series(history).get(metric, {}).get(None, [])
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, "-o", label=name)
    ax.set_xlabel("round")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
