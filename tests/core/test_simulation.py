"""End-to-end runs on Flower's simulation engine with Ray (the slow tests; each run costs 15-30 s).

One module shares its runs across assertions:
- ``cli_run``: ``fedsim run`` in a subprocess, local Ray started by the run;
- ``cluster_run``: the Python API attached by address to a Ray head this test starts with
  ``ray start --head --block`` on 127.0.0.1 and stops by its own process id;
- ``resumed_run``: ``fedsim run`` interrupted with SIGINT after round 1, then ``--resume``;
- ``flwr run .``: in its own test, with FLWR_HOME in a temp dir; its SuperLink is stopped by pid.
All use the same config and seed, so their metrics must agree exactly.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

import fedsim
from fedsim.results import read_metrics

pytestmark = pytest.mark.ray

TINY = Path(__file__).parent.parent / "configs" / "tiny.yaml"
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
       "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # flwr spawns flower-superlink from PATH


def _fedsim(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "fedsim"), *args], capture_output=True, text=True, env=ENV, timeout=600, **kw)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _acc_table(run_dir: Path) -> dict:
    """Every metric of every (round, client) row except timings: equal runs give equal tables."""
    skip = {"round", "client", "round_seconds", "failures"}
    return {(r["round"], r["client"]): tuple(sorted((k, v) for k, v in r.items() if k not in skip))
            for r in read_metrics(run_dir)}


def _stop_tree(proc_pid: int) -> None:
    """Terminate a process and every descendant, by pid."""
    try:
        parent = psutil.Process(proc_pid)
    except psutil.NoSuchProcess:
        return
    procs = [*parent.children(recursive=True), parent]
    for p in procs:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=15)
    for p in alive:
        p.kill()


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    proc = _fedsim("run", str(TINY), f"cache_dir={out.parent / 'cache'}", "--output-dir", str(out), cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    port = _free_port()
    head = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
         "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=ENV, start_new_session=True)
    address = f"127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(1)
    else:
        _stop_tree(head.pid)
        pytest.fail("ray head did not start")
    time.sleep(3)  # let the raylet register
    yield address, head
    _stop_tree(head.pid)


@pytest.fixture(scope="module")
def cluster_run(ray_head, tmp_path_factory):
    address, head = ray_head
    out = tmp_path_factory.mktemp("api") / "run"
    cfg = fedsim.load_config(TINY, [f"ray.address={address}", f"cache_dir={out.parent / 'cache'}"])
    result = fedsim.run(cfg, out)
    return result, head


def _check_contract(run_dir: Path, rounds: int, clients: int) -> dict:
    for name in ("config.yaml", "metrics.jsonl", "summary.json"):
        assert (run_dir / name).is_file(), name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["rounds_completed"] == rounds
    assert set(summary["final"]) >= {"acc_clean", "acc_corrupt", "train_loss"}
    assert sorted(summary["per_client"]) == [str(i) for i in range(clients)]
    rows = read_metrics(run_dir)
    assert {r["round"] for r in rows} == set(range(1, rounds + 1))
    assert sum(r["client"] is None for r in rows) == rounds
    assert {p.name for p in (run_dir / "plots").glob("*.png")} >= {"acc_clean.png", "acc_corrupt.png"}
    assert (run_dir / "checkpoints" / "server.pt").is_file()
    saved = fedsim.load_config(run_dir / "config.yaml")  # the resolved config reloads and validates
    assert saved.experiment == "tiny" and saved.seed == 3 and saved.trainer["lr"] == 0.003
    return summary


def test_cli_run_writes_the_results_contract(cli_run):
    run_dir, proc = cli_run
    summary = _check_contract(run_dir, rounds=3, clients=3)
    assert "round 3/3" in proc.stderr  # live progress
    assert "mean" in proc.stdout and str(run_dir) in proc.stdout.replace("\n", "")
    assert summary["final"]["acc_clean"] > 0.3  # FedAvg learns digits (chance 0.1)


def test_api_run_attached_to_existing_ray_cluster(cluster_run, cli_run):
    result, head = cluster_run
    summary = _check_contract(result.run_dir, rounds=3, clients=3)
    assert result.summary == summary and len(result.metrics) == 3 * 4
    # same config and seed on another Ray cluster: identical numbers
    assert _acc_table(result.run_dir) == _acc_table(cli_run[0])
    assert head.poll() is None  # the run disconnected; the cluster it attached to is still up


def test_report_compares_runs(cli_run, cluster_run, tmp_path):
    proc = _fedsim("report", str(cli_run[0]), str(cluster_run[0].run_dir), "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "report.md").read_text()
    assert md.count("| tiny/") == 2 and "acc_corrupt" in md
    assert (tmp_path / "report_acc_clean.png").is_file()


def _default_sigint() -> None:
    """A child inherits an *ignored* SIGINT (exec keeps SIG_IGN, and Python then installs no KeyboardInterrupt
    handler); an earlier in-process Ray/Flower run can leave SIGINT ignored in pytest, so reset it, as a
    terminal's foreground job has it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_interrupt_then_resume_equals_uninterrupted(cli_run, tmp_path):
    """Ctrl-C after round 1, then --resume: rounds 1-3 equal the uninterrupted 3-round run's. The interrupted
    run plans 8 rounds so that on an idle machine (0.3 s per round) the signal lands long before it ends."""
    out, rounds = tmp_path / "run", 8
    proc = subprocess.Popen([str(BIN / "fedsim"), "run", str(TINY), f"cache_dir={cli_run[0].parent / 'cache'}",
                             f"rounds={rounds}", "--output-dir", str(out)], env=ENV, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, preexec_fn=_default_sigint)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        summary = out / "summary.json"
        if summary.is_file() and json.loads(summary.read_text()).get("rounds_completed", 0) >= 1:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        _stop_tree(proc.pid)
    first = json.loads((out / "summary.json").read_text())
    assert first["status"] == "interrupted", (first, proc.returncode, err[-4000:])
    assert 1 <= first["rounds_completed"] < rounds
    resumed = _fedsim("run", "--resume", str(out), cwd=ROOT)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = _check_contract(out, rounds=rounds, clients=3)
    assert summary["status"] == "completed"
    first_three = {k: v for k, v in _acc_table(out).items() if k[0] <= 3}
    assert first_three == _acc_table(cli_run[0])


def _start_superlink(env: dict, home: Path) -> subprocess.Popen:
    """Start Flower's local simulation SuperLink ourselves (the command ``flwr`` would run), so the test
    owns its pid and can wait for it as long as a loaded machine needs; ``flwr run`` then finds it up."""
    from flwr.cli.constant import LOCAL_CONTROL_API_ADDRESS, LOCAL_SUPERLINK_HTTP_API_PORT

    (home / "local-superlink").mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        ["flower-superlink", "--insecure", "--simulation", "--isolation", "subprocess", "--control-api-address",
         LOCAL_CONTROL_API_ADDRESS, "--host", "127.0.0.1", "--port", str(LOCAL_SUPERLINK_HTTP_API_PORT),
         "--database", str(home / "local-superlink" / "state.db"),
         "--log-file", str(home / "local-superlink" / "superlink.log")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    import httpx

    deadline = time.time() + 180
    while time.time() < deadline:
        assert proc.poll() is None, (home / "local-superlink" / "superlink.log").read_text()[-2000:]
        try:
            if httpx.get(f"http://127.0.0.1:{LOCAL_SUPERLINK_HTTP_API_PORT}/health", timeout=1).is_success:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(1)
    _stop_tree(proc.pid)
    pytest.fail("flower-superlink did not become healthy")


def test_flwr_run_from_repo_root(tmp_path):
    home = tmp_path / "flwr-home"
    out = tmp_path / "run"
    # RAY_ADDRESS=local: a fresh Ray for this run; without it Ray attaches to the newest cluster on the host
    env = {**ENV, "FLWR_HOME": str(home), "RAY_ADDRESS": "local"}
    superlink = _start_superlink(env, home)
    try:
        proc = subprocess.run(
            [str(BIN / "flwr"), "run", ".", "--stream", "--run-config",
             f'config="{TINY}" output-dir="{out}" overrides="rounds=2 cache_dir={tmp_path / "cache"}"',
             "--federation-config", "num-supernodes=3 client-resources-num-cpus=1"],
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
        _check_contract(out, rounds=2, clients=3)
    finally:
        _stop_tree(superlink.pid)  # the SuperLink and the app processes it spawned, by pid
    assert not psutil.pid_exists(superlink.pid) or psutil.Process(superlink.pid).status() == psutil.STATUS_ZOMBIE
