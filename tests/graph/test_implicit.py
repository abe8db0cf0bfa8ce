"""Blockwise Binary Concrete S @ X equals the dense computation, values and gradients."""

from __future__ import annotations

import dataclasses
import math

import torch

from fedsim.graph.acgkd import ACGKDConfig, generate
from fedsim.graph.implicit import ImplicitAdjacency, pair_logistic_noise


def test_pair_noise_is_symmetric_logistic_and_seeded():
    rows = torch.arange(50)
    noise = pair_logistic_noise(2, rows, 50, seed=7)
    assert torch.equal(noise, noise.transpose(1, 2))
    assert not torch.equal(noise[0], noise[1])
    assert not torch.equal(noise, pair_logistic_noise(2, rows, 50, seed=8))
    u = torch.sigmoid(torch.triu(noise[0], 1)[torch.triu(torch.ones(50, 50), 1) > 0].double())
    assert abs(float(u.mean()) - 0.5) < 0.03 and abs(float(u.var()) - 1 / 12) < 0.01  # ~U(0, 1)


def test_blockwise_matmul_matches_dense_values_and_gradients():
    torch.manual_seed(0)
    z = torch.randn(2, 11, 3, requires_grad=True)
    bias = torch.full((2, 1, 1), -1.0, requires_grad=True)
    x = torch.randn(2, 11, 4, requires_grad=True)
    mask = torch.ones(2, 11, dtype=torch.bool)
    mask[1, 9:] = False
    implicit = ImplicitAdjacency(z, bias, mask, lam=0.4, seed=3, block=4)
    dense = implicit.dense()
    assert torch.equal(dense, dense.transpose(1, 2)) and torch.all(torch.diagonal(dense, 0, 1, 2) == 0)
    assert torch.all(dense[1, 9:] == 0) and torch.all(dense[1, :, 9:] == 0)
    w = torch.randn(2, 11, 4)
    grads_dense = torch.autograd.grad(((dense @ x) * w).sum(), (z, bias, x))
    out = implicit @ x
    assert torch.allclose(out, dense @ x, atol=1e-5)
    grads_implicit = torch.autograd.grad((out * w).sum(), (z, bias, x))
    for a, b in zip(grads_implicit, grads_dense):
        assert torch.allclose(a, b, atol=1e-4)
    pairs = 11 * 10 + 9 * 8
    assert math.isclose(float(implicit.density()), float(dense.sum()) / pairs, rel_tol=1e-5)


def test_generation_with_implicit_edges_runs(tiny_teacher):
    import copy

    cfg = dataclasses.replace(ACGKDConfig(graphs_per_class=3, min_nodes=8, max_nodes=10, gen_steps=5),
                              implicit_edges=True, straight_through=False)
    bank, metrics = generate(copy.deepcopy(tiny_teacher), cfg, seed=0)
    assert metrics["edge_params"] == 9 * (10 * 4 + 1)
