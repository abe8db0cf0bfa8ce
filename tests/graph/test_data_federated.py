"""Graph data (synthetic + local TU loader without downloads), baselines, federated helpers."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from torch_geometric.datasets import TUDataset

from fedsim.errors import ConfigError, DataPathError
from fedsim.graph.acgkd import ACGKDConfig, PseudoGraphBank, generate
from fedsim.graph.baselines import bernoulli_log_prob, dfad_distill, gfkd_config
from fedsim.graph.data import GraphDataConfig, label_skew_split, load_tu, synthetic_graphs
from fedsim.graph.federated import (
    EnsembleTeacher,
    compress_client,
    distill_ensemble,
    export_model,
    import_model,
)
from fedsim.graph.gnn import GNNSpec, GraphNet, densify, predict_logits, train_supervised
from fedsim.trainers.base import seeded_generator

TINY = ACGKDConfig(graphs_per_class=4, min_nodes=8, max_nodes=12, gen_steps=10, kd_epochs=3,
                   batch_size=8, student_hidden=16, student_layers=2)


@pytest.mark.parametrize("family", ["motif", "community"])
def test_synthetic_graphs_seeded_balanced_and_sized(family):
    cfg = GraphDataConfig(family=family, num_graphs=12, min_nodes=15, max_nodes=18, seed=1)
    a, b = synthetic_graphs(cfg), synthetic_graphs(cfg)
    assert all(torch.equal(x.edge_index, y.edge_index) for x, y in zip(a, b))
    assert [int(g.y) for g in a] == [0, 1, 2] * 4
    assert all(g.x.shape == (g.num_nodes, cfg.in_dim) for g in a)
    other = synthetic_graphs(dataclasses.replace(cfg, seed=2))
    assert any(x.edge_index.shape != y.edge_index.shape or not torch.equal(x.edge_index, y.edge_index)
               for x, y in zip(a, other))
    if family == "community":
        assert all(15 <= g.num_nodes <= 18 for g in a)


def write_tu(root, name: str) -> None:
    """Three tiny graphs in the raw TU text format (1-based node ids, node labels present)."""
    raw = root / name / "raw"
    raw.mkdir(parents=True)
    edges = [(1, 2), (2, 1), (2, 3), (3, 2), (4, 5), (5, 4), (6, 7), (7, 6), (7, 8), (8, 7), (8, 6), (6, 8)]
    (raw / f"{name}_A.txt").write_text("".join(f"{a}, {b}\n" for a, b in edges))
    (raw / f"{name}_graph_indicator.txt").write_text("1\n1\n1\n2\n2\n3\n3\n3\n")
    (raw / f"{name}_graph_labels.txt").write_text("1\n-1\n1\n")
    (raw / f"{name}_node_labels.txt").write_text("0\n1\n2\n0\n0\n1\n1\n2\n")


def test_tu_loader_reads_local_files_without_download(tmp_path, monkeypatch):
    write_tu(tmp_path, "MINIMUTAG")

    def no_download(self):
        raise AssertionError("TUDataset tried to download")

    monkeypatch.setattr(TUDataset, "download", no_download)
    graphs = load_tu(str(tmp_path), "MINIMUTAG")
    assert [g.num_nodes for g in graphs] == [3, 2, 3]
    assert [int(g.y) for g in graphs] == [1, 0, 1]  # labels {-1, 1} remapped to {0, 1}
    assert graphs[0].x.shape == (3, 3) and torch.equal(graphs[0].x.argmax(1), torch.tensor([0, 1, 2]))
    assert graphs[2].edge_index.shape[1] == 6
    x, adj, mask = densify(next(iter(__import__("torch_geometric").loader.DataLoader(graphs, 3))))
    assert adj.shape == (3, 3, 3) and mask.sum() == 8


def test_tu_loader_missing_files_raise_before_download(tmp_path, monkeypatch):
    monkeypatch.setattr(TUDataset, "download", lambda self: pytest.fail("download attempted"))
    with pytest.raises(DataPathError, match="NOPE_A.txt"):
        load_tu(str(tmp_path), "NOPE")
    write_tu(tmp_path, "HALF")
    (tmp_path / "HALF" / "raw" / "HALF_graph_labels.txt").unlink()
    with pytest.raises(DataPathError, match="HALF_graph_labels.txt"):
        load_tu(str(tmp_path), "HALF")


def test_bad_data_and_model_config_name_the_key():
    with pytest.raises(ConfigError, match="data.family"):
        GraphDataConfig(family="tree")
    with pytest.raises(ConfigError, match="model.arch"):
        GNNSpec(3, 2, arch="gat")


def test_label_skew_split_partitions_every_graph(tiny_data):
    _, train, _ = tiny_data
    shards = label_skew_split(train, 3, alpha=0.5, seed=0)
    ids = sorted(id(g) for s in shards for g in s)
    assert ids == sorted(id(g) for g in train)
    again = label_skew_split(train, 3, alpha=0.5, seed=0)
    assert [len(s) for s in shards] == [len(s) for s in again]


def test_gfkd_reinforce_moves_structure_logits_without_reparameterisation(tiny_teacher):
    teacher = copy.deepcopy(tiny_teacher)
    cfg = gfkd_config(TINY)
    assert cfg.xi == 0 and cfg.edge_model == "bernoulli" and not cfg.reuse_classifier
    before = PseudoGraphBank(3, teacher.in_dim, cfg, seed=0).edges.logits()
    bank, metrics = generate(teacher, cfg, seed=0)
    assert not torch.allclose(bank.edges.logits(), before)  # score-function gradients reached them
    assert metrics["edge_params"] == 12 * 12 * 12
    logits = torch.zeros(1, 3, 3)
    adj = torch.tensor([[[0.0, 1, 0], [1, 0, 1], [0, 1, 0]]])
    lp = bernoulli_log_prob(logits, adj, torch.ones(1, 3, dtype=torch.bool))
    assert torch.allclose(lp, torch.tensor([3 * torch.log(torch.tensor(0.5))]))


def test_dfad_baseline_runs_and_is_seeded(tiny_teacher):
    cfg = dataclasses.replace(gfkd_config(TINY), edge_model="concrete")
    s1, _ = dfad_distill(copy.deepcopy(tiny_teacher), cfg, seed=0, iterations=3)
    s2, _ = dfad_distill(copy.deepcopy(tiny_teacher), cfg, seed=0, iterations=3)
    assert all(torch.equal(a, b) for a, b in zip(s1.state_dict().values(), s2.state_dict().values()))
    assert s1.spec.hidden == 32 and s1.spec.projector_dim == 0


def test_ensemble_teacher_averages_members_and_distils(tiny_data):
    cfg, train, test = tiny_data
    members = []
    for k in range(2):
        m = GraphNet(GNNSpec(cfg.in_dim, 3, hidden=8, layers=2))
        train_supervised(m, train[k::2], epochs=2, batch_size=16, seed=k)
        members.append(m)
    ens = EnsembleTeacher(members).eval()
    z, _ = predict_logits(ens, test)
    zs = torch.stack([predict_logits(m, test)[0] for m in members]).mean(0)
    assert torch.allclose(z, zs, atol=1e-5)
    assert len(ens.batch_norms()) == sum(len(m.batch_norms()) for m in members)
    student, metrics = distill_ensemble(members, TINY, seed=0)
    assert student.spec.projector_dim == 16 and student.spec.head_parts == 2
    assert metrics["edge_params"] > 0
    with pytest.raises(ConfigError, match="teachers"):
        distill_ensemble([], TINY)


def test_compress_and_export_import_roundtrip(tiny_teacher, tiny_data):
    student, _ = compress_client(copy.deepcopy(tiny_teacher), TINY, seed=1)
    spec, state = export_model(student)
    clone = import_model(spec, {k: v.numpy() for k, v in state.items()})
    a, _ = predict_logits(student, tiny_data[2])
    b, _ = predict_logits(clone, tiny_data[2])
    assert torch.equal(a, b)
    with pytest.raises(ConfigError, match="depth"):
        import_model({**spec, "depth": 3}, state)


def test_hard_adj_subset_matches_mask(tiny_teacher):
    bank = PseudoGraphBank(3, 4, TINY, seed=0)
    idx = torch.tensor([0, 5])
    adj = bank.hard_adj(seeded_generator(0), idx)
    assert adj.shape == (2, 12, 12)


def test_registered_trainer_trains_teacher_then_compresses(tiny_data):
    from types import SimpleNamespace

    from fedsim.registry import TRAINERS

    cfg, train, test = tiny_data
    trainer_cls = TRAINERS.get("acgkd")
    teacher = GraphNet(GNNSpec(cfg.in_dim, 3, hidden=8, layers=2))
    trainer = trainer_cls(dataclasses.replace(TINY, batch_size=16), teacher, seed=0)
    metrics = trainer.fit(SimpleNamespace(train=train), epochs=1, round_idx=0)
    assert metrics["num-examples"] == len(train) and metrics["train_loss"] > 0
    assert trainer.student is not None and trainer.student.spec.projector_dim == 8
    assert any(p.requires_grad for p in teacher.parameters())  # the client's own model stays trainable
    with pytest.raises(ConfigError, match="regulariser"):
        trainer.fit(SimpleNamespace(train=train), epochs=1, round_idx=1, regularizer=lambda *a: 0)
