"""Learning from peers on public data: the losses and one step, shared by RAHFL and its baselines.

Server-side strategies turn peers' outputs on a public batch into one *target* tensor per client
(RAHFL: the mean softmax of the selected peers; FedMD: the consensus logits; FedDF: the ensemble's
mean logits; KT-pFL: a personalised mixture). The client then takes steps on
``PUBLIC_LOSSES[name](student_logits, target)``. Since KL(P_j || p) = const - sum P_j log p, the
mean over peers of KL(P_j || p_k) has the same gradient as KL(mean_j P_j || p_k); sending the mean
keeps messages small and the update identical to the official RAHFL loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext

import torch
import torch.nn.functional as F
from torch import nn


def kl_to_probs(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """KL(target || softmax(logits)), batch-mean (RAHFL collaborative loss, FedDF, RHFL)."""
    return F.kl_div(F.log_softmax(logits, 1), target_probs, reduction="batchmean")


def l1_to_logits(logits: torch.Tensor, target_logits: torch.Tensor) -> torch.Tensor:
    """Mean absolute error to the consensus class scores (FedMD's digest step)."""
    return F.l1_loss(logits, target_logits)


def cross_correlation(logits: torch.Tensor, target_logits: torch.Tensor, off_diag: float = 0.0051) -> torch.Tensor:
    """FCCL's inter-domain loss: push the batch cross-correlation of normalised outputs towards I."""
    a = (logits - logits.mean(0)) / (logits.std(0) + 1e-6)
    b = (target_logits - target_logits.mean(0)) / (target_logits.std(0) + 1e-6)
    c = a.T @ b / len(a)
    on = (torch.diagonal(c) - 1).pow(2).sum()
    off = (c - torch.diag(torch.diagonal(c))).pow(2).sum()
    return on + off_diag * off


PUBLIC_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "kl": kl_to_probs,
    "l1": l1_to_logits,
    "fccl": cross_correlation,
}


@contextmanager
def frozen_bn_stats(model: nn.Module) -> Iterator[None]:
    """Run a train-mode forward without moving BatchNorm running statistics.

    RAHFL's official loop does one train-mode forward per public batch, used both for the targets it
    sends and for its own loss. fedsim computes the sent outputs in one message and the loss in the next,
    so the second forward must not update the running statistics a second time.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())
             for m in bns if m.running_mean is not None]
    try:
        yield
    finally:
        for m, (mean, var, n) in zip((m for m in bns if m.running_mean is not None), saved):
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            m.num_batches_tracked.copy_(n)


def public_step(model: nn.Module, x: torch.Tensor, target: torch.Tensor, loss: str,
                opt: torch.optim.Optimizer, weight: float = 1.0, reuse_forward: bool = True) -> float:
    """One optimiser step of ``weight * loss(model(x), target)``; returns the loss value.

    ``reuse_forward`` (default) keeps BatchNorm statistics as if the forward that produced the sent
    outputs were reused (see :func:`frozen_bn_stats`).
    """
    model.train()
    fn = PUBLIC_LOSSES[loss]
    opt.zero_grad(set_to_none=True)
    with frozen_bn_stats(model) if reuse_forward else nullcontext():
        value = weight * fn(model(x), target)
        value.backward()  # inside: BatchNorm saved its running stats for backward
    opt.step()
    return float(value.detach())
