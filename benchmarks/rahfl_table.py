"""RAHFL's Tables 5-7 at small scale, offline: every method on corrupted digits at xi in {0, 0.5, 1}.

Setting (configs/rahfl/digits.yaml, scaled by the flags below): 4 clients with ResNet10, ResNet12,
ShuffleNetV2 and MobileNetV2 (width 0.25) on 16x16 scikit-learn digits, overlapping private draws,
per-image CIFAR-10-C corruptions (severity 1-4) at rate xi, 512 unlabelled procedural shapes as public data,
CE pre-training shared by all methods at the same xi (cached), then R communication rounds. Scores: each
client's accuracy on the fully corrupted test set and the mean on the clean test set, as the paper reports.

Every method runs on Flower's simulation engine with Ray, one run each, through ``fedsim.run``. Results are
kept in ``benchmarks/results/rahfl_table.json`` as they finish, so an interrupted table continues where it
stopped (``--fresh`` starts over); the markdown is rewritten after every run.

    .venv/bin/python benchmarks/rahfl_table.py [--rounds 5] [--xi 0 0.5 1] [--methods local rahfl ...]
"""

from __future__ import annotations

import argparse
import json
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


def run_one(method: str, xi: float, args: argparse.Namespace) -> dict:
    from omegaconf import OmegaConf

    import fedsim
    from fedsim.config import build_config

    _, strategy, trainer = METHODS[method]
    raw = OmegaConf.load(ROOT / "configs" / "rahfl" / "digits.yaml")
    raw.strategy = strategy  # each method with its own defaults (no RAHFL knobs leak into baselines)
    raw.trainer = {**trainer, "lr": 1e-3, "batch_size": 64}
    overrides = [f"rounds={args.rounds}", f"data.corruption.rate={xi}", f"pretrain_epochs={args.pretrain}",
                 f"data.partition.samples_per_client={args.samples}", f"data.public.size={args.public}",
                 f"cache_dir={args.cache}", f"output_dir={args.runs}", f"experiment=rahfl-table-{method}-xi{xi}"]
    cfg = build_config(raw, overrides)
    t0 = time.time()
    result = fedsim.run(cfg)
    s = result.summary
    return {
        "status": s["status"], "wall_seconds": time.time() - t0,
        "corrupt": [s["per_client"][str(i)]["acc_corrupt"] for i in range(4)],
        "clean": [s["per_client"][str(i)]["acc_clean"] for i in range(4)],
        "run_dir": str(result.run_dir),
    }


def render(results: dict, args: argparse.Namespace) -> str:
    lines = ["# RAHFL reproduction table (offline, small scale)", "",
             f"4 clients ({', '.join(ARCHS)}, width 0.25), 16x16 digits, {args.samples} private images per "
             f"client (overlapping draws), {args.public} public procedural shapes, {args.pretrain} CE pre-training "
             f"epochs, {args.rounds} communication rounds, 1 local epoch per round, Adam 1e-3, batch 64; "
             "selection on a held-out validation split. Accuracy in %; 'corr' = fully corrupted test set "
             "(15 CIFAR-10-C types, severity 1-4), 'clean' = clean test set. Paper anchors: spec rahfl.md §10.", ""]
    for xi in sorted({float(k.split("|")[0]) for k in results}):
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
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--pretrain", type=int, default=5)
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument("--public", type=int, default=256)
    ap.add_argument("--xi", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--runs", default="runs/rahfl-table")
    ap.add_argument("--cache", default="runs/.cache")
    ap.add_argument("--fresh", action="store_true")
    args = ap.parse_args()
    store = RESULTS / "rahfl_table.json"
    results = {} if args.fresh or not store.is_file() else json.loads(store.read_text())
    for xi in args.xi:
        for method in args.methods:
            key = f"{float(xi)}|{method}"
            if key in results:
                continue
            print(f"== xi={xi} {method}", flush=True)
            results[key] = run_one(method, float(xi), args)
            RESULTS.mkdir(parents=True, exist_ok=True)
            store.write_text(json.dumps(results, indent=1))
            (RESULTS / "rahfl_table.md").write_text(render(results, args))
    print(render(results, args))


if __name__ == "__main__":
    main()
