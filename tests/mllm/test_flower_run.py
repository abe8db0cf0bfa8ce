"""Federated LoRASculpt on Flower + Ray (``strategies/fedadapter.py`` + :mod:`fedsim.mllm.flower`).

One 2-round Ray simulation of configs/tuning/federated_lorasculpt.yaml, shrunk to a tiny model, shared by
the ``ray`` tests (run dir, metrics, client masks on disk, equality with the in-process loop); the other
tests exercise the aggregation rules and the strategy's round on hand-made tensors, in process.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import fedsim
from fedsim.errors import ConfigError
from fedsim.mllm.federated import aggregate, fedavg, masked_fedavg, to_array_record
from fedsim.server import ClientReply

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "tuning" / "federated_lorasculpt.yaml"
TINY = ["strategy.mllm.text_hidden=32", "strategy.mllm.text_intermediate=64", "strategy.mllm.text_heads=2",
        "strategy.mllm.vision_hidden=32", "strategy.mllm.vision_layers=1", "strategy.mllm.vision_intermediate=64",
        "strategy.pretrain.steps=20", "strategy.pretrain.n_train=128", "strategy.pretrain.batch_size=16"]
SMALL = ["rounds=2", "strategy.local_steps=3", "strategy.method.mask_step=2", "strategy.method.batch_size=8",
         "strategy.n_train=96", "strategy.n_test_per_family=6", "strategy.aggregation=masked"]


# -- aggregation rules on hand-made tensors ----------------------------------------------------------------
def test_masked_fedavg_averages_each_entry_over_the_clients_that_kept_it():
    a = {"w": np.array([2.0, 4.0, 0.0, 0.0], dtype=np.float32)}  # client a kept entries 0, 1
    b = {"w": np.array([0.0, 2.0, 6.0, 0.0], dtype=np.float32)}  # client b kept entries 1, 2
    assert np.allclose(fedavg([a, b], [1, 3])["w"], [0.5, 2.5, 4.5, 0.0])  # kept entries diluted
    out = masked_fedavg([a, b], [1, 3])["w"]
    assert np.allclose(out, [2.0, 2.5, 6.0, 0.0]) and out.dtype == np.float32  # no dilution, unkept stays 0


def test_masked_equals_fedavg_for_dense_tensors():
    g = np.random.default_rng(0)
    states = [{"a": g.normal(size=(3, 4)).astype(np.float32), "b": g.normal(size=5).astype(np.float32)}
              for _ in range(3)]
    dense, masked = aggregate(states, [5, 1, 2], "fedavg"), aggregate(states, [5, 1, 2], "masked")
    assert all(np.allclose(dense[k], masked[k], atol=1e-6) for k in dense)
    with pytest.raises(ConfigError, match="aggregation"):
        aggregate(states, [1, 1, 1], "median")


class _FakeContext:
    """Answers ``train.adapter`` with fixed per-client tensors (replies in scrambled order)."""

    def __init__(self, cfg, replies: dict[int, tuple[np.ndarray, int]]) -> None:
        self.cfg, self.replies, self.sent = cfg, replies, []

    @property
    def pids(self) -> list[int]:
        return sorted(self.replies)

    def sample(self, r: int) -> list[int]:
        return self.pids

    def broadcast(self, action, r, pids, conf=None, arrays=None):
        self.sent.append((action, r, list(pids), dict(arrays or {})))
        return {pid: ClientReply(pid, {"num-examples": float(n), "train_loss": float(pid), "partition-id": pid},
                                 {}, {"adapter": to_array_record({"w": w})})
                for pid, (w, n) in sorted(self.replies.items(), reverse=True)}


@pytest.mark.parametrize("how", ["fedavg", "masked"])
def test_strategy_round_aggregates_by_examples(how):
    from strategies.fedadapter import FedAdapter

    cfg = fedsim.load_config(CONFIG, [f"strategy.aggregation={how}", "num_clients=3"])
    sparse = {0: (np.array([1.0, 0.0, 0.0], np.float32), 10), 1: (np.array([0.0, 3.0, 0.0], np.float32), 30),
              2: (np.array([2.0, 0.0, 0.0], np.float32), 20)}
    ctx = _FakeContext(cfg, sparse)
    strat = FedAdapter(cfg.strategy_config(), ctx)
    strat.adapter = {"w": np.zeros(3, np.float32)}
    strat.artifacts = "/nowhere"
    metrics = strat.round(1)
    assert ctx.sent[0][0] == "train.adapter" and ctx.sent[0][2] == [0, 1, 2]
    assert np.array_equal(ctx.sent[0][3]["adapter"]["w"].numpy(), np.zeros(3))  # the global adapter went out
    expect = [(1 * 10 + 2 * 20) / 30, 3.0, 0.0] if how == "masked" else [50 / 60, 90 / 60, 0.0]
    assert np.allclose(strat.adapter["w"], expect)
    assert metrics["train_loss"] == pytest.approx(1.0) and set(strat.client_metrics) == {0, 1, 2}


def test_bad_keys_raise_config_errors():
    for bad, key in [("strategy.world.colour=1", "strategy.world.colour"),
                     ("strategy.method.rank=4", "strategy.method.rank"),
                     ("strategy.method.name=supervised", "strategy.method.name"),
                     ("strategy.aggregation=mean", "strategy.aggregation"),
                     ("strategy.mllm.text_layers=two", "strategy.mllm.text_layers")]:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            fedsim.load_config(CONFIG, [bad])


def test_mask_step_beyond_the_run_is_rejected():
    from fedsim.mllm.flower import task_of
    from strategies.fedadapter import FedAdapter

    cfg = fedsim.load_config(CONFIG, ["rounds=2", "strategy.local_steps=5", "strategy.method.mask_step=10"])
    strat = FedAdapter(cfg.strategy_config(), _FakeContext(cfg, {}))
    strat.task = task_of(cfg)
    with pytest.raises(ConfigError, match=r"strategy\.method\.mask_step"):
        strat._check_mask_step()


def test_client_state_survives_a_fresh_process(tmp_path):
    """train.adapter persists the mask; a new process (empty caches) reloads it and re-masks on receive."""
    from fedsim.client import ACTIONS, NodeRuntime
    from fedsim.mllm import flower
    from fedsim.mllm.federated import trainable_state

    art, run = str(tmp_path / "artifacts"), str(tmp_path / "run")
    cfg = fedsim.load_config(CONFIG, [*TINY, *SMALL, "num_clients=2", f"strategy.artifacts_dir={art}"])
    task = flower.task_of(cfg)
    init = trainable_state(flower.new_trainer(task, flower.base_model(task, art)))
    conf = {"run-dir": run, "artifacts-dir": art}
    rep = ACTIONS["train.adapter"](NodeRuntime(cfg, 1, 1), conf, {"adapter": to_array_record(init)})
    assert rep.metrics["num-examples"] > 0 and 0.05 < rep.metrics["nonzero"] <= 0.1
    assert (Path(run) / "checkpoints" / "clients" / "1" / "r1.pt").is_file()
    masks = flower.open_node(cfg, 1, run, 1, art).trainer.masks
    flower._NODES.clear()
    flower._BASES.clear()  # as in a fresh Ray worker
    node = flower.open_node(cfg, 1, run, 1, art)
    assert node.trainer.global_step == 3 and all(torch.equal(masks[n], m) for n, m in node.trainer.masks.items())
    dense = {k: np.ones_like(v) for k, v in init.items()}
    node.receive({"adapter": to_array_record(dense)})
    kept = trainable_state(node.trainer)
    assert all(np.array_equal(kept[n] != 0, masks[n].numpy()) for n in masks)  # own mask re-applied
    ev = ACTIONS["evaluate.adapter"](NodeRuntime(cfg, 1, 1), conf, {"adapter": to_array_record(init)}).metrics
    assert {k for k in ev} == {f"up/{f}" for f in task.world.upstream} | {f"down/{f}" for f in task.world.downstream}
    assert all(0.0 <= v <= 1.0 for v in ev.values())


# -- one Ray simulation ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fed_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fedadapter")
    cfg = fedsim.load_config(CONFIG, [*TINY, *SMALL, f"strategy.artifacts_dir={tmp / 'artifacts'}",
                                      "ray.num_cpus=2"])
    return cfg, fedsim.run(cfg, output_dir=tmp / "run")


@pytest.mark.ray
def test_run_dir_and_per_round_metrics(fed_run):
    cfg, result = fed_run
    assert result.summary["status"] == "completed" and result.summary["rounds_completed"] == 2
    rows = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    glob = {r["round"]: r for r in rows if r["client"] is None}
    assert sorted(glob) == [1, 2]
    for r in glob.values():
        for k in ("E", "F", "O", "down_acc", "up_acc", "client_E", "client_F", "train_loss"):
            assert math.isfinite(r[k]), k
        assert r["O"] == pytest.approx(r["E"] + r["F"])
        assert r["failures"] == 0
    assert glob[1]["adapter_delta"] > 0 and glob[2]["adapter_delta"] != glob[1]["adapter_delta"]
    per_client = {(r["round"], r["client"]) for r in rows if r["client"] is not None}
    assert per_client == {(r, c) for r in (1, 2) for c in range(4)}
    assert set(result.summary["per_client"]) == {"0", "1", "2", "3"}
    assert (result.run_dir / "checkpoints" / "server.pt").is_file()


@pytest.mark.ray
def test_client_masks_persist_at_ten_percent(fed_run):
    cfg, result = fed_run
    masks = []
    for pid in range(4):
        state = torch.load(result.run_dir / "checkpoints" / "clients" / str(pid) / "r2.pt", weights_only=False)
        tr = state["trainer"]
        assert tr["global_step"] == 6 and tr["masks"]
        for m in tr["masks"].values():
            assert math.floor(0.1 * m.numel()) == int(m.sum())
        masks.append(tr["masks"])
    assert any(not torch.equal(masks[0][n], masks[1][n]) for n in masks[0])  # client-local, not shared


@pytest.mark.ray
def test_flower_run_matches_the_in_process_loop(fed_run):
    """The Ray run's global adapter equals run_federated's on the same base, data and seeds."""
    import dataclasses

    from fedsim.mllm.federated import FederatedConfig, run_federated, trainable_state
    from fedsim.mllm.flower import base_model, downstream_train_set, task_of

    cfg, result = fed_run
    task = task_of(cfg)
    s = cfg.strategy
    base = base_model(task, s["artifacts_dir"])
    fed = FederatedConfig(num_clients=4, rounds=2, local_steps=s["local_steps"], alpha=s["alpha"], seed=cfg.seed,
                          aggregation=s["aggregation"])
    server, _ = run_federated(base, dataclasses.replace(task.method, steps=0),
                              downstream_train_set(task.world, s["n_train"], cfg.seed), fed)
    ref = trainable_state(server)
    got = torch.load(result.run_dir / "checkpoints" / "server.pt", weights_only=False)["strategy"]["adapter"]
    assert set(got) == set(ref)
    assert max(float(np.abs(got[k] - ref[k]).max()) for k in ref) < 1e-4
    assert any(np.abs(got[k]).sum() > 0 for k in got if "lora_B" in k)  # the adapter really trained
