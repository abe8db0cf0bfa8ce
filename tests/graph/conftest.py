"""Shared tiny fixtures for the graph KD tests: a few dozen synthetic graphs and a small teacher."""

from __future__ import annotations

import pytest
import torch

from fedsim.graph.data import GraphDataConfig, synthetic_graphs, train_test_split
from fedsim.graph.gnn import GNNSpec, GraphNet, train_supervised


@pytest.fixture(scope="session")
def tiny_data(one_thread):
    cfg = GraphDataConfig(num_graphs=60, min_nodes=12, max_nodes=16, seed=3)
    graphs = synthetic_graphs(cfg)
    return cfg, *train_test_split(graphs, 0.25, seed=0)


@pytest.fixture(scope="session")
def tiny_teacher(tiny_data):
    cfg, train, _ = tiny_data
    torch.manual_seed(0)
    teacher = GraphNet(GNNSpec(cfg.in_dim, 3, hidden=16, layers=2))
    train_supervised(teacher, train, epochs=8, lr=1e-2, batch_size=16, seed=0)
    return teacher
