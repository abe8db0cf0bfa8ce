"""GIN / GCN graph classifiers with one dense forward path for real batches and soft pseudo-graphs.

Data-free graph KD feeds the teacher *relaxed* adjacency matrices (entries in (0, 1)) whose
gradients must reach the structure parameters, so message passing runs on dense ``(B, N, N)``
adjacency tensors (PyG's ``DenseGINConv`` / ``DenseGCNConv`` / ``DenseGATConv``). Real PyG batches
go through the same path after ``to_dense_batch`` / ``to_dense_adj``, so a teacher trained on real
graphs and probed with pseudo-graphs uses exactly the same arithmetic.

BatchNorm layers only see valid (unpadded) nodes: padding rows would otherwise bias the running
statistics that pseudo-graph generation later matches.

Every model is ``layers -> masked pooling -> feature f -> head``; ``head`` is the classifier that
ACGKD's student reuses from the teacher. A student built with ``projector_dim > 0`` inserts a
one-layer GAT projector (student hidden -> teacher feature space) before pooling.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.data import Batch
from torch_geometric.loader import DataLoader
from torch_geometric.nn import DenseGATConv, DenseGCNConv, DenseGINConv
from torch_geometric.utils import to_dense_adj, to_dense_batch

from fedsim.errors import ConfigError
from fedsim.graph.config import ARCHS
from fedsim.graph.implicit import ImplicitAdjacency

POOLS = ("mean", "sum")


@dataclass
class GNNSpec:
    """Everything needed to rebuild a model from its state_dict (travels with the weights)."""

    in_dim: int
    num_classes: int
    arch: str = "gin"
    hidden: int = 64
    layers: int = 5
    pooling: str = "mean"
    dropout: float = 0.0
    #: > 0: add a 1-layer GAT projector hidden -> projector_dim (ACGKD student reusing a teacher head)
    projector_dim: int = 0
    #: > 1: the head averages the logits of ``head_parts`` heads, each reading its slice of the
    #: feature (the classifier of an ensemble of client teachers, reused by the server's student)
    head_parts: int = 1

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ConfigError(f"model.arch: unknown {self.arch!r}; choose one of {list(ARCHS)}")
        if self.pooling not in POOLS:
            raise ConfigError(f"model.pooling: unknown {self.pooling!r}; choose one of {list(POOLS)}")
        for key in ("in_dim", "num_classes", "hidden", "layers", "head_parts"):
            if int(getattr(self, key)) < 1:
                raise ConfigError(f"model.{key}: must be >= 1, got {getattr(self, key)}")

    @property
    def feature_dim(self) -> int:
        return self.projector_dim or self.hidden

    def to_dict(self) -> dict:
        return asdict(self)


def masked_apply(module: nn.Module, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Apply a node-wise ``module`` to the valid nodes of ``x`` (B, N, F) only; padding stays 0."""
    out = module(x[mask])
    full = x.new_zeros(*x.shape[:2], out.shape[-1])
    full[mask] = out
    return full


def pool(x: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """Masked mean or sum readout over nodes: (B, N, F) -> (B, F)."""
    m = mask.unsqueeze(-1).to(x.dtype)
    total = (x * m).sum(1)
    return total if how == "sum" else total / m.sum(1).clamp(min=1.0)


def mlp_head(dim: int, num_classes: int, dropout: float = 0.0) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(dim, num_classes))


class EnsembleHead(nn.Module):
    """Mean of several heads' logits, head k reading the k-th equal slice of the feature vector."""

    def __init__(self, heads: list[nn.Module]) -> None:
        super().__init__()
        self.parts = nn.ModuleList(heads)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        chunks = f.chunk(len(self.parts), dim=-1)
        return torch.stack([h(c) for h, c in zip(self.parts, chunks)]).mean(0)


def make_head(feature_dim: int, num_classes: int, parts: int = 1, dropout: float = 0.0) -> nn.Module:
    if parts == 1:
        return mlp_head(feature_dim, num_classes, dropout)
    if feature_dim % parts:
        raise ConfigError(f"model.head_parts: {parts} does not divide the feature size {feature_dim}")
    return EnsembleHead([mlp_head(feature_dim // parts, num_classes, dropout) for _ in range(parts)])


def gin_mlp(d_in: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_out), nn.BatchNorm1d(d_out), nn.ReLU(), nn.Linear(d_out, d_out))


class GraphNet(nn.Module):
    """GIN-L-H or GCN-L-H over dense graphs; ``forward_all`` returns (logits, graph feature)."""

    def __init__(self, spec: GNNSpec) -> None:
        super().__init__()
        self.spec = spec
        dims = [spec.in_dim] + [spec.hidden] * spec.layers
        if spec.arch == "gin":
            # aggregation (1 + eps) x + A x by PyG; the MLP runs on valid nodes so its BN ignores padding
            self.aggs = nn.ModuleList(DenseGINConv(nn.Identity(), train_eps=True) for _ in range(spec.layers))
            self.updates = nn.ModuleList(gin_mlp(a, b) for a, b in zip(dims[:-1], dims[1:]))
        else:
            self.aggs = nn.ModuleList(DenseGCNConv(a, b) for a, b in zip(dims[:-1], dims[1:]))
            self.updates = nn.ModuleList(nn.Identity() for _ in range(spec.layers))
        self.norms = nn.ModuleList(nn.BatchNorm1d(spec.hidden) for _ in range(spec.layers))
        self.projector = DenseGATConv(spec.hidden, spec.projector_dim) if spec.projector_dim else None
        self.head = make_head(spec.feature_dim, spec.num_classes, spec.head_parts, spec.dropout)

    # the teacher interface data-free KD reads (shared with fedsim.graph.federated.EnsembleTeacher)
    @property
    def in_dim(self) -> int:
        return self.spec.in_dim

    @property
    def num_classes(self) -> int:
        return self.spec.num_classes

    @property
    def feature_dim(self) -> int:
        return self.spec.feature_dim

    @property
    def head_parts(self) -> int:
        return self.spec.head_parts

    def aggregate(self, agg: nn.Module, x: torch.Tensor, adj, mask: torch.Tensor) -> torch.Tensor:
        """One message-passing step; an :class:`ImplicitAdjacency` is only ever multiplied (GIN)."""
        if not isinstance(adj, ImplicitAdjacency):
            return agg(x, adj, mask)
        if self.spec.arch != "gin" or self.projector is not None:
            raise ConfigError("trainer.implicit_edges: needs a GIN teacher without projector")
        return (1 + agg.eps) * x + adj @ x

    def node_embeddings(self, x: torch.Tensor, adj, mask: torch.Tensor) -> torch.Tensor:
        if not isinstance(adj, ImplicitAdjacency):
            adj = adj * (mask.unsqueeze(1) & mask.unsqueeze(2)).to(adj.dtype)
        for agg, upd, bn in zip(self.aggs, self.updates, self.norms):
            h = self.aggregate(agg, x, adj, mask)
            x = masked_apply(nn.Sequential(upd, bn, nn.ReLU()), h, mask)
            x = F.dropout(x, self.spec.dropout, self.training)
        if self.projector is not None:
            x = self.projector(x, adj, mask)
        return x

    def features(self, x: torch.Tensor, adj: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return pool(self.node_embeddings(x, adj, mask), mask, self.spec.pooling)

    def forward_all(self, x: torch.Tensor, adj: torch.Tensor,
                    mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x, adj, mask)
        return self.head(f), f

    def forward(self, x: torch.Tensor, adj: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.forward_all(x, adj, mask)[0]

    def batch_norms(self) -> list[nn.BatchNorm1d]:
        """Every BN layer whose running statistics pseudo-graph generation matches."""
        return [m for m in self.modules() if isinstance(m, nn.BatchNorm1d)]


def densify(batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A PyG mini-batch -> (x (B, N, F), adj (B, N, N), mask (B, N)) for the dense path."""
    x, mask = to_dense_batch(batch.x.float(), batch.batch)
    adj = to_dense_adj(batch.edge_index, batch.batch, max_num_nodes=x.shape[1]).clamp(max=1.0)
    return x, adj, mask


def loader(graphs, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    g = torch.Generator()
    g.manual_seed(seed)
    return DataLoader(graphs, batch_size=batch_size, shuffle=shuffle, generator=g if shuffle else None)


def train_supervised(model: GraphNet, graphs, epochs: int, lr: float = 1e-2, batch_size: int = 32,
                     seed: int = 0, weight_decay: float = 0.0) -> dict[str, float]:
    """Cross-entropy training on real labelled graphs (teachers, and the real-data reference student)."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr,
                           weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1))
    model.train()
    total, steps = 0.0, 0
    for epoch in range(epochs):
        for batch in loader(graphs, batch_size, shuffle=True, seed=seed * 1000 + epoch):
            loss = F.cross_entropy(model(*densify(batch)), batch.y.view(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, steps = total + float(loss.detach()), steps + 1
        sched.step()
    model.eval()
    return {"train_loss": total / max(steps, 1)}


@torch.no_grad()
def predict_logits(model: nn.Module, graphs, batch_size: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, labels) of ``model`` in eval mode over a list of PyG graphs."""
    was = model.training
    model.eval()
    outs, ys = [], []
    for batch in loader(graphs, batch_size, shuffle=False):
        outs.append(model(*densify(batch)))
        ys.append(batch.y.view(-1))
    model.train(was)
    return torch.cat(outs), torch.cat(ys)


def accuracy(model: nn.Module, graphs) -> float:
    logits, y = predict_logits(model, graphs)
    return float((logits.argmax(1) == y).float().mean())
