"""Fast in-process tests of the federated use (fedsim.cot.flower + strategies.cot_select), no Ray."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fedsim
from fedsim.client import ACTIONS, NodeRuntime
from fedsim.cot import arith, flower
from fedsim.cot.config import CoTConfig
from fedsim.cot.scorer import ReasoningSample, score_sample, score_samples
from fedsim.errors import ConfigError
from fedsim.server import ClientReply
from strategies.cot_select import CoTSelect

TINY = ["num_clients=2", "rounds=1", "strategy.arith.d_model=32", "strategy.arith.d_ff=64",
        "strategy.arith.n_layers=2", "strategy.arith.n_heads=2", "strategy.federated.init=random",
        "strategy.federated.n_local=12", "strategy.federated.local_steps=2", "strategy.federated.batch_size=4",
        "strategy.federated.n_val_problems=6", "strategy.federated.n_heldout=8",
        "strategy.federated.flawed_fractions=[0.25,0.5]"]


class Recorder:
    def __init__(self) -> None:
        self.rows: list[tuple[int, int | None, dict]] = []

    def log(self, r: int, client: int | None, metrics: dict) -> None:
        self.rows.append((r, client, dict(metrics)))


class NodeContext:
    """Serves node actions in-process exactly as the ClientApp does (NodeRuntime, no image data)."""

    def __init__(self, cfg) -> None:
        self.cfg, self.recorder, self.failures, self.sent = cfg, Recorder(), 0, []

    @property
    def pids(self) -> list[int]:
        return list(range(self.cfg.num_clients))

    def sample(self, r: int) -> list[int]:
        return self.pids

    def base_config(self, r: int) -> dict:
        return {"server-round": r}

    def broadcast(self, action, r, pids, conf=None, arrays=None):
        out = {}
        for pid in pids:
            self.sent.append((action, r, pid, dict(conf or {})))
            rep = ACTIONS[action](NodeRuntime(self.cfg, pid, r), {**self.base_config(r), **(conf or {})},
                                  dict(arrays or {}))
            out[pid] = ClientReply(pid, {**rep.metrics, "partition-id": pid}, rep.config, rep.arrays)
        return out


def _cot(*overrides: str) -> CoTConfig:
    return fedsim.load_config("configs/cot/federated.yaml", [*TINY, *overrides]).strategy_config().cot()


def test_client_traces_are_seeded_non_iid_and_labelled():
    cot = _cot("strategy.federated.n_local=40", "strategy.federated.flawed_fractions=[0.1,0.6]")
    a, b = flower.client_traces(cot, 0), flower.client_traces(cot, 1)
    assert a == flower.client_traces(cot, 0)  # seeded
    assert [t.problem for t in a] != [t.problem for t in b]  # each client its own problems
    assert sum(map(flower.is_flawed, a)) == 4 and sum(map(flower.is_flawed, b)) == 24
    assert {t.kind for t in b if flower.is_flawed(t)} == {"unsound_right", "wrong_step", "wrong_answer"}
    tok = arith.build_tokenizer(cot.arith)
    for t in a + b:  # every number stays in the word-level vocabulary
        s = t.sample()
        assert tok.unk_token_id not in tok(s.prompt + s.reasoning + s.answer)["input_ids"]


def test_wrong_step_carries_the_error_to_a_wrong_answer(arith_cfg):
    p = arith.Problem(5, (("+", 3), ("-", 2), ("+", 4)))
    rng = np.random.default_rng(0)
    for _ in range(20):
        reference = arith.reference_trace(0, p)
        t = arith.wrong_step_variant(reference, rng, arith_cfg)
        assert not t.sound and not t.answer_ok and t.kind == "wrong_step"
        k = next(i for i, (s, ref) in enumerate(zip(t.steps, reference.steps)) if s != ref)
        assert t.steps[k][3] != reference.steps[k][3]  # one written result is off ...
        for (_, _, _, r), (left, op, x, res) in zip(t.steps[k:], t.steps[k + 1:]):
            assert left == r and res == (left + x if op == "+" else left - x)  # ... and carried on


def test_selection_stats_count_removed_flaws_by_kind():
    cot = _cot()
    traces = flower.client_traces(cot, 1)
    flawed = [flower.is_flawed(t) for t in traces]
    rng = np.random.default_rng(0)
    oracle = flower.select_local(None, None, traces, _cot("strategy.selection.score=oracle"), rng)
    stats = flower.selection_stats(traces, oracle, ("unsound_right", "wrong_step", "wrong_answer"))
    assert stats["flawed_removed"] == sum(flawed) == 6 and stats["clean_removed"] == 0
    assert stats["flawed_weight_share"] == 0.0 and sum(stats[f"removed_{k}"] for k in
                                                       ("unsound_right", "wrong_step", "wrong_answer")) == 6
    none = flower.select_local(None, None, traces, _cot("strategy.selection.score=none"), rng)
    assert flower.selection_stats(traces, none, ())["n_kept"] == 12
    rand = flower.select_local(None, None, traces, _cot("strategy.selection.score=random"), rng)
    assert len(rand.kept) == 9  # ceil(0.7 * 12), like keep_fraction


def test_weighted_average_is_example_weighted():
    a = {"w": torch.zeros(2), "step": torch.tensor(3)}
    b = {"w": torch.ones(2), "step": torch.tensor(5)}
    out = flower.weighted_average([a, b], [1.0, 3.0])
    assert torch.allclose(out["w"], torch.full((2,), 0.75)) and int(out["step"]) == 3
    with pytest.raises(ValueError):
        flower.weighted_average([], [])


def test_batched_scoring_matches_one_forward_per_sample(tiny_model, tiny_tok):
    samples = [ReasoningSample("Q 3 + 2 =", " R 3 + 2 = 5", " A 5"),
               ReasoningSample("Q 7 - 1 + 4 - 2 =", " R 7 - 1 = 6 ; 6 + 4 = 10 ; 10 - 2 = 8", " A 8"),
               ReasoningSample("Q 4 + 4 - 3 =", " R 4 + 4 = 8 ; 8 - 3 = 5", " A 5")]
    batched = score_samples(tiny_model, tiny_tok, samples)
    for i, s in enumerate(samples):
        for name, value in score_sample(tiny_model, tiny_tok, s).items():
            assert batched[name][i] == pytest.approx(value, rel=1e-4, abs=1e-6), name


def test_strategy_round_in_process_records_selection_and_accuracy():
    cfg = fedsim.load_config("configs/cot/federated.yaml", TINY)
    ctx = NodeContext(cfg)
    strategy = CoTSelect(cfg.strategy_config(), ctx)
    strategy.setup()
    r0 = ctx.recorder.rows[0]
    assert r0[0] == 0 and r0[2]["orientation"] in (1.0, -1.0) and 0 <= r0[2]["heldout_accuracy"] <= 1
    before = {k: v.clone() for k, v in strategy.state.items()}
    metrics = strategy.round(1)
    assert [s[0] for s in ctx.sent] == ["train.cot"] * 2
    assert all(s[3]["cot-orientation"] == int(r0[2]["orientation"]) for s in ctx.sent)
    assert metrics["n_local"] == 24 and metrics["n_flawed"] == 9 and metrics["n_kept"] == 18
    per_client = strategy.evaluate(1)
    assert sorted(per_client) == [0, 1] and all("local_auroc" in m for m in per_client.values())
    assert any(not torch.equal(before[k], v) for k, v in strategy.state.items())  # the average moved
    assert set(strategy.evaluate_global(1)) == {"heldout_accuracy", "heldout_sound", "heldout_malformed"}
    restored = CoTSelect(cfg.strategy_config(), ctx)
    restored.load_state_dict(strategy.state_dict())
    restored.setup()  # resumed: no refit, no second round-0 row
    assert restored.orientation == strategy.orientation and len(ctx.recorder.rows) == 1


def test_bad_selection_score_and_wrong_strategy_are_config_errors():
    cot = _cot("strategy.selection.score=bogus")
    with pytest.raises(ConfigError, match="selection.score"):
        flower.fit_orientation_on_validation(cot, flower.initial_state(cot))
    with pytest.raises(ConfigError, match="strategy.federated.flawed_fractions"):
        _cot("strategy.federated.flawed_fractions=[1.5]")
    with pytest.raises(ConfigError, match="cot_select"):
        flower.cot_config_of(fedsim.load_config("configs/mas/financial.yaml"))
