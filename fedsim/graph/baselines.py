"""Graph-free KD baselines on ACGKD's interface: GFKD-style and DFAD-GNN-style.

- GFKD (Deng & Zhang, IJCAI 2021; the baseline protocol of ACGKD, arXiv 2504.00540): pseudo-graphs
  with a free full-rank n x n edge-logit matrix, edges drawn as hard Bernoulli samples, structure
  gradients by the score-function (REINFORCE) estimator; node features get ordinary gradients.
  Our choices: per-graph reward = that graph's CE + rho * its edge density + the batch's BN-statistics
  loss (BN matching is a batch quantity, so every graph shares it), minus a moving-average baseline;
  student GIN-3-32 with its own head, plain KL distillation at fixed tau (:func:`gfkd_config`).
- DFAD-GNN (Zhuang et al., 2022): a generator network (noise -> node features and full n x n edge
  logits) plays a min-max game with the student on the L1 distance between teacher and student
  logits. Our choices: Binary Concrete relaxation at a fixed lambda for the generator's edges (the
  original uses a MolGAN-style Gumbel relaxation), fixed n = ``max_nodes``, one generator step per
  ``dfad_student_steps`` student steps, student GIN-3-32 with its own head.
- Both baselines take the same input knowledge as ACGKD: ``node_features`` (e.g. degree one-hot
  derived from the generated structure) and, for DFAD's relaxed edges, ``straight_through``.
"""

from __future__ import annotations

import dataclasses
import time

import torch
import torch.nn.functional as F
from torch import nn

from fedsim.graph.acgkd import (
    ACGKDConfig,
    PseudoGraphBank,
    build_student,
    degree_features,
    frozen,
    logistic_noise,
    pair_mask,
    symmetrize_upper,
    teacher_pass,
)
from fedsim.graph.gnn import GraphNet
from fedsim.trainers.base import seeded_generator


def gfkd_config(base: ACGKDConfig | None = None) -> ACGKDConfig:
    """GFKD protocol on ACGKD's knobs: Bernoulli + REINFORCE, full rank, GIN-3-32, vanilla KD."""
    return dataclasses.replace(base or ACGKDConfig(), edge_model="bernoulli", xi=0, student_hidden=32,
                               reuse_classifier=False, curriculum=False, adversarial_temp=False)


def bernoulli_log_prob(logits: torch.Tensor, adj: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-graph log p(A) over the sampled upper-triangle pairs: (G,)."""
    ll = -F.binary_cross_entropy_with_logits(logits, adj, reduction="none")
    return (torch.triu(ll * pair_mask(mask), diagonal=1)).sum((1, 2))


def generate_reinforce(teacher: nn.Module, bank: PseudoGraphBank, cfg: ACGKDConfig,
                       seed: int) -> dict[str, float]:
    """GFKD: hard Bernoulli structure with score-function gradients; features by backprop."""
    g = seeded_generator(seed, "generate")
    opt = torch.optim.Adam(bank.parameters(), lr=cfg.gen_lr)
    baseline = None
    for _ in range(cfg.gen_steps):
        logits = bank.edges.logits()
        with torch.no_grad():
            draw = (logits + logistic_noise(logits.shape, g) > 0).float()
            adj = symmetrize_upper(draw) * pair_mask(bank.mask)
        out, bn_loss = teacher_pass(teacher, bank.node_features(adj), adj, bank.mask, cfg.bn_normalize)
        ce = F.cross_entropy(out, bank.labels, reduction="none")
        density = (adj.sum((1, 2)) / pair_mask(bank.mask).sum((1, 2)).clamp(min=1.0))
        reward = (cfg.beta_ce * ce + cfg.rho_sparsity * density + cfg.alpha_bn * bn_loss).detach()
        m = cfg.reinforce_baseline_momentum
        baseline = reward.mean() if baseline is None else m * baseline + (1 - m) * reward.mean()
        surrogate = ((reward - baseline) * bernoulli_log_prob(logits, adj, bank.mask)).mean()
        loss = cfg.alpha_bn * bn_loss + cfg.beta_ce * ce.mean() + surrogate
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return {"gen_loss": float((cfg.alpha_bn * bn_loss + cfg.beta_ce * ce.mean()).detach()),
            "gen_bn_loss": float(bn_loss.detach()), "gen_ce": float(ce.mean().detach())}


class GraphGenerator(nn.Module):
    """DFAD-GNN-style generator: noise -> (softmax node features, full n x n edge logits)."""

    def __init__(self, noise_dim: int, n: int, in_dim: int, hidden: int = 128,
                 node_features: str = "learned", straight_through: bool = False) -> None:
        super().__init__()
        self.n, self.in_dim, self.noise_dim, self.node_features = n, in_dim, noise_dim, node_features
        self.straight_through = straight_through
        self.body = nn.Sequential(nn.Linear(noise_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                                  nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU())
        self.to_x = nn.Linear(hidden, n * in_dim)
        self.to_adj = nn.Linear(hidden, n * n)

    def forward(self, count: int, lam: float, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(torch.randn(count, self.noise_dim, generator=g))
        x = torch.softmax(self.to_x(h).view(count, self.n, self.in_dim), -1)
        logits = self.to_adj(h).view(count, self.n, self.n)
        logits = (logits + logits.transpose(1, 2)) / 2
        soft = torch.sigmoid((logits + logistic_noise(logits.shape, g)) / lam)
        if self.straight_through:  # hard graphs forward, as ACGKD's bank (same input manifold)
            soft = (soft > 0.5).float() + soft - soft.detach()
        adj = symmetrize_upper(soft)
        if self.node_features == "degree":  # the same input knowledge as the ACGKD bank gets
            x = degree_features(adj.sum(-1), self.in_dim)
        elif self.node_features == "constant":
            x = torch.ones_like(x)
        return x, adj


def dfad_config(base: ACGKDConfig | None = None) -> ACGKDConfig:
    return dataclasses.replace(gfkd_config(base), edge_model="concrete")


def dfad_distill(teacher: nn.Module, cfg: ACGKDConfig, seed: int = 0, iterations: int = 300,
                 student_steps: int = 2, lam: float = 0.5,
                 gen_lr: float = 1e-3) -> tuple[GraphNet, dict[str, float]]:
    """Generator maximises, student minimises L1(z_t, z_s) on generated graphs (no bank, no data)."""
    frozen(teacher)
    torch.manual_seed(seed)
    g = seeded_generator(seed, "dfad")
    student = build_student(teacher, cfg)
    gen = GraphGenerator(32, cfg.max_nodes, teacher.in_dim, node_features=cfg.node_features,
                         straight_through=cfg.straight_through)
    opt_s = torch.optim.Adam([p for p in student.parameters() if p.requires_grad], lr=cfg.lr)
    opt_g = torch.optim.Adam(gen.parameters(), lr=gen_lr)
    mask = torch.ones(cfg.batch_size, cfg.max_nodes, dtype=torch.bool)
    start = time.perf_counter()
    for _ in range(iterations):
        for _ in range(student_steps):
            with torch.no_grad():
                x, adj = gen(cfg.batch_size, lam, g)
                z_t = teacher(x, adj, mask)
            loss_s = F.l1_loss(student(x, adj, mask), z_t)
            opt_s.zero_grad(set_to_none=True)
            loss_s.backward()
            opt_s.step()
        x, adj = gen(cfg.batch_size, lam, g)
        loss_g = -F.l1_loss(student(x, adj, mask), teacher(x, adj, mask))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
    student.eval()
    return student, {"kd_loss": float(loss_s.detach()), "gen_seconds": time.perf_counter() - start}
