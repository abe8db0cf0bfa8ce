"""ACGKD (arXiv 2504.00540) at small scale on seeded synthetic motif graphs (BA + house / 6-cycle / grid).

Three tables, written to ``benchmarks/results/acgkd_table.md`` (and the raw numbers to ``.json``):

1. Accuracy on the real test graphs, mean +- std over ``--seeds`` seeds (seed s: the teacher's init and
   training order, the pseudo-graph banks and the students; the dataset and split are fixed): teacher
   GIN-5-64, a GIN-3-64 trained on the real graphs (reference), and data-free students per arm: ACGKD
   (xi = 4) and its ablations (sharing one bank per seed), ACGKD with full-rank edges,
   GFKD-style (Bernoulli + REINFORCE, full rank, GIN-3-32, vanilla KD) and DFAD-GNN-style; ACGKD
   xi = 2 / xi = 8 on the first seed only (time). Every arm, baselines included, gets the same
   generation settings (``BASE``: node features derived from the pseudo-graph's degrees as the data's
   are, straight-through edges, BN weight) chosen on a validation split (``fedsim.graph.acgkd`` docstring).
2. Pseudo-graph generation cost as n grows (3 graphs of n nodes, one per class): seconds per
   generation step and peak memory. Memory = peak growth of the process's resident set during the
   step over its level just before it, polled every 0.5 ms from /proc/self/statm by a thread, with
   glibc's mmap threshold fixed at 64 KiB so freed tensors leave RSS (not tracemalloc: it does not
   see torch's allocations). It includes activations, not only parameters. The edge-parameter
   state (parameter + gradient + two Adam moments, float32) is listed beside it. Deterministic: once.
3. Federated, through Flower + Ray (``fedsim run configs/acgkd/federated.yaml seed=s``, ``--fed-seeds``
   runs): 3 clients with Dirichlet(0.5) label-skewed shards each train a GIN-5-64; the server distils
   their ensemble data-free into one global student. (The seed also redraws the split and shards.)

Run: ``python benchmarks/acgkd_table.py [--seeds 3] [--fed-seeds 3]``; the table file is rewritten
after every finished part, so an interrupted run leaves what it measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

from fedsim.graph.acgkd import ACGKDConfig, PseudoGraphBank, distill, frozen, generate, generate_concrete
from fedsim.graph.baselines import dfad_distill, generate_reinforce, gfkd_config
from fedsim.graph.data import GraphDataConfig, synthetic_graphs, train_test_split
from fedsim.graph.gnn import GNNSpec, GraphNet, accuracy, train_supervised

ROOT = Path(__file__).resolve().parents[1]
DATA = GraphDataConfig(num_graphs=600, seed=0)
TEACHER_EPOCHS = 20
#: generation settings every arm shares (chosen on a validation split, see fedsim.graph.acgkd)
BASE = ACGKDConfig(node_features="degree")
SIZES = (32, 128, 512, 2048)
SCALE_METHODS = {"BinConcrete full-rank (dense)": {"xi": 0}, "BinConcrete xi=2 (dense)": {"xi": 2},
                 "BinConcrete xi=4 (dense)": {"xi": 4}, "BinConcrete xi=8 (dense)": {"xi": 8},
                 "BinConcrete xi=4 (implicit, blockwise)": {"xi": 4, "implicit_edges": True,
                                                            "straight_through": False},
                 "GFKD Bernoulli+REINFORCE full-rank": {"xi": 0, "edge_model": "bernoulli"}}
ABLATIONS = {"ACGKD full (xi=4)": {}, "w/o classifier reuse": {"reuse_classifier": False},
             "w/o curriculum": {"curriculum": False}, "w/o adversarial temp (tau=4)": {"adversarial_temp": False}}
FIRST_SEED_ONLY = ("ACGKD xi=2", "ACGKD xi=8")
RESULTS = ROOT / "benchmarks" / "results"


def make_teacher(graphs, seed: int, layers: int = 5) -> GraphNet:
    torch.manual_seed(seed)
    model = GraphNet(GNNSpec(DATA.in_dim, 3, hidden=64, layers=layers))
    train_supervised(model, graphs, TEACHER_EPOCHS, lr=1e-2, seed=seed)
    return model


def fresh(teacher: GraphNet) -> GraphNet:
    clone = GraphNet(teacher.spec)
    clone.load_state_dict(teacher.state_dict())
    return clone


def bank_note(gen: dict[str, float]) -> str:
    return f"gen {gen['gen_seconds']:.0f}s, bank agreement {gen['bank_teacher_agreement']:.2f}"


def seed_rows(train, test, seed: int) -> dict[str, tuple[float, str]]:
    """arm -> (test accuracy, note) for one seed; ablation arms share one bank."""
    teacher = make_teacher(train, seed)
    rows = {"teacher GIN-5-64 (trained on the real graphs)": (accuracy(teacher, test), "uses data"),
            "GIN-3-64 trained on the real graphs (reference)": (
                accuracy(make_teacher(train, seed + 100, layers=3), test), "uses data")}
    bank, gen = generate(fresh(teacher), BASE, seed=seed)
    for name, change in ABLATIONS.items():
        student, m = distill(fresh(teacher), bank, dataclasses.replace(BASE, **change), seed=seed)
        rows[name] = (accuracy(student, test), f"{bank_note(gen)}, tau_final {m['tau_final']:.1f}")
    arms = {"ACGKD full-rank edges (xi=0)": dataclasses.replace(BASE, xi=0),
            "GFKD-style (Bernoulli+REINFORCE, GIN-3-32)": gfkd_config(BASE)}
    if seed == 0:
        arms.update({"ACGKD xi=2": dataclasses.replace(BASE, xi=2), "ACGKD xi=8": dataclasses.replace(BASE, xi=8)})
    for name, cfg in arms.items():
        bank, gen = generate(fresh(teacher), cfg, seed=seed)
        student, _ = distill(fresh(teacher), bank, cfg, seed=seed)
        rows[name] = (accuracy(student, test), f"{gen['edge_params']:.0f} edge params, {bank_note(gen)}")
    student, m = dfad_distill(fresh(teacher), gfkd_config(BASE), seed=seed, iterations=200)
    rows["DFAD-GNN-style (generator vs student, L1, GIN-3-32)"] = (
        accuracy(student, test), f"200 iterations, {m['gen_seconds']:.0f}s")
    return rows


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_growth(fn) -> tuple[float, float]:
    """(peak RSS growth MiB over the level before ``fn``, seconds): RSS polled every 0.5 ms by a thread.

    Needs MALLOC_MMAP_THRESHOLD_ fixed (see :func:`main`) so freed tensors return to the OS and RSS
    follows live memory instead of glibc's retained heap."""
    base, best, stop = rss_bytes(), [0], threading.Event()

    def poll() -> None:
        while not stop.is_set():
            best[0] = max(best[0], rss_bytes())
            time.sleep(0.0005)

    thread = threading.Thread(target=poll)
    thread.start()
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    stop.set()
    thread.join()
    return (max(best[0], rss_bytes()) - base) / 2**20, seconds


def scale_rows() -> dict[str, dict[str, float]]:
    """Per (method, n): one generation step on 3 graphs of n nodes (median of 2 steps; 1 at n >= 512)."""
    train, _ = split()
    teacher = frozen(make_teacher(train, seed=0))
    out = {}
    for n in SIZES:
        for method, change in SCALE_METHODS.items():
            cfg = dataclasses.replace(BASE, graphs_per_class=1, gen_steps=1, **change)
            run = generate_concrete if cfg.edge_model == "concrete" else generate_reinforce
            bank = PseudoGraphBank(3, DATA.in_dim, cfg, seed=0, n_override=n)
            step = functools.partial(run, teacher, bank, cfg, 0)
            cells = [peak_rss_growth(step) for _ in range(1 if n >= 512 else 2)]
            out[f"{method}|{n}"] = {"peak_mib": max(c[0] for c in cells),
                                    "sec_per_step": statistics.median(c[1] for c in cells),
                                    "edge_state_mib": bank.edge_param_count() * 4 * 4 / 2**20}
            print(method, n, out[f"{method}|{n}"], flush=True)
    return out


def federated_run(seed: int) -> dict[str, float]:
    """One ``fedsim run configs/acgkd/federated.yaml`` on Flower + Ray with ``BASE``'s generation settings."""
    import fedsim

    changed = {f.name: getattr(BASE, f.name) for f in dataclasses.fields(BASE)
               if getattr(BASE, f.name) != getattr(ACGKDConfig(), f.name)}
    overrides = [f"seed={seed}"] + [f"strategy.distill.{k}={json.dumps(v)}" for k, v in changed.items()]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = fedsim.load_config(ROOT / "configs" / "acgkd" / "federated.yaml",
                                 [*overrides, f"cache_dir={tmp}/cache"])
        result = fedsim.run(cfg, output_dir=Path(tmp) / "run")
    final, clients = result.summary["final"], result.summary["per_client"]
    out = {f"client {pid} teacher GIN-5-64": clients[pid]["teacher_acc"] for pid in sorted(clients)}
    out.update({"ensemble of client teachers (mean logits)": final["ensemble_acc"],
                "server student GIN-3-64, ACGKD data-free from the ensemble": final["student_acc"],
                "wall seconds (Flower + Ray run)": result.summary["wall_seconds"],
                "server generation seconds": final["train_gen_seconds"]})
    out.update({f"client {pid} class counts": [int(clients[pid][f"class{c}_graphs"]) for c in range(3)]
                for pid in sorted(clients)})
    return out


def split():
    return train_test_split(synthetic_graphs(DATA), 0.25, seed=0)


def job(kind: str, seed: int = 0):
    """One independent part of the benchmark (run in its own process)."""
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") != "65536":
        raise RuntimeError("run through main(): the memory probe needs MALLOC_MMAP_THRESHOLD_=65536")
    torch.set_num_threads(1)
    start = time.perf_counter()
    if kind == "scale":
        out = scale_rows()
    elif kind == "seed":
        out = seed_rows(*split(), seed)
    else:
        out = federated_run(seed)
    return kind, seed, out, time.perf_counter() - start


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f} (1 seed)"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


PART_NAMES = {"seed": "the per-seed accuracy runs", "scale": "the generation-cost table", "fed": "the federated runs"}


def render(parts: dict, seconds: float, workers: int, kept: tuple[str, ...] = ()) -> str:
    seeds = sorted(s for k, s in parts if k == "seed")
    fed_seeds = sorted(s for k, s in parts if k == "fed")
    rows = [parts[("seed", s)] for s in seeds]
    lines = ["# ACGKD small-scale reproduction (synthetic BA+motif graphs, 3 classes)", "",
             f"Data: {DATA.num_graphs} graphs, {DATA.min_nodes}-{DATA.max_nodes} nodes, degree one-hot "
             f"features; fixed 75/25 split. Seeds {seeds} (teacher, banks, students). Shared generation "
             f"settings: node_features={BASE.node_features}, straight_through={BASE.straight_through}, "
             f"alpha_bn={BASE.alpha_bn}, init_density={BASE.init_density}, gen_steps={BASE.gen_steps}, "
             f"kd_epochs={BASE.kd_epochs}. "
             f"Total benchmark time {seconds / 60:.1f} min ({workers} processes in parallel, 1 torch "
             f"thread each, on a 2-core machine)"
             + (f"; kept from an earlier run (`--keep`): {', '.join(PART_NAMES[k] for k in kept)}" if kept else "")
             + ".", "",
             "## Accuracy on real test graphs (students never see a real graph)", "",
             "| arm | test acc (mean ± std over seeds) | notes (first seed) |", "|---|---|---|"]
    for name in rows[0] if rows else []:
        vals = [r[name][0] for r in rows if name in r]
        lines.append(f"| {name} | {mean_std(vals)} | {rows[0][name][1]} |")
    if ("scale", 0) in parts:
        scale = parts[("scale", 0)]
        lines += ["", "## Pseudo-graph generation cost vs n (3 graphs of n nodes, 1 optimiser step)", "",
                  "seconds/step (median of 2 below n=512, else 1) / peak RSS growth MiB during the step "
                  "(/proc/self/statm polled every 0.5 ms) / edge-parameter state MiB "
                  "(param+grad+2 Adam moments). Wall-clock times are sensitive to other load on the machine.", "",
                  "| method | " + " | ".join(f"n={n}" for n in SIZES) + " |", "|---|" + "---|" * len(SIZES)]
        for method in SCALE_METHODS:
            cells = [scale[f"{method}|{n}"] for n in SIZES]
            lines.append(f"| {method} | " + " | ".join(
                f"{c['sec_per_step']:.3f}s / {c['peak_mib']:.0f} / {c['edge_state_mib']:.2f}" for c in cells) + " |")
    if fed_seeds:
        feds = [parts[("fed", s)] for s in fed_seeds]
        lines += ["", "## Federated on Flower + Ray: server-side data-free distillation of 3 non-IID client "
                  f"teachers (`fedsim run configs/acgkd/federated.yaml`, seeds {fed_seeds})", "",
                  "| model | test acc (mean ± std over runs) |", "|---|---|"]
        for name, value in feds[0].items():
            if isinstance(value, float) and "seconds" not in name:
                lines.append(f"| {name} | {mean_std([f[name] for f in feds])} |")
        counts = "; ".join(f"seed {s}: " + ", ".join(f"{k.split(' class')[0]} {v}" for k, v in f.items()
                                                    if k.endswith("class counts")) for s, f in zip(fed_seeds, feds))
        lines += ["", f"Client class counts (label skew): {counts}. Wall time per Flower run: "
                  + ", ".join(f"{f['wall seconds (Flower + Ray run)']:.0f}s" for f in feds)
                  + "; server-side generation: "
                  + ", ".join(f"{f['server generation seconds']:.0f}s" for f in feds) + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--fed-seeds", type=int, default=3)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--keep", nargs="+", default=[], choices=["seed", "scale", "fed"],
                   help="keep these parts from the existing acgkd_table.json instead of running them (e.g. "
                        "`--keep seed fed --seeds 0 --fed-seeds 0` re-measures only the generation cost)")
    args = p.parse_args()
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") != "65536":  # must be set before the first malloc
        os.execve(sys.executable, [sys.executable, *sys.argv],
                  {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"})
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    start = time.perf_counter()
    RESULTS.mkdir(exist_ok=True)
    parts: dict = {}
    if args.keep:
        old = json.loads((RESULTS / "acgkd_table.json").read_text())
        for key, value in old.items():
            kind, seed = key.split(":")
            if kind in args.keep:
                parts[(kind, int(seed))] = value
    jobs = [("seed", s) for s in range(args.seeds) if "seed" not in args.keep]
    jobs += [("scale", 0)] if "scale" not in args.keep else []
    jobs += [("fed", s) for s in range(args.fed_seeds) if "fed" not in args.keep]
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(job, kind, seed) for kind, seed in jobs]
        for fut in as_completed(futures):
            kind, seed, out, secs = fut.result()
            print(f"done {kind} {seed} in {secs:.0f}s: {out}", flush=True)
            parts[(kind, seed)] = out
            save(parts, time.perf_counter() - start, args)
    print(save(parts, time.perf_counter() - start, args))


def save(parts: dict, seconds: float, args: argparse.Namespace) -> str:
    """Write the table and the raw parts (after every finished part, so an interrupted run keeps them)."""
    table = render(parts, seconds, args.workers, tuple(args.keep))
    (RESULTS / "acgkd_table.md").write_text(table)
    (RESULTS / "acgkd_table.json").write_text(json.dumps({f"{k}:{s}": v for (k, s), v in parts.items()}, indent=1))
    return table


if __name__ == "__main__":
    main()
