"""Symmetric cross-entropy (SCE) local trainer: the noise-robust private loss of RHFL.

Paper: Wang et al., "Symmetric Cross Entropy for Robust Learning with Noisy Labels", ICCV 2019
(arXiv 1908.06112); used by RHFL (Fang & Ye, CVPR 2022) for clients' local learning.

    SCE = alpha * CE(p, y) + beta * RCE(p, y),  RCE = -sum_c p_c log q_c

with q the one-hot label clamped to [1e-4, 1] (so log 0 becomes A = log 1e-4) and p the softmax clamped
to [1e-7, 1]: RCE = -A * (1 - p_y) for a hard label, a bounded, noise-tolerant term. Defaults
alpha = 0.1, beta = 1.0 are the SCE paper's CIFAR-10 values, which RHFL's official code also uses
(MarsFL's ``SCELoss`` implementation is the same formula). Augmentation and the strategy regulariser hook
behave as in :class:`fedsim.trainers.supervised.SupervisedTrainer`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fedsim.config import ranged
from fedsim.registry import TRAINERS
from fedsim.trainers.supervised import SupervisedConfig, SupervisedTrainer


@dataclass
class SCEConfig(SupervisedConfig):
    name: str = "sce"
    #: weight of the ordinary cross-entropy term
    alpha: float = ranged(0.1, 0.0, None)
    #: weight of the reverse cross-entropy term
    beta: float = ranged(1.0, 0.0, None)


def reverse_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """RCE = -(1/B) sum_b sum_c clamp(p, 1e-7, 1) * log clamp(onehot(y), 1e-4, 1) (SCE paper's code)."""
    p = F.softmax(logits, dim=1).clamp(1e-7, 1.0)
    one_hot = F.one_hot(labels, logits.shape[1]).to(p).clamp(1e-4, 1.0)
    return -(p * one_hot.log()).sum(1).mean()


def sce_loss(logits: torch.Tensor, labels: torch.Tensor, alpha: float = 0.1,
             beta: float = 1.0) -> torch.Tensor:
    """alpha * CE + beta * RCE, batch-mean."""
    return alpha * F.cross_entropy(logits, labels) + beta * reverse_cross_entropy(logits, labels)


@TRAINERS.register("sce")
class SCETrainer(SupervisedTrainer):
    """Symmetric cross-entropy (alpha CE + beta reverse CE) on the private labels: RHFL's local loss."""

    name = "sce"
    Config = SCEConfig
    cfg: SCEConfig

    def criterion(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return sce_loss(logits, y, self.cfg.alpha, self.cfg.beta)
