"""CoE formulas on a trajectory with a known answer, and properties of our CoT-Kinetics energy."""

import math

import pytest
import torch

from fedsim.cot.config import ScorerConfig
from fedsim.cot.scorer import (
    aggregate,
    coe_scores,
    curvature_term,
    energy_score,
    kinetic_term,
    kinetics_energy,
)


def test_coe_scores_on_hand_computed_trajectory():
    s3 = math.sqrt(3)
    traj = torch.tensor([[1.0, 0.0], [1.0, s3], [0.0, 1.0]], dtype=torch.float64)
    # angles: (h1,h0) = 60 deg, (h2,h1) = 30 deg, (h2,h0) = 90 deg -> normalised [2/3, 1/3]
    ang = [2 / 3, 1 / 3]
    # steps (0, sqrt3) and (-1, 1 - sqrt3); ||h2 - h0|| = sqrt2
    mag = [s3 / math.sqrt(2), math.sqrt(1 + (1 - s3) ** 2) / math.sqrt(2)]
    got = coe_scores(traj)
    assert got["coe_mag"] == pytest.approx(sum(mag) / 2)
    assert got["coe_ang"] == pytest.approx(sum(ang) / 2)
    assert got["coe_r"] == pytest.approx(sum(mag) / 2 - sum(ang) / 2)
    x = sum(m * math.cos(a) for m, a in zip(mag, ang)) / 2
    y = sum(m * math.sin(a) for m, a in zip(mag, ang)) / 2
    assert got["coe_c"] == pytest.approx(math.hypot(x, y))


def test_energy_invariant_to_global_rescaling():
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(7, 5, 16, generator=g)
    cfg = ScorerConfig()
    base = kinetics_energy(hidden, cfg)
    for scale in (1e-3, 0.5, 37.0):
        assert torch.allclose(kinetics_energy(hidden * scale, cfg), base, atol=1e-9)
    assert energy_score(hidden * 37.0, cfg) == pytest.approx(energy_score(hidden, cfg))


def test_straight_line_has_zero_curvature_and_known_kinetic_energy():
    g = torch.Generator().manual_seed(1)
    origin, direction = torch.randn(3, 8, generator=g), torch.randn(3, 8, generator=g)
    layers = 6
    steps = torch.arange(layers + 1, dtype=torch.float64).view(-1, 1, 1)
    uniform = origin + steps * direction  # [L+1, T=3, D]
    assert torch.allclose(curvature_term(uniform), torch.zeros(3, dtype=torch.float64), atol=1e-6)
    # uniform steps: each normalised step has length 1/L, so K = 1/2 * 1/L^2
    assert torch.allclose(kinetic_term(uniform), torch.full((3,), 0.5 / layers**2, dtype=torch.float64))
    accelerating = origin + steps**2 * direction  # same line, growing steps: still no turning
    assert torch.allclose(curvature_term(accelerating), torch.zeros(3, dtype=torch.float64), atol=1e-6)
    zigzag = uniform.clone()
    zigzag[1::2] += torch.randn(3, 8, generator=g)
    assert (curvature_term(zigzag) > 0.1).all()


def test_gamma_mixes_kinetic_and_curvature_terms():
    hidden = torch.randn(5, 4, 8, generator=torch.Generator().manual_seed(2))
    k, u = kinetic_term(hidden), curvature_term(hidden)
    assert torch.allclose(kinetics_energy(hidden, ScorerConfig(gamma=1.0)), k)
    assert torch.allclose(kinetics_energy(hidden, ScorerConfig(gamma=0.0)), u)
    assert torch.allclose(kinetics_energy(hidden, ScorerConfig(gamma=0.8)), 0.8 * k + 0.2 * u)


def test_token_aggregation_and_pluggable_energy():
    values = torch.tensor([1.0, 5.0, 3.0])
    assert aggregate(values, "mean") == pytest.approx(3.0)
    assert aggregate(values, "max") == 5.0
    assert aggregate(values, "last") == 3.0
    assert aggregate(values, "median") == 3.0
    hidden = torch.randn(4, 3, 8, generator=torch.Generator().manual_seed(3))
    custom = lambda h, cfg: h[-1].norm(dim=-1)  # noqa: E731 - a stand-in for the published equation
    assert energy_score(hidden, ScorerConfig(aggregation="max"), custom) == pytest.approx(
        float(hidden[-1].norm(dim=-1).max()))
