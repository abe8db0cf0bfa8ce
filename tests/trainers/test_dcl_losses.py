"""RAHFL / AugHFL losses against hand computations, and the DCL trainer on a tiny model."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fedsim.data.base import ClientData, ImageSet
from fedsim.errors import ConfigError
from fedsim.models.base import FedModel
from fedsim.registry import TRAINERS
from fedsim.trainers.dcl import AugMixJSDTrainer, DCLConfig, DCLTrainer
from fedsim.trainers.losses import (
    collab_kl,
    dcl_loss,
    jsd,
    robustness_weights,
    similarity_kl,
    supcon,
    weighted_kl,
)


def _kl(p: list[float], q: list[float]) -> float:
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q) if pi > 0)


# -- JSD --------------------------------------------------------------------------------------------
def test_jsd_identical_is_zero_and_one_hot_finite():
    p = torch.softmax(torch.randn(5, 4, generator=torch.Generator().manual_seed(0)), 1)
    assert float(jsd(p, p, p)) == pytest.approx(0.0, abs=1e-7)
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    value = jsd(a, b, a)
    assert torch.isfinite(value)
    m = [2 / 3, 1 / 3]  # KL(a||M) twice, KL(b||M) once
    assert float(value) == pytest.approx((2 * _kl([1, 0], m) + _kl([0, 1], m)) / 3, rel=1e-5)


def test_jsd_two_class_hand_example_batch_mean():
    rows = [([0.8, 0.2], [0.2, 0.8], [0.5, 0.5]), ([0.9, 0.1], [0.6, 0.4], [0.3, 0.7])]
    p0, p1, p2 = (torch.tensor([r[i] for r in rows]) for i in range(3))
    expected = 0.0
    for r in rows:
        m = [(r[0][c] + r[1][c] + r[2][c]) / 3 for c in range(2)]
        expected += sum(_kl(pi, m) for pi in r) / 3
    assert float(jsd(p0, p1, p2)) == pytest.approx(expected / 2, rel=1e-5)
    # first row alone: M = (0.5, 0.5); KL(p0||M) = 0.8 ln 1.6 + 0.2 ln 0.4, p1 symmetric, p2 zero
    first = 2 * (0.8 * math.log(1.6) + 0.2 * math.log(0.4)) / 3
    assert float(jsd(p0[:1], p1[:1], p2[:1])) == pytest.approx(first, rel=1e-5)


# -- SupCon -----------------------------------------------------------------------------------------
def _supcon_loop(feats: torch.Tensor, labels: list[int], t: float, tb: float) -> float:
    """Khosla et al. eq. 2 written out anchor by anchor."""
    b, v, _ = feats.shape
    z = [feats[i, k].tolist() for k in range(v) for i in range(b)]
    lab = [labels[i] for _ in range(v) for i in range(b)]
    n = len(z)
    dot = [[sum(x * y for x, y in zip(z[i], z[j])) / t for j in range(n)] for i in range(n)]
    total = 0.0
    for i in range(n):
        denom = sum(math.exp(dot[i][a]) for a in range(n) if a != i)
        pos = [p for p in range(n) if p != i and lab[p] == lab[i]]
        total += -(t / tb) * sum(math.log(math.exp(dot[i][p]) / denom) for p in pos) / len(pos)
    return total / n


def test_supcon_matches_loop_form():
    g = torch.Generator().manual_seed(1)
    feats = F.normalize(torch.randn(4, 2, 3, generator=g, dtype=torch.float64), dim=2)
    labels = [0, 1, 0, 2]
    got = supcon(feats, torch.tensor(labels), temperature=0.2, base_temperature=0.07)
    assert float(got) == pytest.approx(_supcon_loop(feats, labels, 0.2, 0.07), rel=1e-9)


def test_supcon_two_sample_closed_form():
    # two samples, one view each after stacking 2 views = 4 vectors; all same label -> every other
    # vector is positive; with orthogonal/identical vectors the loss has a closed form.
    e1, e2 = torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64)
    feats = torch.stack([torch.stack([e1, e1]), torch.stack([e2, e2])])  # (B=2, V=2, D=2)
    t = 0.5
    # anchor e1: others = {e1 (dot 1), e2 (0), e2 (0)} -> denom = e^2 + 2, positives all three
    expected = -(math.log(math.exp(2) / (math.exp(2) + 2)) + 2 * math.log(1 / (math.exp(2) + 2))) / 3
    got = supcon(feats, torch.tensor([0, 0]), temperature=t, base_temperature=t)
    assert float(got) == pytest.approx(expected, rel=1e-9)


# -- similarity KL ----------------------------------------------------------------------------------
def _sim_kl_loop(original, weak, strong, t):
    contrast = torch.cat([weak, original]).tolist()
    total = 0.0
    for w_row, s_row in zip(weak.tolist(), strong.tolist()):
        def dist(row):
            e = [math.exp(math.exp(sum(a * b for a, b in zip(row, c))) / t) for c in contrast]
            return [x / sum(e) for x in e]
        pw, ps = dist(w_row), dist(s_row)
        total += sum(a * (math.log(a) - math.log(b + 1e-9)) for a, b in zip(pw, ps))
    return total / len(weak)


def test_similarity_kl_zero_for_equal_views_and_matches_loop():
    g = torch.Generator().manual_seed(2)
    o, w, s = (F.normalize(torch.randn(3, 4, generator=g, dtype=torch.float64), dim=1) for _ in range(3))
    assert float(similarity_kl(o, w, w, 0.2)) == pytest.approx(0.0, abs=1e-7)
    value = float(similarity_kl(o, w, s, 0.2))
    assert value > 1e-3
    assert value == pytest.approx(_sim_kl_loop(o, w, s, 0.2), rel=1e-9)


def test_similarity_kl_gradient_flows_only_through_strong_side():
    g = torch.Generator().manual_seed(3)
    o, w, s = (F.normalize(torch.randn(3, 4, generator=g), dim=1).requires_grad_() for _ in range(3))
    similarity_kl(o, w, s).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert o.grad is not None  # the contrast set [weak; original] is not detached in the code either


def test_dcl_loss_is_supcon_plus_beta_sim():
    g = torch.Generator().manual_seed(4)
    o, w, s = (F.normalize(torch.randn(6, 5, generator=g), dim=1) for _ in range(3))
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    con = supcon(torch.stack([o, w], 1), y, 0.2, 0.07)
    sim = similarity_kl(o, w, s, 0.2)
    assert float(dcl_loss(o, w, s, y, beta=0.5)) == pytest.approx(float(con + 0.5 * sim), rel=1e-6)


# -- collaborative KL -------------------------------------------------------------------------------
def test_collab_kl_single_peer_and_equal_peers():
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(4, 3, generator=g)
    p1, p2 = (torch.softmax(torch.randn(4, 3, generator=g), 1) for _ in range(2))
    q = torch.softmax(logits, 1)
    hand = [sum(_kl(a, b) for a, b in zip(p.tolist(), q.tolist())) / 4 for p in (p1, p2)]
    assert float(collab_kl(logits, [p1])) == pytest.approx(hand[0], rel=1e-5)
    assert float(collab_kl(logits, [p1, p2])) == pytest.approx((hand[0] + hand[1]) / 2, rel=1e-5)
    assert float(collab_kl(logits, [p1, p1, p1])) == pytest.approx(hand[0], rel=1e-5)
    with pytest.raises(ValueError):
        collab_kl(logits, [])


def test_weighted_kl_and_aughfl_weights():
    g = torch.Generator().manual_seed(6)
    logits = torch.randn(4, 3, generator=g)
    p1, p2 = (torch.softmax(torch.randn(4, 3, generator=g), 1) for _ in range(2))
    w = torch.tensor([0.25, 0.75])
    expected = 0.25 * float(collab_kl(logits, [p1])) + 0.75 * float(collab_kl(logits, [p2]))
    assert float(weighted_kl(logits, [p1, p2], w)) == pytest.approx(expected, rel=1e-5)
    # the official AugHFL clamp makes the student side constant: no gradient reaches the logits
    leaf = logits.clone().requires_grad_()
    weighted_kl(leaf, [p1, p2], w, paper_code=True).backward()
    assert leaf.grad is not None and float(leaf.grad.abs().sum()) == 0.0
    # a client whose predictions move less under augmentation gets the larger weight
    clean = [p1, p1]
    stable, shaky = torch.softmax(p1.log() + 0.1, 1), torch.softmax(p1.log() * 3, 1)
    weights = robustness_weights(clean, [stable, shaky], [stable, shaky])
    assert float(weights.sum()) == pytest.approx(1.0)
    assert weights[0] > weights[1]


# -- the trainer ------------------------------------------------------------------------------------
def _tiny_model(seed: int) -> FedModel:
    torch.manual_seed(seed)
    backbone = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(1))
    return FedModel(backbone, 8, 2, "tiny")


def _toy_data() -> ClientData:
    """64 16x16 images; class 1 has a bright top half, class 0 a bright bottom half (flip-invariant)."""
    g = torch.Generator().manual_seed(7)
    y = torch.arange(64) % 2
    x = torch.randint(0, 80, (64, 3, 16, 16), generator=g)
    bright = torch.zeros(64, 1, 16, 1, dtype=torch.bool)
    bright[y == 1, :, :8] = True
    bright[y == 0, :, 8:] = True
    x = torch.where(bright, x + 150, x).to(torch.uint8)
    return ClientData(train=ImageSet(x, y, num_classes=2))


def _trainer(seed: int = 0, **kw) -> DCLTrainer:
    return DCLTrainer(DCLConfig(batch_size=16, lr=3e-3, **kw), _tiny_model(seed), seed=11)


def test_dcl_trainer_registered_and_config_validated():
    assert TRAINERS.get("dcl") is DCLTrainer
    assert TRAINERS.get("augmix_jsd") is AugMixJSDTrainer
    assert AugMixJSDTrainer.Config().mode == "jsd"
    with pytest.raises(ConfigError, match="trainer.mode"):
        DCLConfig(mode="simclr")


def test_dcl_trainer_learns_deterministically_and_counts_forwards():
    data = _toy_data()
    runs = []
    for _ in range(2):
        trainer = _trainer()
        calls: list[int] = []
        trainer.model.backbone.register_forward_hook(lambda m, i, o, calls=calls: calls.append(len(i[0])))
        first = trainer.fit(data, epochs=1, round_idx=0)
        trainer.fit(data, epochs=3, round_idx=1)
        last = trainer.fit(data, epochs=1, round_idx=4)
        runs.append((first["train_loss"], last["train_loss"], trainer.model.head.weight.detach().clone()))
    (f1, l1, w1), (f2, l2, w2) = runs
    assert math.isfinite(f1) and math.isfinite(l1)
    assert (f1, l1) == (f2, l2) and torch.equal(w1, w2)  # fixed seed -> identical run
    assert l1 < f1
    # two backbone passes per step, each over three views of the 16-image batch
    assert calls[:2] == [48, 48] and len(calls) == 2 * 5 * 4


def test_jsd_mode_single_forward_and_regularizer_added():
    data = _toy_data()
    seen = []

    def reg(model, x, y, logits, feats):
        seen.append((x.dtype, tuple(x.shape), tuple(logits.shape), tuple(feats.shape)))
        return logits.sum() * 0 + 5.0

    calls = []
    base = AugMixJSDTrainer(AugMixJSDTrainer.Config(batch_size=16), _tiny_model(0), seed=3)
    base.model.backbone.register_forward_hook(lambda m, i, o: calls.append(len(i[0])))
    plain = base.fit(data, epochs=1, round_idx=0)["train_loss"]
    assert calls == [48] * 4
    with_reg = AugMixJSDTrainer(AugMixJSDTrainer.Config(batch_size=16), _tiny_model(0), seed=3)
    value = with_reg.fit(data, epochs=1, round_idx=0, regularizer=reg)["train_loss"]
    assert value == pytest.approx(plain + 5.0, abs=1e-5)  # constant term: same trajectory, +5 each step
    assert seen[0] == (torch.float32, (16, 3, 16, 16), (16, 2), (16, 8))
