"""Synthetic arithmetic traces, their labels and variants, sampling, and the decoder cache."""

import numpy as np
import pytest
import torch

from fedsim.cot import arith
from fedsim.cot.arith import Problem, Trace, make_problems, parse_trace, reference_trace
from fedsim.errors import DataPathError


def test_problems_stay_in_vocabulary(arith_cfg):
    problems = make_problems(300, arith_cfg, seed=4)
    assert problems == make_problems(300, arith_cfg, seed=4)
    for p in problems:
        assert 1 <= p.start <= arith_cfg.start_max
        assert arith_cfg.steps_min <= len(p.ops) <= arith_cfg.steps_max
        assert all(0 <= r <= arith_cfg.value_max for r in p.results())


def test_trace_labels_and_variants(arith_cfg):
    rng = np.random.default_rng(0)
    ref = reference_trace(3, Problem(7, (("+", 5), ("-", 2), ("+", 4))))
    assert ref.sound and ref.answer_ok and ref.answer == 14
    bad = arith.unsound_right_variant(ref, rng, arith_cfg)
    assert bad.answer_ok and not bad.sound and bad.kind == "unsound_right"
    diff = [i for i, (a, b) in enumerate(zip(ref.steps, bad.steps)) if a != b]
    k = diff[0]
    assert diff == [k, k + 1] and bad.steps[k][3] == bad.steps[k + 1][0] != ref.steps[k][3]
    assert bad.steps[k + 1][3] == ref.steps[k + 1][3]  # the error cancels: the next result is the true one
    wrong = arith.wrong_answer_variant(ref, rng, arith_cfg)
    assert wrong.sound and not wrong.answer_ok and wrong.steps == ref.steps
    off_operand = Trace(3, ref.problem, ((7, "+", 4, 11), *ref.steps[1:]), 14, "sampled")
    assert not off_operand.sound  # arithmetically right but not the problem's operand


def test_parse_roundtrip_and_malformed(tiny_tok):
    ref = reference_trace(0, Problem(9, (("-", 3), ("+", 1))))
    s = ref.sample()
    words = (s.reasoning + s.answer).split()
    parsed = parse_trace(0, ref.problem, words)
    assert parsed.steps == ref.steps and parsed.answer == ref.answer
    assert parse_trace(0, ref.problem, words[:-1]) is None
    assert parse_trace(0, ref.problem, ["R", "9", "-", "3", "=", "A", "6"]) is None
    assert parse_trace(0, ref.problem, []) is None


def test_train_cache_reload_and_sampling(tiny_cfg):
    model, tok, info = arith.load_or_train(tiny_cfg, log=lambda _: None)
    assert not info["cached"] and info["train_steps"] == tiny_cfg.arith.train_steps
    again, tok2, info2 = arith.load_or_train(tiny_cfg, log=lambda _: None)
    assert info2["cached"] and info2["path"] == info["path"]
    ids = torch.tensor([tok("Q 3 + 4 = R")["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, again(ids).logits, atol=1e-5)
    problems = [Problem(3, (("+", 2), ("+", 1)))] * 3
    first = arith.sample_ids(model, torch.tensor([tok(p.prompt())["input_ids"] for p in problems]), 6, 1.0,
                             tok.eos_token_id, torch.Generator().manual_seed(1))
    second = arith.sample_ids(model, torch.tensor([tok(p.prompt())["input_ids"] for p in problems]), 6, 1.0,
                              tok.eos_token_id, torch.Generator().manual_seed(1))
    assert first.shape[0] == 3 and torch.equal(first, second)  # seeded sampling is deterministic


def test_sample_traces_parses_a_model_that_knows_the_format(tiny_cfg, tiny_tok, monkeypatch):
    """Sampling glue: a stand-in sampler that writes the reference words yields sound, right traces."""
    problems = make_problems(5, tiny_cfg.arith, seed=9)

    def fake_sample(model, prompt_ids, max_new, temperature, eos_id, gen):
        rows = []
        for ids in prompt_ids.tolist():
            p = next(p for p in problems if tiny_tok(p.prompt())["input_ids"] == ids)
            s = reference_trace(0, p).sample()
            rows.append(tiny_tok((s.reasoning + s.answer).strip(), add_special_tokens=False)["input_ids"]
                        + [eos_id] * 3)
        width = max(map(len, rows))
        return torch.tensor([r + [eos_id] * (width - len(r)) for r in rows])

    monkeypatch.setattr(arith, "sample_ids", fake_sample)
    traces, malformed = arith.sample_traces(None, tiny_tok, problems, 1.0, seed=1)
    assert malformed == 0 and [t.problem_id for t in traces] == list(range(5))
    assert all(t.sound and t.answer_ok and t.kind == "sampled" for t in traces)


def test_load_decoder_missing_path(tmp_path):
    with pytest.raises(DataPathError, match="config.json"):
        arith.load_decoder(tmp_path / "nope")
