"""ACGKD pieces: Binary Concrete edges, O(n xi) edge memory, symmetry, gradient reversal, curriculum."""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch

from fedsim.errors import ConfigError
from fedsim.graph.acgkd import (
    ACGKDConfig,
    AdversarialTemperature,
    FullRankEdges,
    LowRankEdges,
    PseudoGraphBank,
    acgkd_distill,
    bank_agreement,
    binary_concrete,
    build_student,
    curriculum_fraction,
    curriculum_rank,
    degree_features,
    generate,
    grad_reverse,
    lambda_rev,
    num_params,
)
from fedsim.graph.gnn import accuracy
from fedsim.trainers.base import seeded_generator

TINY = ACGKDConfig(graphs_per_class=4, min_nodes=8, max_nodes=12, gen_steps=15, kd_epochs=4,
                   batch_size=8, student_hidden=16, student_layers=2)


def test_binary_concrete_hardens_as_lambda_goes_to_zero_and_passes_gradients():
    logits = torch.linspace(-2, 2, 41).repeat(200, 1).requires_grad_(True)
    softness = []
    for lam in (1.0, 0.3, 0.1, 0.01, 0.001):
        s = binary_concrete(logits, lam, seeded_generator(0))
        softness.append(float(torch.minimum(s, 1 - s).mean()))
    assert all(a > b for a, b in zip(softness, softness[1:]))
    assert softness[0] > 0.1 and softness[-1] < 2e-3
    s = binary_concrete(logits, 0.5, seeded_generator(1))
    # P(s > 1/2) = sigmoid(log alpha): the relaxation keeps the Bernoulli's mean
    frac_on = (s > 0.5).float().mean(0)
    assert torch.allclose(frac_on, torch.sigmoid(logits[0].detach()), atol=0.1)
    (s * torch.arange(41.0)).sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_straight_through_edges_are_binary_forward_and_pass_relaxed_gradients():
    bank = PseudoGraphBank(3, 5, dataclasses.replace(TINY, straight_through=True), seed=0)
    adj = bank.relaxed_adj(0.5, seeded_generator(0), straight_through=True)
    assert torch.all((adj == 0) | ((adj - 1).abs() < 1e-6)) and torch.equal(adj, adj.transpose(1, 2))
    (adj * torch.randn(adj.shape, generator=seeded_generator(1))).sum().backward()
    assert bank.edges.z.grad is not None and bank.edges.z.grad.abs().sum() > 0


def test_degree_features_are_the_data_one_hot_and_interpolate_relaxed_degrees():
    deg = torch.tensor([[0.0, 2.0, 7.0, 2.25]], requires_grad=True)
    x = degree_features(deg, 5)
    assert torch.equal(x[0, :3], torch.eye(5)[[0, 2, 4]])  # 7 is capped at the last bin, like the data
    assert torch.allclose(x[0, 3], torch.tensor([0, 0, 0.75, 0.25, 0]))
    x[0, 3, 3].backward()
    assert deg.grad[0, 3] == 1.0
    bank = PseudoGraphBank(3, 5, dataclasses.replace(TINY, node_features="degree"), seed=0)
    adj = bank.hard_adj(seeded_generator(0))
    feats = bank.node_features(adj)
    assert bank.feature_logits is None
    assert torch.equal(feats.argmax(-1)[bank.mask], adj.sum(-1).clamp(max=4).long()[bank.mask])
    assert torch.all(feats[~bank.mask] == 0)


@pytest.mark.parametrize("xi", [2, 4, 8])
def test_low_rank_edge_parameters_grow_linearly_in_n(xi):
    g = seeded_generator(0)
    counts = [num_params(LowRankEdges(3, n, xi, -2.0, g)) for n in (32, 64, 128, 256)]
    assert counts == [3 * n * xi + 3 for n in (32, 64, 128, 256)]
    assert counts[2] - counts[1] == 2 * (counts[1] - counts[0])  # linear: equal increments per n
    full = [num_params(FullRankEdges(3, n, -2.0, g)) for n in (32, 64, 128, 256)]
    assert full == [3 * n * n for n in (32, 64, 128, 256)]
    cfg = dataclasses.replace(TINY, xi=xi, min_nodes=64, max_nodes=64)
    assert PseudoGraphBank(3, 5, cfg, seed=0).edge_param_count() == 3 * 4 * (64 * xi + 1)


@pytest.mark.parametrize("xi", [0, 3])
def test_pseudo_adjacency_symmetric_zero_diagonal_and_masked(xi):
    bank = PseudoGraphBank(3, 5, dataclasses.replace(TINY, xi=xi), seed=0)
    pad = ~(bank.mask.unsqueeze(1) & bank.mask.unsqueeze(2))
    assert pad.any()  # sizes vary between min_nodes and max_nodes
    for adj in (bank.relaxed_adj(0.5, seeded_generator(0)), bank.hard_adj(seeded_generator(0))):
        assert torch.equal(adj, adj.transpose(1, 2))
        assert torch.all(torch.diagonal(adj, dim1=1, dim2=2) == 0)
        assert torch.all(adj[pad] == 0)
    hard = bank.hard_adj(seeded_generator(0))
    assert set(hard.unique().tolist()) <= {0.0, 1.0}
    soft = bank.relaxed_adj(0.05, seeded_generator(0))
    valid = ~pad & ~torch.eye(bank.mask.shape[1], dtype=torch.bool)
    assert float(torch.minimum(soft, 1 - soft)[valid].mean()) < 0.02  # mirrored draws harden


def test_gradient_reversal_flips_sign_and_scales_with_schedule():
    theta = torch.tensor(0.3, requires_grad=True)
    (theta * 2.0).backward()
    plain = theta.grad.clone()
    for scale in (0.0, 0.25, 1.0):
        theta.grad = None
        (grad_reverse(theta, scale) * 2.0).backward()
        assert torch.isclose(theta.grad, -scale * plain)
    epochs = 10
    assert lambda_rev(0, epochs, 1.0) == 0.0
    assert math.isclose(lambda_rev(epochs, epochs, 1.0), 1.0)
    assert math.isclose(lambda_rev(epochs // 2, epochs, 0.8), 0.4)
    values = [lambda_rev(e, epochs, 1.0) for e in range(epochs + 1)]
    assert values == sorted(values)
    # the temperature ascends the loss: its gradient is the negated plain gradient
    temp = AdversarialTemperature(4.0)
    assert math.isclose(float(temp(1.0)), 4.0, rel_tol=1e-5)
    temp(0.5).backward()
    assert float(temp.theta.grad) < 0  # d tau / d theta > 0, reversed and halved


def test_curriculum_fraction_at_schedule_ends():
    assert curriculum_fraction(0, 20, 0.3) == pytest.approx(0.3)
    assert curriculum_fraction(10, 20, 0.3) == pytest.approx(1.0)
    assert curriculum_fraction(20, 20, 0.3) == pytest.approx(1.0)
    assert curriculum_fraction(5, 20, 0.3) == pytest.approx(0.65)


def test_curriculum_rank_orders_by_teacher_entropy_within_class(tiny_teacher):
    teacher = copy.deepcopy(tiny_teacher).eval()
    bank = PseudoGraphBank(3, teacher.in_dim, TINY, seed=0)
    rank = curriculum_rank(teacher, bank, seed=0)
    for c in range(3):
        r = rank[bank.labels == c]
        assert sorted(r.tolist()) == [i / len(r) for i in range(len(r))]
    assert (rank < 0.3).sum() >= 3  # every class contributes to the easiest fraction


def test_generation_teaches_the_bank_the_target_classes(tiny_teacher):
    teacher = copy.deepcopy(tiny_teacher)
    cfg = dataclasses.replace(TINY, gen_steps=40)
    fresh = PseudoGraphBank(3, teacher.in_dim, cfg, seed=0)
    before = bank_agreement(teacher.eval(), fresh, seed=0)
    bank, metrics = generate(teacher, cfg, seed=0)
    assert metrics["bank_teacher_agreement"] > before
    assert metrics["edge_params"] == bank.edge_param_count()
    assert not any(p.requires_grad for p in teacher.parameters())  # the teacher stays frozen


def test_student_reuses_frozen_teacher_head_and_pipeline_is_deterministic(tiny_teacher, tiny_data):
    teacher = copy.deepcopy(tiny_teacher)
    student = build_student(teacher, TINY)
    assert student.spec.projector_dim == teacher.feature_dim
    assert all(torch.equal(a, b) for a, b in zip(student.head.state_dict().values(),
                                                  teacher.head.state_dict().values()))
    assert not any(p.requires_grad for p in student.head.parameters())
    s1, m1 = acgkd_distill(copy.deepcopy(tiny_teacher), TINY, seed=5)
    s2, m2 = acgkd_distill(copy.deepcopy(tiny_teacher), TINY, seed=5)
    assert all(torch.equal(a, b) for a, b in zip(s1.state_dict().values(), s2.state_dict().values()))
    assert m1["kd_loss"] == m2["kd_loss"] and 1.0 < m1["tau_final"] < 21.0
    assert torch.equal(s1.head[0].weight, teacher.head[0].weight)  # the reused head did not move
    assert 0.0 <= accuracy(s1, tiny_data[2]) <= 1.0


@pytest.mark.parametrize("key,value", [("xi", -1), ("edge_model", "gumbel"), ("tau_init", 0.5),
                                       ("node_features", "random"),
                                       ("lambda_end", 2.0), ("student_arch", "mlp")])
def test_bad_config_names_the_key(key, value):
    with pytest.raises(ConfigError, match=key):
        ACGKDConfig(**{key: value})
    with pytest.raises(ConfigError, match="straight_through"):
        ACGKDConfig(implicit_edges=True, straight_through=True)
