"""What does running through Flower + Ray cost? The same FedAvg workload two ways.

(a) a plain sequential torch loop over the clients (same data, models, trainer and averaging as fedsim, and
    the global model evaluated once per round on the clean and corrupted test sets, as fedsim's server does);
(b) ``fedsim run`` with strategy ``fedavg`` on Flower's simulation engine with Ray (2 actors, 1 CPU each).
Then the same fedsim workload with 100 and 1,000 virtual clients, 10 sampled per round.

Reported: wall time of each, their ratio, the fixed start-up + shutdown cost (wall minus the rounds), the
per-round time and the framework's per-round overhead relative to the plain loop, and the peak memory
summed over the whole process tree (driver, Ray's GCS/raylet, workers; RSS, so shared pages count more
than once: an upper bound). Writes benchmarks/results/sim_overhead.md.

    .venv/bin/python benchmarks/sim_overhead.py [--rounds 3] [--clients 10]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIG = ROOT / "benchmarks" / "configs" / "sim_overhead.yaml"


class PeakMemory:
    """Samples the summed RSS of a process and all its descendants every 0.2 s."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                root = psutil.Process(self.pid)
                procs = [root, *root.children(recursive=True)]
                total = 0
                for p in procs:
                    try:
                        total += p.memory_info().rss
                    except psutil.NoSuchProcess:
                        pass
                self.peak = max(self.peak, total)
            except psutil.NoSuchProcess:
                return
            time.sleep(0.2)

    def __enter__(self) -> PeakMemory:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join()


def plain_loop(overrides: list[str], cache: str) -> dict:
    """FedAvg as a sequential loop: same clients, trainer, averaging and evaluation as fedsim's run."""
    import fedsim
    from fedsim.client import evaluate_model
    from fedsim.federation import build_client_model, build_trainer, federation_data

    cfg = fedsim.load_config(CONFIG, [*overrides, f"cache_dir={cache}"])
    t0 = time.time()
    fed = federation_data(cfg)
    setup = time.time() - t0
    global_model = build_client_model(cfg, 0, 10)
    rounds = []
    for r in range(1, cfg.rounds + 1):
        t = time.time()
        states, weights = [], []
        g = torch.Generator().manual_seed(cfg.seed * 100003 + r)
        k = cfg.clients_per_round or cfg.num_clients
        pids = sorted(torch.randperm(cfg.num_clients, generator=g)[:k].tolist())
        for pid in pids:
            model = build_client_model(cfg, pid, 10)
            model.load_state_dict(global_model.state_dict())
            data = fed.client(pid)
            build_trainer(cfg, model, pid).fit(data, cfg.local_epochs, r)
            states.append(model.state_dict())
            weights.append(len(data.train))
        avg = {key: sum(w * s[key].float() for w, s in zip(weights, states)) / sum(weights) for key in states[0]}
        global_model.load_state_dict({k: v.to(states[0][k].dtype) for k, v in avg.items()})
        evaluate_model(global_model, fed.test_clean), evaluate_model(global_model, fed.test_corrupt)
        rounds.append(time.time() - t)
    return {"wall": time.time() - t0, "setup": setup, "rounds": rounds}


def fedsim_run(overrides: list[str], cache: str, out: Path) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1"}
    cmd = [str(Path(sys.executable).parent / "fedsim"), "run", str(CONFIG), *overrides, f"cache_dir={cache}",
           "--output-dir", str(out)]
    t0 = time.time()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    with PeakMemory(proc.pid) as mem:
        stdout, stderr = proc.communicate()
    wall = time.time() - t0
    if proc.returncode != 0:
        raise SystemExit(f"fedsim run failed ({proc.returncode}):\n{stderr[-3000:]}")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rounds = [r["round_seconds"] for r in rows if r["client"] is None]
    return {"wall": wall, "rounds": rounds, "peak_mb": mem.peak / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--samples", type=int, default=100, help="private samples per client (compute per round)")
    ap.add_argument("--out", default="sim_overhead.md")
    ap.add_argument("--no-scale", action="store_true", help="skip the 100 / 1,000-client runs")
    args = ap.parse_args()
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="fedsim-bench-"))
    cache = str(tmp / "cache")
    base = [f"rounds={args.rounds}", f"num_clients={args.clients}", "clients_per_round=0",
            f"data.partition.samples_per_client={args.samples}"]
    print("plain torch loop ...", flush=True)
    t0 = time.time()
    plain = plain_loop(base, cache)
    print(f"  {time.time() - t0:.1f} s", flush=True)
    runs = {}
    scale = () if args.no_scale else ((100, 10), (1000, 10))
    for n, per_round in ((args.clients, 0), *scale):
        print(f"fedsim on Flower + Ray: {n} clients, {per_round or n} per round ...", flush=True)
        ov = [f"rounds={args.rounds}", f"num_clients={n}", f"clients_per_round={per_round}",
              f"data.partition.samples_per_client={min(args.samples, 50) if n > 100 else args.samples}"]
        runs[n] = fedsim_run(ov, cache, tmp / f"run{n}")
        print(f"  {runs[n]['wall']:.1f} s", flush=True)

    plain_round = sum(plain["rounds"]) / len(plain["rounds"])
    lines = [
        "# Simulation overhead: fedsim on Flower + Ray vs a plain torch loop",
        "",
        f"FedAvg, small CNN (width 0.5) on 16x16 digits, {args.samples} samples per client (50 with 1,000 "
        f"clients), {args.rounds} rounds x 1 local "
        f"epoch, batch 32; 2 Ray actors x 1 CPU on a {psutil.cpu_count()}-core machine. Peak memory: summed RSS "
        "over the whole process tree (an upper bound: shared pages count once per process).",
        "",
        "| run | clients (per round) | wall s | fixed start-up + shutdown s | mean round s | "
        "per-round overhead vs plain | peak memory MB |",
        "|---|---|---|---|---|---|---|",
        f"| plain torch loop | {args.clients} ({args.clients}) | {plain['wall']:.1f} | {plain['setup']:.1f} (data) | "
        f"{plain_round:.2f} | - | - |",
    ]
    for n, res in runs.items():
        mean_round = sum(res["rounds"]) / len(res["rounds"])
        steady = res["rounds"][1:] or res["rounds"]
        fixed = res["wall"] - sum(res["rounds"])
        over = "" if n != args.clients else f"{(sum(steady) / len(steady) - plain_round) / plain_round * 100:+.0f}%"
        lines.append(f"| fedsim (Flower+Ray) | {n} ({10 if n != args.clients else n}) | {res['wall']:.1f} | "
                     f"{fixed:.1f} | {mean_round:.2f} (steady {sum(steady) / len(steady):.2f}) | {over} | "
                     f"{res['peak_mb']:.0f} |")
    ratio = runs[args.clients]["wall"] / plain["wall"]
    lines += ["", f"Wall-time ratio fedsim / plain loop ({args.clients} clients): {ratio:.2f}x. "
              "Per-round overhead uses the steady rounds (round 1 includes actor warm-up).", ""]
    text = "\n".join(lines)
    print(text)
    out = ROOT / "benchmarks" / "results" / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
