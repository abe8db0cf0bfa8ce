"""Graph-classification data, offline: seeded networkx synthetic families and a local TU-format loader.

Synthetic families (spec acgkd.md §5, our choice of sizes and noise):

- ``motif``: a Barabasi-Albert backbone with one motif attached by a single edge; the class is the
  motif (house, 6-cycle, 3x3 grid). A few random extra edges keep the task from being a pure
  cycle-detection lookup.
- ``community``: a stochastic block model whose class is its number of communities (2, 3 or 4).

Node features are one-hot degrees capped at ``max_degree`` (``feature="degree"``) or a constant 1
(``feature="constant"``). Real TU datasets (MUTAG, PROTEINS, ...) load with PyG's ``TUDataset`` from
``root/NAME/raw/NAME_*.txt``; we check those files first and raise :class:`DataPathError` instead of
letting PyG download. Graphs without node labels get the same degree one-hot features.
"""

from __future__ import annotations

import os

import networkx as nx
import numpy as np
import torch
import torch.nn.functional as F
from torch_geometric.data import Data
from torch_geometric.utils import degree, from_networkx

from fedsim.errors import ConfigError, DataPathError
from fedsim.graph.config import FAMILIES, GraphDataConfig

__all__ = ["FAMILIES", "GraphDataConfig", "load_graphs", "label_skew_split", "train_test_split"]

MOTIFS = ("house", "cycle6", "grid3")


def motif_graph(kind: str) -> nx.Graph:
    if kind == "house":
        return nx.house_graph()
    if kind == "cycle6":
        return nx.cycle_graph(6)
    return nx.convert_node_labels_to_integers(nx.grid_2d_graph(3, 3))


def attach(backbone: nx.Graph, motif: nx.Graph, rng: np.random.Generator) -> nx.Graph:
    """Disjoint union plus one edge from a random backbone node to a random motif node."""
    n = backbone.number_of_nodes()
    g = nx.disjoint_union(backbone, motif)
    g.add_edge(int(rng.integers(n)), n + int(rng.integers(motif.number_of_nodes())))
    return g


def add_noise_edges(g: nx.Graph, count: int, rng: np.random.Generator) -> nx.Graph:
    n = g.number_of_nodes()
    for _ in range(count):
        u, v = (int(a) for a in rng.choice(n, size=2, replace=False))
        g.add_edge(u, v)
    return g


def motif_sample(label: int, n: int, cfg: GraphDataConfig, rng: np.random.Generator) -> nx.Graph:
    motif = motif_graph(MOTIFS[label])
    base = max(n - motif.number_of_nodes(), cfg.ba_edges + 1)
    backbone = nx.barabasi_albert_graph(base, cfg.ba_edges, seed=int(rng.integers(2**31)))
    return add_noise_edges(attach(backbone, motif, rng), round(cfg.noise_edges * n), rng)


def community_sample(label: int, n: int, cfg: GraphDataConfig, rng: np.random.Generator) -> nx.Graph:
    k = label + 2
    sizes = [n // k + (1 if i < n % k else 0) for i in range(k)]
    probs = [[0.5 if i == j else 0.03 for j in range(k)] for i in range(k)]
    g = nx.stochastic_block_model(sizes, probs, seed=int(rng.integers(2**31)))
    return add_noise_edges(nx.Graph(g), round(cfg.noise_edges * n), rng)


def node_features(edge_index: torch.Tensor, num_nodes: int, cfg: GraphDataConfig) -> torch.Tensor:
    if cfg.feature == "constant":
        return torch.ones(num_nodes, 1)
    deg = degree(edge_index[0], num_nodes).long().clamp(max=cfg.max_degree)
    return F.one_hot(deg, cfg.max_degree + 1).float()


def to_data(g: nx.Graph, label: int, cfg: GraphDataConfig) -> Data:
    data = from_networkx(nx.convert_node_labels_to_integers(nx.Graph(g)))
    data = Data(edge_index=data.edge_index, num_nodes=g.number_of_nodes())
    data.x = node_features(data.edge_index, data.num_nodes, cfg)
    data.y = torch.tensor([label])
    return data


def synthetic_graphs(cfg: GraphDataConfig) -> list[Data]:
    """``cfg.num_graphs`` labelled graphs, classes balanced and interleaved, fully determined by seed."""
    rng = np.random.default_rng(cfg.seed)
    make = motif_sample if cfg.family == "motif" else community_sample
    graphs = []
    for i in range(cfg.num_graphs):
        label = i % 3
        n = int(rng.integers(cfg.min_nodes, cfg.max_nodes + 1))
        graphs.append(to_data(make(label, n, cfg, rng), label, cfg))
    return graphs


def tu_raw_files(root: str, name: str) -> list[str]:
    """The raw files PyG's TUDataset needs; if all exist it never calls its download()."""
    raw = os.path.join(root, name, "raw")
    return [os.path.join(raw, f"{name}_{part}.txt") for part in ("A", "graph_indicator", "graph_labels")]


def load_tu(root: str, name: str, cfg: GraphDataConfig | None = None) -> list[Data]:
    """A TU-format dataset from ``root/name/raw`` via PyG; missing files: DataPathError, no download."""
    from torch_geometric.datasets import TUDataset

    if not name:
        raise ConfigError("data.name: a TU dataset name (e.g. MUTAG) is required when data.source=tu")
    missing = [p for p in tu_raw_files(root, name) if not os.path.isfile(p)]
    if missing:
        raise DataPathError(f"data.root: TU dataset {name!r} not found; missing {missing[0]}")
    ds = TUDataset(root, name)
    cfg = cfg or GraphDataConfig()
    graphs = []
    for d in ds:
        x = d.x if d.x is not None and d.x.numel() else node_features(d.edge_index, d.num_nodes, cfg)
        graphs.append(Data(x=x.float(), edge_index=d.edge_index, y=d.y.view(-1)[:1].long(),
                           num_nodes=d.num_nodes))
    return graphs


def load_graphs(cfg: GraphDataConfig) -> list[Data]:
    return synthetic_graphs(cfg) if cfg.source == "synthetic" else load_tu(cfg.root, cfg.name, cfg)


def num_classes(graphs: list[Data]) -> int:
    return int(torch.cat([g.y.view(-1) for g in graphs]).max()) + 1


def train_test_split(graphs: list[Data], test_fraction: float,
                     seed: int) -> tuple[list[Data], list[Data]]:
    g = torch.Generator()
    g.manual_seed(seed)
    perm = torch.randperm(len(graphs), generator=g).tolist()
    cut = int(round(len(graphs) * (1 - test_fraction)))
    return [graphs[i] for i in perm[:cut]], [graphs[i] for i in perm[cut:]]


def label_skew_split(graphs: list[Data], num_clients: int, alpha: float, seed: int) -> list[list[Data]]:
    """Non-IID shards: each class's graphs are divided by Dirichlet(alpha) proportions over clients."""
    if num_clients < 1 or alpha <= 0:
        raise ConfigError(f"federation: need num_clients >= 1 and alpha > 0, got {num_clients}, {alpha}")
    rng = np.random.default_rng(seed)
    labels = np.array([int(g.y) for g in graphs])
    shards: list[list[Data]] = [[] for _ in range(num_clients)]
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        cuts = (np.cumsum(rng.dirichlet([alpha] * num_clients))[:-1] * len(idx)).astype(int)
        for k, part in enumerate(np.split(idx, cuts)):
            shards[k].extend(graphs[i] for i in part)
    return shards
