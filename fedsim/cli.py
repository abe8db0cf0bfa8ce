"""``fedsim run | list | report``. Exit codes: 0 done, 2 bad input, 1 failure at run time."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from fedsim.errors import FedsimInputError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fedsim", description="Federated simulation on Flower + Ray.")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run an experiment (no CONFIG: the quickstart)")
    r.add_argument("config", nargs="?", help="YAML config (configs/...); key=value overrides may follow")
    r.add_argument("overrides", nargs="*", help="key=value overrides, e.g. rounds=5 data.corruption.rate=0.5")
    r.add_argument("--output-dir", help="run directory (default runs/<experiment>/<timestamp>)")
    r.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last round")
    sub.add_parser("list", help="datasets, models, trainers, strategies")
    rep = sub.add_parser("report", help="comparison table (markdown) and plots of run dirs")
    rep.add_argument("run_dirs", nargs="+")
    rep.add_argument("--out", help="directory for report.md and plots (default: the first run's parent)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _dispatch(args)
    except FedsimInputError as exc:
        print(f"fedsim: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        from fedsim.results import abandon_live

        abandon_live("interrupted")  # wherever the signal landed, no run dir is left 'running'
        print("fedsim: interrupted (the run dir is marked 'interrupted'; continue with --resume)", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        # Flower's ServerApp thread may still wait for replies from actors that died with the signal; a
        # normal exit would wait for it forever. The run dir is already marked, so leave at once.
        os._exit(130)


def _dispatch(args: argparse.Namespace) -> int:
    if args.cmd == "list":
        return _list()
    if args.cmd == "report":
        from fedsim.report import report

        out = report([Path(d) for d in args.run_dirs], Path(args.out) if args.out else None)
        print(out.read_text())
        return 0
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    import fedsim

    config, overrides = args.config, list(args.overrides)
    if config and "=" in config and not Path(config).exists():
        config, overrides = None, [config, *overrides]
    if args.resume:
        if config or overrides:
            raise fedsim.ConfigError("--resume: takes no CONFIG or overrides (the run dir's config.yaml is used)")
        result = fedsim.resume(args.resume)
    else:
        cfg = fedsim.load_config(config, overrides)
        try:
            result = fedsim.run(cfg, args.output_dir)
        except FedsimInputError:
            raise
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            print(f"fedsim: run failed: {exc}", file=sys.stderr)
            return 1
    _print_summary(result)
    return 0 if result.summary.get("status") == "completed" else 1


def _print_summary(result) -> None:
    from rich.console import Console
    from rich.table import Table

    s = result.summary
    title = f"{s['experiment']}: {s['status']} after {s['rounds_completed']} rounds ({s['wall_seconds']:.1f} s)"
    t = Table(title=title)
    keys = [k for k in ("acc_clean", "acc_corrupt") if k in s["final"]] or _headline_keys(s["final"])
    t.add_column("client")
    for k in keys:
        t.add_column(k, justify="right")
    for pid, m in sorted(s["per_client"].items(), key=lambda kv: int(kv[0])):
        t.add_row(pid, *[f"{m[k]:.4f}" if isinstance(m.get(k), float) else str(m.get(k, "")) for k in keys])
    final = s["final"]
    t.add_row("[bold]mean", *[f"[bold]{final[k]:.4f}" if isinstance(final.get(k), float) else "" for k in keys])
    console = Console()
    console.print(t)
    console.print(f"run dir: {result.run_dir}  (plots in {result.run_dir / 'plots'})")


def _headline_keys(final: dict, limit: int = 5) -> list[str]:
    """Columns for the end-of-run table when a strategy reports no image accuracies: its accuracy-like
    metrics first (``*acc*``, ``*auroc*``, ``utility*``, ``leak*``), then anything else, at most ``limit``."""
    def rank(k: str) -> int:
        return 0 if any(t in k for t in ("acc", "auroc", "utility", "leak")) else 1

    return sorted((k for k in final if not k.startswith("train_") and k != "failures"),
                  key=lambda k: (rank(k), k))[:limit]


def _list() -> int:
    from rich.console import Console
    from rich.table import Table

    from fedsim import registry

    registry.load_plugins()
    t = Table(title="fedsim components")
    t.add_column("kind")
    t.add_column("name")
    t.add_column("what it is")
    for reg in (registry.DATASETS, registry.PARTITIONERS, registry.MODELS, registry.TRAINERS, registry.STRATEGIES):
        for name, doc in reg.describe():
            t.add_row(reg.kind, name, doc)
    Console().print(t)
    return 0


if __name__ == "__main__":
    sys.exit(main())
