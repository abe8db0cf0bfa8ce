"""All scores from exactly one teacher-forced forward of a real transformers causal LM."""

import math

import numpy as np
import pytest
import torch

from fedsim.cot.arith import Problem, reference_trace
from fedsim.cot.config import ScorerConfig
from fedsim.cot.scorer import (
    forward_states,
    locate_spans,
    logit_scores,
    score_sample,
    score_samples,
    scores_from_states,
)

KEYS = {"cot_kinetics", "maxprob", "ppl", "entropy", "nll", "coe_mag", "coe_ang", "coe_r", "coe_c",
        "maxprob@answer", "ppl@answer", "entropy@answer", "nll@answer"}


def _sample(start=7):
    return reference_trace(0, Problem(start, (("+", 5), ("-", 2), ("+", 3)))).sample()


def test_one_forward_gives_every_score(tiny_model, tiny_tok):
    calls = []
    hook = tiny_model.register_forward_hook(lambda *a: calls.append(1))
    try:
        scores = score_sample(tiny_model, tiny_tok, _sample())
    finally:
        hook.remove()
    assert len(calls) == 1
    assert set(scores) == KEYS
    assert all(math.isfinite(v) for v in scores.values())
    assert 0 < scores["maxprob"] <= 1 and scores["entropy"] >= 0 and scores["nll"] >= scores["ppl"] - 1e-9


def test_energy_uses_all_layers_of_the_reasoning_span(tiny_model, tiny_tok, tiny_cfg):
    sample = _sample()
    spans = locate_spans(tiny_tok, sample)
    hidden, logits = forward_states(tiny_model, spans.input_ids)
    assert hidden.shape[0] == tiny_cfg.arith.n_layers + 1
    assert hidden.shape[1] == len(spans.input_ids) == logits.shape[0]
    seen = []
    cfg = ScorerConfig(positions="self")
    scores_from_states(hidden, logits, spans, cfg, lambda h, c: seen.append(h) or h.new_zeros(h.shape[1]))
    assert torch.equal(seen[0], hidden[:, spans.reasoning])
    seen.clear()
    scores_from_states(hidden, logits, spans, ScorerConfig(), lambda h, c: seen.append(h) or h.new_zeros(1))
    predict = slice(spans.reasoning.start - 1, spans.reasoning.stop - 1)
    assert torch.equal(seen[0], hidden[:, predict])


def test_logit_scores_on_known_distribution():
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25], [1.0, 1e-12, 1e-12]]))
    got = logit_scores(logits, torch.tensor([1, 0]))
    assert got["maxprob"] == pytest.approx(0.75)
    assert got["ppl"] == pytest.approx(-(math.log(0.5) + 0.0) / 2, abs=1e-9)
    assert got["entropy"] == pytest.approx(1.5 / 2, abs=1e-6)  # 1.5 bits and 0 bits
    assert got["nll"] == pytest.approx(-math.log(0.25) / 2, abs=1e-9)


def test_score_samples_aligns_arrays(tiny_model, tiny_tok):
    samples = [_sample(s) for s in (3, 5, 8)]
    out = score_samples(tiny_model, tiny_tok, samples)
    assert set(out) == KEYS and all(v.shape == (3,) for v in out.values())
    single = score_sample(tiny_model, tiny_tok, samples[1])
    assert out["cot_kinetics"][1] == pytest.approx(single["cot_kinetics"])
    assert not np.allclose(out["nll"], out["nll"][0])
