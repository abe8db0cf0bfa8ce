"""``fedsim report RUN_DIR...``: one markdown comparison table and comparison plots."""

from __future__ import annotations

import json
from pathlib import Path

from fedsim.errors import DataPathError
from fedsim.plots import plot_comparison
from fedsim.results import atomic_write_text, read_metrics

PREFERRED = ("acc_clean", "acc_corrupt", "train_loss")


def _label(run_dir: Path, summary: dict) -> str:
    cfg_text = (run_dir / "config.yaml").read_text() if (run_dir / "config.yaml").is_file() else ""
    strategy = next((ln.split(":", 1)[1].strip() for ln in cfg_text.splitlines()[::-1]
                     if ln.startswith("  name:")), "")
    return f"{summary.get('experiment', run_dir.name)}/{run_dir.name}" + (f" ({strategy})" if strategy else "")


def report(run_dirs: list[Path], out: Path | None = None) -> Path:
    """Write ``report.md`` (final metrics per run, per-client means) and ``report_<metric>.png``."""
    rows, histories = [], {}
    for d in run_dirs:
        path = d / "summary.json"
        if not path.is_file():
            raise DataPathError(f"report: {d} is not a fedsim run directory (no summary.json)")
        s = json.loads(path.read_text())
        label = _label(d, s)
        histories[label] = read_metrics(d)
        rows.append((label, s))
    metrics = [m for m in PREFERRED if any(m in s["final"] for _, s in rows)]
    metrics += sorted({k for _, s in rows for k in s["final"]} - set(metrics) - {"failures", "round_seconds"})
    head = "| run | status | rounds | wall s | " + " | ".join(metrics) + " |"
    lines = [head, "|" + "---|" * (4 + len(metrics))]
    for label, s in rows:
        vals = [f"{s['final'][m]:.4f}" if isinstance(s["final"].get(m), (int, float)) else "" for m in metrics]
        lines.append(f"| {label} | {s['status']} | {s['rounds_completed']} | {s['wall_seconds']:.1f} | "
                     + " | ".join(vals) + " |")
    out = out or run_dirs[0].parent
    out.mkdir(parents=True, exist_ok=True)
    for m in metrics[:3]:
        plot_comparison(histories, m, out / f"report_{m}.png")
    md = out / "report.md"
    atomic_write_text(md, "# fedsim report\n\n" + "\n".join(lines) + "\n")
    return md
