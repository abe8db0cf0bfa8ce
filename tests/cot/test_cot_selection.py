"""Client-side keep/weight by oriented score, and the config that drives it."""

import math

import numpy as np
import pytest
import torch

from fedsim.cot.arith import Problem, reference_trace, unsound_right_variant
from fedsim.cot.config import ArithConfig, CoTConfig, SelectionConfig
from fedsim.cot.selection import score_and_select, select
from fedsim.errors import ConfigError


def _cfg(**sel) -> CoTConfig:
    return CoTConfig(selection=SelectionConfig(**sel))


def test_keep_fraction_keeps_lowest_risk_in_original_order():
    risk = np.array([0.9, 0.1, 0.5, np.inf, 0.3])
    kept, w = select(risk, _cfg(keep_fraction=0.6))
    assert kept.tolist() == [1, 2, 4] and w.tolist() == [1, 1, 1]


def test_threshold_and_weight_modes():
    risk = np.array([0.9, 0.1, 0.5, np.inf])
    kept, _ = select(risk, _cfg(mode="threshold", threshold=0.5))
    assert kept.tolist() == [1, 2]
    kept, w = select(risk, _cfg(mode="weight", temperature=0.5))
    assert kept.tolist() == [0, 1, 2]  # the unscorable sample gets weight 0
    assert w.mean() == pytest.approx(1.0) and w[1] > w[2] > w[0]


def test_score_and_select_needs_an_orientation_and_reports(tiny_model, tiny_tok):
    rng = np.random.default_rng(0)
    refs = [reference_trace(i, Problem(s, (("+", 2), ("-", 1), ("+", 3)))) for i, s in enumerate(range(2, 9))]
    samples = [t.sample() for t in refs] + [unsound_right_variant(refs[0], rng, ArithConfig()).sample()]
    cfg = CoTConfig(selection=SelectionConfig(keep_fraction=0.5))
    with pytest.raises(ConfigError, match="orientation"):
        score_and_select(tiny_model, tiny_tok, samples, cfg)
    cfg.scorer.orientation = -1
    kept, weights, report = score_and_select(tiny_model, tiny_tok, samples, cfg)
    assert len(kept) == math.ceil(0.5 * len(samples)) == report["n_kept"] == len(weights)
    assert set(kept) <= set(samples) and report["n_samples"] == len(samples)
    assert report["risk_mean_kept"] <= report["risk_mean"]
    cfg.selection.score = "nope"
    with pytest.raises(ConfigError, match="cot.selection.score"):
        score_and_select(tiny_model, tiny_tok, samples, cfg)


def test_config_rejects_bad_keys_and_values(tmp_path):
    with pytest.raises(ConfigError, match="cot.scorer.gama"):
        CoTConfig.from_dict({"scorer": {"gama": 0.5}})
    with pytest.raises(ConfigError, match="cot.scorer.gamma"):
        CoTConfig.from_dict({"scorer": {"gamma": 1.5}})
    with pytest.raises(ConfigError, match="cot.arith.n_layers"):
        CoTConfig.from_dict({"arith": {"n_layers": "four"}})
    with pytest.raises(ConfigError, match="cot.selection.threshold"):
        CoTConfig.from_dict({"selection": {"mode": "threshold"}})
    assert CoTConfig.from_dict({"scorer": {"gamma": 1}}).scorer.gamma == 1.0


def test_shipped_yaml_configs_load():
    from pathlib import Path

    import fedsim

    folder = Path(__file__).parents[2] / "configs" / "cot"
    assert 0 <= CoTConfig.from_yaml(folder / "default.yaml").scorer.gamma <= 1
    fed = fedsim.load_config(folder / "federated.yaml").strategy_config().cot()  # a fedsim experiment
    assert fed.selection.score == "cot_kinetics" and len(fed.federated.flawed_fractions) == 4


def test_weighted_local_training_ignores_zero_weight_samples(tiny_cfg, tiny_tok):
    from fedsim.cot.arith import build_model
    from fedsim.cot.selection import train_on_selected, weighted_lm_loss

    problems = [Problem(3, (("+", 2), ("-", 1))), Problem(6, (("+", 2), ("-", 1), ("+", 4)))]  # padded batch
    samples = [reference_trace(i, p).sample() for i, p in enumerate(problems)]
    model = build_model(tiny_cfg.arith, tiny_tok, seed=1)
    with torch.no_grad():
        full = float(weighted_lm_loss(model, tiny_tok, samples, [1.0, 1.0]))
        first = float(weighted_lm_loss(model, tiny_tok, samples[:1], [1.0]))
        second = float(weighted_lm_loss(model, tiny_tok, samples[1:], [1.0]))
        weighted = float(weighted_lm_loss(model, tiny_tok, samples, [2.0, 0.0]))
    assert full == pytest.approx((first + second) / 2, rel=1e-5)
    assert weighted == pytest.approx(first, rel=1e-5)
    before = [p.detach().clone() for p in model.parameters()]
    assert math.isnan(train_on_selected(model, tiny_tok, [], [], steps=3))
    loss = train_on_selected(model, tiny_tok, samples, [1.0, 1.0], steps=3, lr=1e-2)
    assert math.isfinite(loss) and any(not p.equal(b) for p, b in zip(model.parameters(), before))
