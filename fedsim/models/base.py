"""The interface every image classifier in the zoo shares: features, then a linear head.

Heterogeneous-model FL methods need more than logits: SupCon and prototypes use the penultimate
features, FCCL correlates them across clients. So every model is split into ``backbone`` (image ->
flat feature vector of size ``feature_dim``) and ``head`` (a ``nn.Linear``).
"""

from __future__ import annotations

import torch
from torch import nn


class FedModel(nn.Module):
    """``backbone`` -> ``feature_dim`` features -> ``head`` -> logits."""

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int, arch: str) -> None:
        super().__init__()
        self.backbone = backbone
        self.feature_dim = feature_dim
        self.head = nn.Linear(feature_dim, num_classes)
        self.arch = arch

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.backbone(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and features from one backbone pass."""
        f = self.features(x)
        return self.head(f), f
