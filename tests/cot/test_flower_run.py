"""One Ray-backed Flower simulation of configs/cot/federated.yaml (tiny decoder, 2 clients, 2 rounds)."""

from __future__ import annotations

import json
import os

import pytest

pytestmark = pytest.mark.ray

OVERRIDES = ["num_clients=2", "rounds=2", "strategy.arith.d_model=32", "strategy.arith.d_ff=64",
             "strategy.arith.n_layers=2", "strategy.arith.n_heads=2", "strategy.arith.n_train=64",
             "strategy.arith.train_steps=4", "strategy.arith.batch_size=8", "strategy.federated.n_local=16",
             "strategy.federated.local_steps=2", "strategy.federated.batch_size=4",
             "strategy.federated.n_val_problems=8", "strategy.federated.n_heldout=8",
             "strategy.federated.flawed_fractions=[0.25,0.75]"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION", "1")
    import fedsim

    tmp = tmp_path_factory.mktemp("cotfed")
    # init: pretrained trains (4 steps) and caches the decoder on the server, once
    cfg = fedsim.load_config("configs/cot/federated.yaml", [*OVERRIDES, f"strategy.cache_dir={tmp / 'cache'}"])
    return fedsim.run(cfg, output_dir=tmp / "run")


def test_run_dir_holds_config_metrics_and_summary(run):
    assert run.summary["status"] == "completed" and run.summary["rounds_completed"] == 2
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "checkpoints/server.pt"):
        assert (run.run_dir / name).is_file(), name
    assert "cot_select" in (run.run_dir / "config.yaml").read_text()


def test_metrics_have_selection_stats_per_client_and_accuracy_per_round(run):
    rows = [json.loads(x) for x in (run.run_dir / "metrics.jsonl").read_text().splitlines()]
    server = {r["round"]: r for r in rows if r["client"] is None and "heldout_accuracy" in r}
    assert sorted(server) == [0, 1, 2]  # before training, then after each round
    assert server[0]["orientation"] in (1.0, -1.0)
    assert all(0.0 <= server[r]["heldout_accuracy"] <= 1.0 for r in server)
    assert server[2]["train_n_local"] == 32 and server[2]["train_n_flawed"] == 16
    assert server[2]["train_n_kept"] == 24  # ceil(0.7 * 16) per client
    clients = {(r["round"], r["client"]): r for r in rows if r["client"] is not None}
    assert sorted(clients) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    for r in clients.values():
        assert r["flawed_removed"] + r["clean_removed"] == r["n_local"] - r["n_kept"] == 4
        assert {"local_auroc", "removed_wrong_step", "train_loss", "flawed_weight_share"} <= set(r)
    assert clients[(2, 1)]["n_flawed"] == 12 and clients[(2, 0)]["n_flawed"] == 4  # non-IID
