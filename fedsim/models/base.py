"""The interface every image classifier in the zoo shares: features, then a linear head.

Heterogeneous-model FL methods need more than logits: SupCon and prototypes use the penultimate
features, FCCL correlates them across clients. So every model is split into ``backbone`` (image ->
flat feature vector of size ``feature_dim``) and ``head`` (a ``nn.Linear``). ``proj`` maps features
to a common ``embed_dim`` for methods that compare embeddings across *different* architectures
(FedProto's prototypes), like the projector every model of the official RAHFL code carries; it is not
on the classification path.
"""

from __future__ import annotations

import torch
from torch import nn


class FedModel(nn.Module):
    """``backbone`` -> ``feature_dim`` features -> ``head`` -> logits."""

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int, arch: str,
                 embed_dim: int = 128) -> None:
        super().__init__()
        self.backbone = backbone
        self.feature_dim = feature_dim
        self.head = nn.Linear(feature_dim, num_classes)
        self.proj = nn.Linear(feature_dim, embed_dim)
        self.arch = arch

    def embed_from_features(self, f: torch.Tensor) -> torch.Tensor:
        return self.proj(f)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.backbone(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and features from one backbone pass."""
        f = self.features(x)
        return self.head(f), f
