"""RAHFL's Tables 5-7 at small scale, offline: every method on corrupted digits at xi in {0, 0.5, 1}.

Setting (configs/rahfl/digits.yaml, scaled by the flags below): 4 clients with ResNet10, ResNet12,
ShuffleNetV2 and MobileNetV2 (width 0.25) on 16x16 scikit-learn digits, overlapping private draws,
per-image CIFAR-10-C corruptions (severity 1-4) at rate xi, 256 unlabelled typeset glyphs as public data
(``--public-source synthetic``: far-domain procedural shapes, written to ``rahfl_table_synthetic.*``),
CE pre-training shared by all methods at the same xi (cached), then R communication rounds. Scores: each
client's accuracy on the fully corrupted test set and the mean on the clean test set, as the paper reports.

Every method runs on Flower's simulation engine with Ray, one run each, through ``fedsim.run``. Results are
kept in ``benchmarks/results/rahfl_table.json`` as they finish, so an interrupted table continues where it
stopped (``--fresh`` starts over); the markdown is rewritten after every run.

    .venv/bin/python benchmarks/rahfl_table.py [--jobs 2] [--rounds 3] [--xi 0 0.5 1] [--methods local rahfl ...]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# method -> (label in the table, overrides); baselines use their own papers' local learning
METHODS: dict[str, tuple[str, dict, dict]] = {
    "local": ("Local", {"name": "local"}, {"name": "supervised", "augment": True}),
    "fedmd": ("FedMD", {"name": "fedmd"}, {"name": "supervised", "augment": True}),
    "feddf": ("FedDF", {"name": "feddf"}, {"name": "supervised", "augment": True}),
    "kt_pfl": ("KT-pFL", {"name": "kt_pfl"}, {"name": "supervised", "augment": True}),
    "rhfl": ("RHFL", {"name": "rhfl"}, {"name": "sce", "augment": True}),
    "fccl": ("FCCL", {"name": "fccl"}, {"name": "supervised", "augment": True}),
    "fedproto": ("FedProto", {"name": "fedproto"}, {"name": "supervised", "augment": True}),
    "aughfl": ("AugHFL", {"name": "aughfl"}, {"name": "augmix_jsd"}),
    "rahfl": ("**RAHFL**", {"name": "rahfl"}, {"name": "dcl"}),
    "rahfl_sym": ("RAHFL, symmetric (Sym-HFL ablation)", {"name": "rahfl", "symmetric": True}, {"name": "dcl"}),
}
ARCHS = ["ResNet10", "ResNet12", "ShuffleNetV2", "MobileNetV2"]
RESULTS = ROOT / "benchmarks" / "results"
PUBLIC_LABEL = {"glyphs": "typeset glyphs (grey strokes like the digit scans: a near-domain public set)",
                "synthetic": "procedural shapes (colour, far from digits)"}
DEFAULT_PUBLIC = "glyphs"


def store_path(args: argparse.Namespace, suffix: str, seed: int | None = None) -> Path:
    """``rahfl_table[_<public source>][_seed<s>].<suffix>``; the default public set and seed 0 add no tag."""
    seed = args.seed if seed is None else seed
    tag = ("" if args.public_source == DEFAULT_PUBLIC else f"_{args.public_source}") + (
        "" if args.hflip else "_noflip") + (f"_seed{seed}" if seed else "")
    return RESULTS / f"rahfl_table{tag}.{suffix}"


def seed_spread(args: argparse.Namespace) -> list[str]:
    """Mean +- std of the corrupted-test average over every seed stored for this public set (seed 0's store
    and the ``_seed<s>`` ones), for the methods and xi that all of those seeds ran."""
    import statistics

    stores = {0: store_path(args, "json", 0)}
    stores.update({int(p.stem.rsplit("_seed", 1)[1]): p
                   for p in RESULTS.glob(store_path(args, "json", 0).stem + "_seed*.json")})
    runs = {s: json.loads(p.read_text()) for s, p in sorted(stores.items()) if p.is_file()}
    if len(runs) < 2:
        return []
    lines = [f"## Seed spread: corrupted-test Avg, mean ± std over seeds {sorted(runs)}", "",
             "Seed s redraws the train/test split, client samples, corruptions, initialisation, pre-training and "
             "every random choice of the run. Only methods that every seed ran are listed.", "",
             "| Method | " + " | ".join(f"xi = {xi:g}" for xi in args.xi) + " |", "|---|" + "---|" * len(args.xi)]
    for method, (label, _, _) in METHODS.items():
        cells = []
        for xi in args.xi:
            vals = [100 * sum(r[k]["corrupt"]) / 4 for r in runs.values() if (k := f"{float(xi)}|{method}") in r]
            cells.append(f"{statistics.mean(vals):.2f} ± {statistics.stdev(vals):.2f}" if len(vals) == len(runs)
                         else "")
        if any(cells):
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "RAHFL minus each method, paired by seed (mean ± std of the per-seed differences, points):", "",
              "| RAHFL minus | " + " | ".join(f"xi = {xi:g}" for xi in args.xi) + " |", "|---|" + "---|" * len(args.xi)]
    for method, (label, _, _) in METHODS.items():
        cells = []
        for xi in args.xi:
            k, ref = f"{float(xi)}|{method}", f"{float(xi)}|rahfl"
            diffs = [100 * (sum(r[ref]["corrupt"]) - sum(r[k]["corrupt"])) / 4 for r in runs.values()
                     if k in r and ref in r]
            cells.append(f"{statistics.mean(diffs):+.2f} ± {statistics.stdev(diffs):.2f}" if len(diffs) == len(runs)
                         else "")
        if method != "rahfl" and any(cells):
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines + [""]


def run_one(method: str, xi: float, args: argparse.Namespace) -> dict:
    from omegaconf import OmegaConf

    import fedsim
    from fedsim.config import build_config

    _, strategy, trainer = METHODS[method]
    raw = OmegaConf.load(ROOT / "configs" / "rahfl" / "digits.yaml")
    raw.strategy = strategy  # each method with its own defaults (no RAHFL knobs leak into baselines)
    raw.trainer = {**trainer, "lr": args.lr, "batch_size": 64}
    overrides = [f"rounds={args.rounds}", f"data.corruption.rate={xi}", f"pretrain_epochs={args.pretrain}",
                 f"pretrain_batch_size={args.pretrain_bs}", "pretrain_augment=false",
                 f"data.partition.samples_per_client={args.samples}", f"data.public.size={args.public}",
                 f"data.public.source={args.public_source}", f"seed={args.seed}", f"data.hflip={args.hflip}",
                 f"cache_dir={args.cache}", f"output_dir={args.runs}",
                 f"experiment=rahfl-table-{method}-xi{xi}{store_path(args, 'json').stem.removeprefix('rahfl_table')}"]
    cfg = build_config(raw, overrides)
    t0 = time.time()
    for attempt in range(3):  # a Ray node can time out while booting on an overloaded host: boot again
        try:
            result = fedsim.run(cfg)
            break
        except RuntimeError as exc:
            if attempt == 2 or "Simulation" not in str(exc):
                raise
            print(f"   Ray failed to start ({exc}); retrying", flush=True)
            time.sleep(30)
    s = result.summary
    return {
        "status": s["status"], "wall_seconds": time.time() - t0,
        "corrupt": [s["per_client"][str(i)]["acc_corrupt"] for i in range(4)],
        "clean": [s["per_client"][str(i)]["acc_clean"] for i in range(4)],
        "run_dir": str(result.run_dir),
    }


def render(results: dict, args: argparse.Namespace) -> str:
    title = ("" if args.public_source == DEFAULT_PUBLIC else f", public set: {args.public_source}") + (
        "" if args.hflip else ", no horizontal flips") + (
        f", seed {args.seed}" if args.seed else "")
    lines = [f"# RAHFL reproduction table (offline, small scale{title})", "",
             f"4 clients ({', '.join(ARCHS)}, width 0.25), 16x16 digits, {args.samples} private images per "
             f"client (overlapping draws), {args.public} public {PUBLIC_LABEL[args.public_source]}, {args.pretrain} "
             "CE pre-training "
             f"epochs, {args.rounds} communication rounds, 1 local epoch per round, Adam {args.lr:g} for every "
             "method, batch 64; "
             "selection on a held-out validation split. Accuracy in %; 'corr' = fully corrupted test set "
             "(15 CIFAR-10-C types, severity 1-4), 'clean' = clean test set. Paper anchors: spec rahfl.md §10.", ""]
    for xi in sorted({float(k.split("|")[0]) for k in results if not k.startswith("_")}):
        lines += [f"## xi = {xi:g}", "",
                  "| Method | " + " | ".join(f"corr {a}" for a in ARCHS) + " | **corr Avg** | clean Avg | wall s |",
                  "|---|" + "---|" * (len(ARCHS) + 3)]
        for method, (label, _, _) in METHODS.items():
            r = results.get(f"{xi}|{method}")
            if r is None:
                continue
            corr = [100 * v for v in r["corrupt"]]
            clean = 100 * sum(r["clean"]) / len(r["clean"])
            lines.append(f"| {label} | " + " | ".join(f"{v:.2f}" for v in corr)
                         + f" | **{sum(corr) / len(corr):.2f}** | {clean:.2f} | {r['wall_seconds']:.0f} |")
        lines.append("")
    if not args.seed:
        lines += seed_spread(args)
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pretrain", type=int, default=15)
    ap.add_argument("--pretrain-bs", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-4,
                    help="Adam lr of every method's local and collaborative steps (1e-3 in the paper; at this scale "
                         "1e-3 with a fresh optimiser per round erodes the pre-trained ShuffleNetV2/MobileNetV2)")
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument("--public", type=int, default=256)
    ap.add_argument("--public-source", default=DEFAULT_PUBLIC, choices=list(PUBLIC_LABEL),
                    help="public set; a non-default one writes its own rahfl_table_<source>.{json,md}")
    ap.add_argument("--no-hflip", dest="hflip", action="store_false",
                    help="no random horizontal flips in the augmentations (data.hflip=false); own store _noflip")
    ap.add_argument("--seed", type=int, default=0, help="a non-zero seed writes its own rahfl_table[...]_seed<s> store")
    ap.add_argument("--xi", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--runs", default="runs/rahfl-table")
    ap.add_argument("--cache", default="runs/.cache")
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--jobs", type=int, default=1,
                    help="runs at a time (each its own Ray); workers start on different xi so pre-training is shared")
    ap.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    store = store_path(args, "json")
    settings = {k: getattr(args, k) for k in ("rounds", "pretrain", "pretrain_bs", "lr", "samples", "public")}
    if args.public_source != DEFAULT_PUBLIC:
        settings["public_source"] = args.public_source
    if args.seed:
        settings["seed"] = args.seed
    if not args.hflip:
        settings["hflip"] = False
    claims = Path(args.runs) / f"claims{store.stem.removeprefix('rahfl_table')}"
    if args.worker == 0:
        results = {} if args.fresh or not store.is_file() else json.loads(store.read_text())
        if results.get("_settings", settings) != settings or (results and "_settings" not in results):
            sys.exit(f"{store} holds runs made with other settings ({results.get('_settings')}); "
                     "pass the same flags or --fresh")
        results["_settings"] = settings
        RESULTS.mkdir(parents=True, exist_ok=True)
        store.write_text(json.dumps(results, indent=1))
        shutil.rmtree(claims, ignore_errors=True)  # claims of an earlier, stopped table
        claims.mkdir(parents=True)
        argv = [a for a in sys.argv[1:] if a != "--fresh"]
        helpers = [subprocess.Popen([sys.executable, __file__, *argv, "--worker", str(w)])
                   for w in range(1, args.jobs)]
    work(args, store, claims)
    if args.worker == 0:
        for h in helpers:
            h.wait()
        table = render(json.loads(store.read_text()), args)
        store_path(args, "md").write_text(table)  # also refreshes the seed spread when nothing was left to run
        print(table)


def work(args: argparse.Namespace, store: Path, claims: Path) -> None:
    """Run every (xi, method) not yet in the store and not claimed by another worker."""
    time.sleep(45 * args.worker)  # stagger the workers' Ray start-ups
    n = len(args.xi)
    order = sorted(((i - args.worker) % n, m, xi, method) for i, xi in enumerate(args.xi)
                   for m, method in enumerate(args.methods))
    for _, _, xi, method in order:
        key = f"{float(xi)}|{method}"
        if key in json.loads(store.read_text()) or not claim(claims, key):
            continue
        print(f"== [worker {args.worker}] xi={xi} {method}", flush=True)
        result = run_one(method, float(xi), args)
        with open(claims / ".store.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # read-modify-write of the shared store, one worker at a time
            results = json.loads(store.read_text())
            results[key] = result
            store.write_text(json.dumps(results, indent=1))
            store_path(args, "md").write_text(render(results, args))


def claim(claims: Path, key: str) -> bool:
    try:
        os.close(os.open(claims / key.replace("|", "_"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False


if __name__ == "__main__":
    main()
