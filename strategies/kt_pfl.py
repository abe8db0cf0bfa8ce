"""``kt_pfl``: KT-pFL, personalised knowledge transfer with a learned knowledge-coefficient matrix.

Paper: Zhang, Guo, Ma, Wang, Xu, Wu, "Parameterized Knowledge Transfer for Personalized Federated
Learning", NeurIPS 2021 (arXiv 2111.02862). The server keeps a K x K matrix C whose row k says how much
client k learns from each client j (rows on the probability simplex, initialised uniform 1/K). Each round:

1. clients send soft predictions S_j = softmax(z_j) on the round's public batches;
2. the server updates C with ``coef_steps`` projected gradient steps (step ``coef_lr``) on
   sum_k KL(t_k || S_k) + rho * ||C - 1/K||_F^2 with t_k = sum_j c_kj S_j, projecting every row back onto
   the simplex after each step (Euclidean projection, Duchi et al. 2008);
3. client k distils toward its personalised target t_k (KL(t_k || softmax(z_k)), ``distill_epochs`` passes
   over the public batches), then trains locally on private data.

C is server state (``state_dict``), so ``--resume`` continues with the learned coefficients. With client
sampling only the participating block of C is updated; each row keeps its mass on the non-participating
clients. Departures / unknowns: KT-pFL trains locally before the transfer and learns C jointly by SGD;
the order (distil, then local, as FedMD), the projection onto the simplex, and the defaults coef_lr 0.05,
coef_steps 5, rho 1.0 are our choices (the paper's exact values are not in the spec).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from fedsim.config import ranged
from fedsim.registry import STRATEGIES
from strategies.base import mean_of
from strategies.public import PublicConfig, PublicDataStrategy


@dataclass
class KTpFLConfig(PublicConfig):
    name: str = "kt_pfl"
    #: passes over the public batches toward the personalised target per round
    distill_epochs: int = ranged(1, 1, None)
    #: projected gradient steps on C per round, and their step size
    coef_steps: int = ranged(5, 0, None)
    coef_lr: float = ranged(0.05, 0.0, None)
    #: weight of the pull of C toward the uniform matrix
    coef_rho: float = ranged(1.0, 0.0, None)


def project_simplex(rows: torch.Tensor) -> torch.Tensor:
    """Euclidean projection of each row onto {c >= 0, sum c = 1} (sort-based, Duchi et al. 2008)."""
    n = rows.shape[1]
    u = rows.sort(dim=1, descending=True).values
    css = u.cumsum(1) - 1
    k = torch.arange(1, n + 1, dtype=rows.dtype)
    cond = u - css / k > 0
    rho = cond.to(rows.dtype).cumsum(1).argmax(1, keepdim=True)  # last index where cond holds
    theta = css.gather(1, rho) / (rho + 1).to(rows.dtype)
    return (rows - theta).clamp(min=0)


def coefficient_objective(coef: torch.Tensor, soft: torch.Tensor, rho: float) -> torch.Tensor:
    """sum_k KL(sum_j c_kj S_j || S_k) + rho ||C - 1/K||^2 for ``soft`` of shape (K, N, classes)."""
    k = coef.shape[0]
    mixed = torch.einsum("kj,jnc->knc", coef, soft)
    kl = sum(F.kl_div(soft[i].clamp_min(1e-12).log(), mixed[i], reduction="batchmean") for i in range(k))
    return kl + rho * (coef - 1.0 / k).pow(2).sum()


def update_coefficients(coef: torch.Tensor, soft: torch.Tensor, steps: int, lr: float,
                        rho: float) -> torch.Tensor:
    """``steps`` projected gradient steps on :func:`coefficient_objective`; rows stay on the simplex."""
    c = coef.detach().clone()
    for _ in range(steps):
        c.requires_grad_(True)
        (grad,) = torch.autograd.grad(coefficient_objective(c, soft, rho), c)
        c = project_simplex((c - lr * grad).detach())
    return c


@STRATEGIES.register("kt_pfl")
class KTpFL(PublicDataStrategy):
    """KT-pFL: personalised targets sum_j c_kj S_j from a learned coefficient matrix, then local training."""

    name = "kt_pfl"
    Config = KTpFLConfig

    def setup(self) -> None:
        super().setup()
        if not hasattr(self, "coef"):
            k = self.cfg.num_clients
            self.coef = torch.full((k, k), 1.0 / k)

    def round(self, r: int) -> dict[str, float]:
        pids = self.ctx.sample(r)
        outs = self.public_outputs(r, pids, ("probs",), bn_mode=self.scfg.bn_mode)
        present = sorted(outs)
        collab = float("nan")
        if present:
            soft = torch.stack([outs[p]["probs"] for p in present])
            targets = self._update(present, soft)
            collab = mean_of(self.distill(r, targets, "kl", self.scfg.distill_epochs), "distill_loss")
        return {**self.local_train(r, pids), "collab_loss": collab}

    def _update(self, present: list[int], soft: torch.Tensor) -> dict[int, torch.Tensor]:
        """Update the participating block of C (rows keep their mass elsewhere); return the targets."""
        idx = torch.tensor(present)
        block = self.coef[idx][:, idx]
        mass = block.sum(1, keepdim=True)
        new = update_coefficients(project_simplex(block / mass.clamp_min(1e-12)), soft, self.scfg.coef_steps,
                                  self.scfg.coef_lr, self.scfg.coef_rho)
        self.coef[idx.unsqueeze(1), idx.unsqueeze(0)] = new * mass
        mixed = torch.einsum("kj,jnc->knc", new, soft)
        return {p: mixed[i] for i, p in enumerate(present)}

    def state_dict(self) -> dict[str, Any]:
        return {"coef": self.coef.clone()} if hasattr(self, "coef") else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "coef" in state:
            self.coef = state["coef"].clone()


__all__ = ["KTpFL", "KTpFLConfig", "coefficient_objective", "project_simplex", "update_coefficients"]
