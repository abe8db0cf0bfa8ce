"""Client-side additions for the heterogeneous-FL baselines: FCCL's non-forgetting distillation.

FCCL (Huang, Ye, Du, "Learn from Others and Be Yourself in Heterogeneous Federated Learning", CVPR 2022)
keeps two teachers during local training so that collaboration on public data is not forgotten and the
private knowledge is not overwritten:

* the *inter-domain* teacher: the client's model right after this round's collaborative update (the
  ``train`` action runs right after ``train.distill``, so the current weights are that model);
* the *intra-domain* teacher: the model pre-trained on the private data (fedsim's round-0 weights:
  random init plus ``pretrain_epochs`` of CE, rebuilt from the pre-training cache, so no copy has to be
  kept in the client's checkpoint).

The regulariser ``fccl_nfd`` adds, per private batch,
``w_inter * KL(softmax(t_inter / T) || softmax(z / T))
+ w_intra * KL(softmax(t_intra / T) || softmax(z / T))``
with z the student's logits (batch-mean KL, no T^2 factor, as the official FCCL code). Teachers run in eval
mode on the same (augmented) inputs as the student. Registered into :data:`fedsim.actions.REGULARIZERS`
on import; :mod:`strategies.fccl` imports this module so every process that loads the strategies has it.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from flwr.app import ArrayRecord
from torch import nn

from fedsim.actions import REGULARIZERS
from fedsim.client import ClientRuntime, _initial_state


def _frozen(model: nn.Module, state: dict[str, torch.Tensor] | None = None) -> nn.Module:
    teacher = copy.deepcopy(model)
    if state is not None:
        teacher.load_state_dict(state)
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def soft_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(softmax(teacher / T) || softmax(student / T)), batch-mean."""
    target = F.softmax(teacher_logits / temperature, 1)
    return F.kl_div(F.log_softmax(student_logits / temperature, 1), target, reduction="batchmean")


def fccl_nfd(conf: dict[str, Any], arrays: dict[str, ArrayRecord], rt: ClientRuntime):
    """FCCL's non-forgetting distillation from the post-collaboration and the pre-trained model.

    ``conf``: ``nfd-temperature`` (T), ``nfd-inter`` and ``nfd-intra`` (the two weights).
    """
    temp = float(conf.get("nfd-temperature", 1.0))
    w_inter, w_intra = float(conf.get("nfd-inter", 1.0)), float(conf.get("nfd-intra", 1.0))
    inter = _frozen(rt.model)
    intra = _frozen(rt.model, _initial_state(rt))

    def reg(model, x, y, logits, feats):  # x: the normalised input the student's logits came from
        inter.to(logits.device), intra.to(logits.device)
        with torch.no_grad():
            t_inter, t_intra = inter(x), intra(x)
        return w_inter * soft_kl(logits, t_inter, temp) + w_intra * soft_kl(logits, t_intra, temp)

    return reg


REGULARIZERS["fccl_nfd"] = fccl_nfd

__all__ = ["fccl_nfd", "soft_kl"]
