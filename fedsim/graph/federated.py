"""Federated use of ACGKD (arXiv 2504.00540; spec acgkd.md §6, all our choice): plain functions a
Flower strategy or client calls.

- Server side, :func:`distill_ensemble`: the clients' GNN teachers form an :class:`EnsembleTeacher`
  (logits = mean of the members' logits; feature = concatenation of their pooled features; BN loss
  = sum over every member's BN layers, each matched to its own running statistics). ACGKD then
  distils this ensemble, without any data, into one global student; with classifier reuse the
  student's GAT projector maps into the concatenated feature space and the frozen ensemble head
  (the members' heads, averaged) classifies.
- Client side, :func:`compress_client`: ACGKD on the local model before upload. Pseudo-graph banks
  and theta_tau never leave the process that made them.
- :func:`export_model` / :func:`import_model`: (arch spec dict, state_dict) so a model can travel as
  a Flower ``ArrayRecord`` (the state_dict) plus ``ConfigRecord`` (the flat spec).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fedsim.errors import ConfigError
from fedsim.graph.acgkd import ACGKDConfig, acgkd_distill
from fedsim.graph.gnn import EnsembleHead, GNNSpec, GraphNet


class EnsembleTeacher(nn.Module):
    """Several client GNNs behind the single-teacher interface ACGKD reads."""

    def __init__(self, members: list[GraphNet]) -> None:
        super().__init__()
        if not members:
            raise ConfigError("distill_ensemble: teachers must be a non-empty list")
        first = members[0]
        if any(m.in_dim != first.in_dim or m.num_classes != first.num_classes for m in members):
            raise ConfigError("distill_ensemble: all teachers need the same in_dim and num_classes")
        if len({m.feature_dim for m in members}) != 1 or any(m.head_parts != 1 for m in members):
            raise ConfigError("distill_ensemble: teachers need equal feature sizes and single heads")
        self.members = nn.ModuleList(members)
        # one member: its own head (a one-part EnsembleHead would not match a plain student head)
        self.head = EnsembleHead([m.head for m in members]) if len(members) > 1 else first.head
        self.in_dim, self.num_classes = first.in_dim, first.num_classes
        self.feature_dim = first.feature_dim * len(members)
        self.head_parts = len(members)

    def forward_all(self, x: torch.Tensor, adj: torch.Tensor,
                    mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = torch.cat([m.features(x, adj, mask) for m in self.members], -1)
        return self.head(f), f

    def forward(self, x: torch.Tensor, adj: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.forward_all(x, adj, mask)[0]

    def batch_norms(self) -> list[nn.BatchNorm1d]:
        return [bn for m in self.members for bn in m.batch_norms()]


def distill_ensemble(teachers: list[GraphNet], cfg: ACGKDConfig,
                     seed: int = 0) -> tuple[GraphNet, dict[str, float]]:
    """Server-side data-free distillation of the clients' teachers into one global student."""
    return acgkd_distill(EnsembleTeacher(list(teachers)), cfg, seed)


def compress_client(teacher: GraphNet, cfg: ACGKDConfig, seed: int = 0) -> tuple[GraphNet, dict[str, float]]:
    """Client-side compression of the local teacher before upload (ACGKD on one teacher)."""
    return acgkd_distill(teacher, cfg, seed)


def export_model(model: GraphNet) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(flat arch spec, detached CPU state_dict): the pair a Flower message carries."""
    return model.spec.to_dict(), {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def import_model(spec: dict[str, Any], state: dict[str, torch.Tensor]) -> GraphNet:
    """Rebuild a model from :func:`export_model` output; an unknown spec key is a ConfigError."""
    known = set(GNNSpec.__dataclass_fields__)
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ConfigError(f"model spec: unknown key {unknown[0]!r}; known {sorted(known)}")
    model = GraphNet(GNNSpec(**spec))
    model.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()})
    model.eval()
    return model
