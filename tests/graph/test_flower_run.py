"""The ``acgkd`` Flower strategy: its pieces in-process, and one Ray simulation of configs/acgkd/federated.yaml."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

import fedsim
from fedsim.client import ACTIONS, NodeRuntime
from fedsim.errors import ConfigError
from fedsim.graph.flower import ACTION, graph_split, graphs_cache_path, previous_teacher
from fedsim.server import ClientReply
from strategies.acgkd import ACGKDStrategy

CONFIG = Path(__file__).parents[2] / "configs" / "acgkd" / "federated.yaml"
TINY = ["num_clients=2", "strategy.alpha=5.0", "strategy.data.num_graphs=36", "strategy.data.min_nodes=12",
        "strategy.data.max_nodes=14", "strategy.teacher.hidden=8", "strategy.teacher.layers=2",
        "strategy.teacher.epochs=2", "strategy.distill.graphs_per_class=3", "strategy.distill.gen_steps=3",
        "strategy.distill.kd_epochs=2", "strategy.distill.min_nodes=8", "strategy.distill.max_nodes=10",
        "strategy.distill.student_hidden=8", "strategy.distill.batch_size=8"]


class NodeContext:
    """The ServerContext interface the strategy uses, serving node actions in this process."""

    def __init__(self, cfg, run_dir: Path) -> None:
        self.cfg, self.run_dir, self.failures = cfg, run_dir, 0
        self.pids = list(range(cfg.num_clients))
        self.sent: list[tuple[str, int, int]] = []
        self.replies: dict[int, ClientReply] = {}

    def sample(self, r: int) -> list[int]:
        return self.pids

    def base_config(self, r: int) -> dict:
        return {"run-dir": str(self.run_dir), "server-round": r}

    def broadcast(self, action: str, r: int, pids: list[int], conf=None, arrays=None) -> dict[int, ClientReply]:
        for pid in pids:
            self.sent.append((action, r, pid))
            reply = ACTIONS[action](NodeRuntime(self.cfg, pid, r), {**self.base_config(r), **(conf or {})},
                                    dict(arrays or {}))
            self.replies[pid] = ClientReply(pid, {**reply.metrics, "partition-id": pid}, reply.config, reply.arrays)
        return dict(self.replies)


def tiny_cfg(tmp_path: Path, *overrides: str):
    return fedsim.load_config(CONFIG, [*TINY, f"cache_dir={tmp_path / 'cache'}", *overrides])


def run_round(cfg, run_dir: Path, r: int = 1, strategy: ACGKDStrategy | None = None):
    ctx = NodeContext(cfg, run_dir)
    if strategy is None:
        strategy = ACGKDStrategy(cfg.strategy_config(), ctx)
        strategy.setup()
    strategy.ctx = ctx
    train = strategy.round(r)
    return strategy, ctx, train, strategy.evaluate(r), strategy.evaluate_global(r)


@pytest.fixture(scope="module")
def one_round(tmp_path_factory):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("acgkd")
    cfg = tiny_cfg(tmp)
    return (cfg, tmp / "run", *run_round(cfg, tmp / "run"))


def test_round_uploads_weights_only_and_distils_the_ensemble_on_the_server(one_round):
    cfg, run_dir, strategy, ctx, train, per_client, glob = one_round
    assert ctx.sent == [(ACTION, 1, 0), (ACTION, 1, 1)]
    for reply in ctx.replies.values():  # only model weights and the architecture travel
        assert set(reply.arrays) == {"model"} and set(reply.config) == {"model-spec"}
        assert reply.metrics["num-examples"] == sum(reply.metrics[f"class{c}_graphs"] for c in range(3))
    assert sum(r.metrics["num-examples"] for r in ctx.replies.values()) == 27  # 75% of 36 graphs
    assert strategy.student.spec.head_parts == 2 and strategy.student.spec.projector_dim == 16
    assert train["edge_params"] > 0 and train["gen_seconds"] > 0 and 0 <= train["bank_teacher_agreement"] <= 1
    for pid in (0, 1):
        m = per_client[pid]
        assert 0 <= m["upload_acc"] <= 1 and m["teacher_acc"] == m["upload_acc"]
        assert (run_dir / "checkpoints" / "gnn" / str(pid) / "r1.pt").is_file()
    assert 0 <= glob["ensemble_acc"] <= 1 and 0 <= glob["student_acc"] <= 1 and glob["ensemble_members"] == 2


def test_ensemble_score_is_the_mean_logit_vote_of_the_uploads(one_round):
    from fedsim.graph.gnn import predict_logits

    strategy, glob = one_round[2], one_round[6]
    logits = torch.stack([predict_logits(strategy.uploads[p], strategy.split.test)[0] for p in (0, 1)]).mean(0)
    y = torch.cat([g.y for g in strategy.split.test])
    assert glob["ensemble_acc"] == pytest.approx(float((logits.argmax(1) == y).float().mean()))


def test_second_round_continues_each_teacher_and_resume_state_roundtrips(one_round, tmp_path):
    cfg, run_dir, strategy = one_round[:3]
    first = {pid: {k: v.clone() for k, v in m.state_dict().items()} for pid, m in strategy.uploads.items()}
    state = strategy.state_dict()
    strategy, *_ = run_round(cfg, run_dir, r=2, strategy=strategy)
    assert previous_teacher(str(run_dir), 0, 2).name == "r1.pt" and previous_teacher(str(run_dir), 0, 1) is None
    moved = strategy.uploads[0].state_dict()
    assert any(not torch.equal(first[0][k], moved[k]) for k in moved)
    restored = ACGKDStrategy(cfg.strategy_config(), NodeContext(cfg, run_dir))
    restored.load_state_dict(torch.load(_save(state, tmp_path), weights_only=False))
    assert all(torch.equal(first[0][k], v) for k, v in restored.uploads[0].state_dict().items())
    assert restored.student is not None and restored.student.spec.head_parts == 2


def _save(state, tmp_path: Path) -> Path:
    path = tmp_path / "server.pt"
    torch.save(state, path)
    return path


def test_split_is_cached_seeded_and_disjoint(one_round):
    cfg = one_round[0]
    a, b = graph_split(cfg), graph_split(cfg)
    assert graphs_cache_path(cfg, cfg.strategy_config()).is_file()
    assert [len(s) for s in a.shards] == [len(s) for s in b.shards] and len(a.test) == 9
    assert all(torch.equal(x.edge_index, y.edge_index) for x, y in zip(a.test, b.test))


def test_client_compress_uploads_an_acgkd_student(tmp_path):
    cfg = tiny_cfg(tmp_path, "strategy.mode=client_compress", "num_clients=1")
    strategy, ctx, train, per_client, glob = run_round(cfg, tmp_path / "run")
    upload = strategy.uploads[0]
    assert upload.spec.projector_dim == 8 and upload.spec.layers == 3  # the compressed student
    assert "compress_gen_seconds" in per_client[0] and 0 <= per_client[0]["teacher_acc"] <= 1
    assert per_client[0]["upload_params"] == sum(p.numel() for p in upload.parameters())


def test_bad_strategy_keys_and_empty_shards_are_named(tmp_path):
    with pytest.raises(ConfigError, match="strategy.distill.xi"):
        tiny_cfg(tmp_path, "strategy.distill.xi=-1")
    with pytest.raises(ConfigError, match="strategy.data.family"):
        tiny_cfg(tmp_path, "strategy.data.family=tree")
    with pytest.raises(ConfigError, match="strategy.mode"):
        tiny_cfg(tmp_path, "strategy.mode=gossip")
    cfg = tiny_cfg(tmp_path, "num_clients=12", "strategy.alpha=0.01")
    empty = next(p for p, s in enumerate(graph_split(cfg).shards) if not s)
    with pytest.raises(ConfigError, match="strategy.alpha"):
        ACTIONS[ACTION](NodeRuntime(cfg, empty, 1), {"run-dir": str(tmp_path / "r"), "server-round": 1}, {})


@pytest.fixture(scope="module")
def ray_run(tmp_path_factory):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION", "1")
    tmp = tmp_path_factory.mktemp("acgkd_ray")
    cfg = tiny_cfg(tmp, "rounds=2")
    return fedsim.run(cfg, output_dir=tmp / "run")


@pytest.mark.ray
def test_federated_config_runs_on_ray_and_records_every_model(ray_run):
    assert ray_run.summary["status"] == "completed" and ray_run.summary["rounds_completed"] == 2
    rows = [json.loads(x) for x in (ray_run.run_dir / "metrics.jsonl").read_text().splitlines()]
    server = [r for r in rows if r["client"] is None]
    assert [r["round"] for r in server] == [1, 2]
    for key in ("student_acc", "ensemble_acc", "teacher_acc", "upload_acc"):
        assert all(0 <= r[key] <= 1 for r in server), key
    assert all(r["failures"] == 0 and r["train_gen_seconds"] > 0 for r in server)
    clients = [r for r in rows if r["client"] is not None]
    assert sorted({(r["round"], r["client"]) for r in clients}) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert all(r["num-examples"] > 0 and 0 <= r["upload_acc"] <= 1 for r in clients)
    for pid in (0, 1):  # each node kept its teacher for the next round, and only the last two rounds
        assert sorted(p.name for p in (ray_run.run_dir / "checkpoints" / "gnn" / str(pid)).iterdir()) == [
            "r1.pt", "r2.pt"]
    assert (ray_run.run_dir / "checkpoints" / "server.pt").is_file()
    assert set(ray_run.summary["per_client"]) == {"0", "1"}
