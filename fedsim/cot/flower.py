"""Federated use of CoT-Kinetics (arXiv 2505.13408) on Flower: the client node action ``train.cot``.

Every client holds its own reasoning traces about seeded arithmetic problems (setting 1's format),
a client-specific fraction of which is flawed (non-IID: :class:`~fedsim.cot.config.FederatedConfig`
``flawed_fractions``): a cancelling wrong step with the right answer (``unsound_right``), a wrong step
carried on to a wrong answer (``wrong_step``) or a wrong final answer only (``wrong_answer``). A client
does not know which of its traces are flawed. Each round it receives the shared decoder, scores its
traces with it, keeps or weights them by the oriented score (:mod:`fedsim.cot.selection`), trains
the decoder locally on what it kept, and returns the weights plus its selection statistics (kept,
flawed removed per kind, the score's AUROC on its own data). The ground-truth labels are used only
for these reports and for the ``oracle`` reference arm.

``selection.score`` names a scorer output (``cot_kinetics``, ``nll``, ``entropy``, ...) or one of
``none`` (train on everything), ``random`` (drop as many as ``keep_fraction`` would, at random) and
``oracle`` (drop exactly the flawed traces; an upper bound no real client has).

The server side (strategy ``cot_select``: FedAvg, one orientation fit on a labelled validation split,
held-out answer accuracy of the global model) is :mod:`strategies.cot_select`; it uses the server
helpers at the end of this module. Departure: the paper only scores; using the score to select
training data follows the spec's section 6 (as DE-Venus does for RLVR).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord

from fedsim.client import Reply, action
from fedsim.cot.config import SPECIAL_SELECTIONS, CoTConfig
from fedsim.errors import ConfigError

ACTION = "train.cot"


def cot_config_of(experiment_cfg: Any) -> CoTConfig:
    """The CoT config carried in the experiment's ``strategy`` section (strategy ``cot_select``)."""
    scfg = experiment_cfg.strategy_config()
    if not hasattr(scfg, "cot"):
        raise ConfigError(f"strategy.name: {ACTION} needs the cot_select strategy, got {scfg.name!r}")
    return scfg.cot()


# --------------------------------------------------------------------------------------------
# Data: each client's traces, the server's validation and held-out problems
# --------------------------------------------------------------------------------------------

def _variant(trace, kind: str, rng: np.random.Generator, cot: CoTConfig):
    from fedsim.cot import arith

    make = {"unsound_right": arith.unsound_right_variant, "wrong_step": arith.wrong_step_variant,
            "wrong_answer": arith.wrong_answer_variant}[kind]
    out = make(trace, rng, cot.arith)
    return out if out is not None else arith.wrong_step_variant(trace, rng, cot.arith)  # one-step problem


def flawed_traces(problems: list, kinds: list[str], flawed: set[int], rng: np.random.Generator,
                  cot: CoTConfig, first_id: int = 0) -> list:
    """Reference traces of ``problems``, with those at indices ``flawed`` replaced by variants whose
    kinds cycle through ``kinds``."""
    from fedsim.cot import arith

    out, j = [], 0
    for i, p in enumerate(problems):
        trace = arith.reference_trace(first_id + i, p)
        if i in flawed:
            trace = _variant(trace, kinds[j % len(kinds)], rng, cot)
            j += 1
        out.append(trace)
    return out


def client_traces(cot: CoTConfig, pid: int) -> list:
    """Client ``pid``'s local traces: seeded by (seed, pid), a client-specific flawed fraction."""
    from fedsim.cot import arith

    fed = cot.federated
    rng = np.random.default_rng([cot.seed, 17, pid])
    problems = arith.make_problems(fed.n_local, cot.arith, seed=int(rng.integers(2**31)))
    n_bad = int(round(fed.flawed_fractions[pid % len(fed.flawed_fractions)] * fed.n_local))
    bad = {int(i) for i in rng.choice(fed.n_local, n_bad, replace=False)}
    return flawed_traces(problems, fed.flaw_kinds, bad, rng, cot)


def validation_traces(cot: CoTConfig) -> list:
    """The server's labelled validation split: every problem once sound and once per flaw kind (cycled)."""
    from fedsim.cot import arith

    n = cot.federated.n_val_problems
    rng = np.random.default_rng([cot.seed, 29])
    problems = arith.make_problems(n, cot.arith, seed=int(rng.integers(2**31)))
    sound = flawed_traces(problems, cot.federated.flaw_kinds, set(), rng, cot)
    return sound + flawed_traces(problems, cot.federated.flaw_kinds, set(range(n)), rng, cot)


def heldout_problems(cot: CoTConfig) -> list:
    from fedsim.cot import arith

    rng = np.random.default_rng([cot.seed, 31])
    return arith.make_problems(cot.federated.n_heldout, cot.arith, seed=int(rng.integers(2**31)))


def is_flawed(trace) -> bool:
    return not (trace.sound and trace.answer_ok)


# --------------------------------------------------------------------------------------------
# The shared decoder
# --------------------------------------------------------------------------------------------

_TOKENIZERS: dict[str, Any] = {}


def decoder(cot: CoTConfig, state: dict[str, torch.Tensor] | None = None):
    """(model, tokenizer) of the shared decoder's architecture, loaded with ``state`` if given."""
    from fedsim.cot import arith

    key = repr(dataclasses.astuple(cot.arith))
    if key not in _TOKENIZERS:
        _TOKENIZERS[key] = arith.build_tokenizer(cot.arith)
    tok = _TOKENIZERS[key]
    model = arith.build_model(cot.arith, tok, seed=cot.seed)
    if state is not None:
        model.load_state_dict(state)
    return model.eval(), tok


def initial_state(cot: CoTConfig) -> dict[str, torch.Tensor]:
    """Round-0 weights: the cached arithmetic decoder (``init: pretrained``) or a fresh one."""
    if cot.federated.init == "pretrained":
        from fedsim.cot import arith

        model, _, _ = arith.load_or_train(cot, log=lambda _: None)
    else:
        model, _ = decoder(cot)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def weighted_average(states: list[dict[str, torch.Tensor]], weights: list[float]) -> dict[str, torch.Tensor]:
    """FedAvg: the example-weighted mean of client weights (floating tensors; others from the first)."""
    total = float(sum(weights))
    if not states or total <= 0:
        raise ValueError("weighted_average: need at least one state with positive weight")
    out = {}
    for name, first in states[0].items():
        if not torch.is_floating_point(first):
            out[name] = first.clone()
            continue
        out[name] = sum(s[name].double() * (w / total) for s, w in zip(states, weights)).to(first.dtype)
    return out


# --------------------------------------------------------------------------------------------
# Client: select, train, report
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Selection:
    kept: np.ndarray  # indices into the local traces
    weights: np.ndarray  # per kept trace
    risk: np.ndarray | None  # oriented score per local trace (None for none / random / oracle)


def select_local(model, tok, traces: list, cot: CoTConfig, rng: np.random.Generator) -> Selection:
    """Keep / weight a client's traces by ``cot.selection.score`` (see module doc for the special names)."""
    from fedsim.cot import selection

    score, n = cot.selection.score, len(traces)
    if score == "none":
        return Selection(np.arange(n), np.ones(n), None)
    if score == "oracle":
        kept = np.array([i for i, t in enumerate(traces) if not is_flawed(t)], dtype=int)
        return Selection(kept, np.ones(len(kept)), None)
    if score == "random":
        k = max(1, math.ceil(cot.selection.keep_fraction * n))
        return Selection(np.sort(rng.choice(n, k, replace=False)), np.ones(k), None)
    risk = selection.risks(model, tok, [t.sample() for t in traces], cot)
    kept, weights = selection.select(risk, cot)
    return Selection(kept, weights, risk)


def selection_stats(traces: list, sel: Selection, kinds: tuple[str, ...]) -> dict[str, float]:
    """What the client kept and removed, by ground truth (reported, never used to select)."""
    from fedsim.cot.metrics import auroc

    flawed = np.array([is_flawed(t) for t in traces], dtype=bool)
    kept = np.zeros(len(traces), dtype=bool)
    kept[sel.kept] = True
    w = np.zeros(len(traces))
    w[sel.kept] = sel.weights
    out = {"n_local": float(len(traces)), "n_flawed": float(flawed.sum()), "n_kept": float(kept.sum()),
           "flawed_removed": float((flawed & ~kept).sum()), "clean_removed": float((~flawed & ~kept).sum()),
           "flawed_weight_share": float(w[flawed].sum() / max(w.sum(), 1e-12))}
    for kind in kinds:
        of_kind = np.array([t.kind == kind for t in traces], dtype=bool)
        out[f"removed_{kind}"] = float((of_kind & ~kept).sum())
    if sel.risk is not None:
        ok = np.isfinite(sel.risk)
        if len(set(flawed[ok].tolist())) == 2:
            out["local_auroc"] = auroc(sel.risk[ok], flawed[ok])
        out["risk_flawed"] = float(sel.risk[ok & flawed].mean()) if (ok & flawed).any() else float("nan")
        out["risk_clean"] = float(sel.risk[ok & ~flawed].mean()) if (ok & ~flawed).any() else float("nan")
    return out


_TRACES: dict[tuple[str, int], list] = {}


def local_traces(cot: CoTConfig, pid: int) -> list:
    """:func:`client_traces`, built once per process (a Ray actor serves many rounds)."""
    key = (repr(dataclasses.astuple(cot)), pid)
    if key not in _TRACES:
        if len(_TRACES) > 32:
            _TRACES.clear()
        _TRACES[key] = client_traces(cot, pid)
    return _TRACES[key]


def client_round(cot: CoTConfig, pid: int, round_idx: int,
                 state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """One client's round: score + select its traces with the global model, train locally, report."""
    from fedsim.cot.selection import train_on_selected

    fed = cot.federated
    seed = cot.seed * 1_000_003 + pid * 1009 + round_idx
    model, tok = decoder(cot, state)
    traces = local_traces(cot, pid)
    t0 = time.perf_counter()
    sel = select_local(model, tok, traces, cot, np.random.default_rng(seed))
    t1 = time.perf_counter()
    loss = train_on_selected(model, tok, [traces[i].sample() for i in sel.kept], sel.weights.tolist(),
                             fed.local_steps, fed.lr, fed.batch_size, seed)
    metrics = {**selection_stats(traces, sel, tuple(fed.flaw_kinds)), "train_loss": loss,
               "select_seconds": t1 - t0, "train_seconds": time.perf_counter() - t1,
               "num-examples": float(max(1, len(sel.kept)))}
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, metrics


@action(ACTION, image_runtime=False)
def train_cot(rt: Any, conf: dict[str, Any], arrays: dict[str, ArrayRecord]) -> Reply:
    """Client node: ``global`` decoder weights + ``cot-orientation`` in; new weights + stats out."""
    cot = cot_config_of(rt.cfg)
    orientation = conf.get("cot-orientation")
    if orientation is not None:
        cot = dataclasses.replace(cot, scorer=dataclasses.replace(cot.scorer, orientation=int(orientation)))
    with torch.random.fork_rng():
        state, metrics = client_round(cot, rt.pid, rt.round, arrays["global"].to_torch_state_dict())
    return Reply(metrics=metrics, arrays={"weights": ArrayRecord(state)})


# --------------------------------------------------------------------------------------------
# Server helpers (used by strategies.cot_select)
# --------------------------------------------------------------------------------------------

def fit_orientation_on_validation(cot: CoTConfig, state: dict[str, torch.Tensor]) -> tuple[int, float]:
    """Sign of ``selection.score`` (+1: high = flawed) and its validation AUROC, from the given model."""
    from fedsim.cot.metrics import auroc, fit_orientation
    from fedsim.cot.scorer import score_samples

    model, tok = decoder(cot, state)
    traces = validation_traces(cot)
    scores = score_samples(model, tok, [t.sample() for t in traces], cot.scorer)
    name = cot.selection.score
    if name not in scores:
        raise ConfigError(f"strategy.selection.score: unknown {name!r}; choose one of "
                          f"{sorted(scores) + list(SPECIAL_SELECTIONS)}")
    values, labels = scores[name], np.array([is_flawed(t) for t in traces], dtype=int)
    ok = np.isfinite(values)
    sign = fit_orientation(values[ok], labels[ok])
    return sign, auroc(sign * values[ok], labels[ok])


def heldout_accuracy(cot: CoTConfig, state: dict[str, torch.Tensor]) -> dict[str, float]:
    """Greedy answers of the global decoder on held-out problems: answer accuracy, sound-trace rate."""
    from fedsim.cot import arith

    model, tok = decoder(cot, state)
    problems = heldout_problems(cot)
    with torch.random.fork_rng():
        traces, malformed = arith.sample_traces(model, tok, problems, 0.0, cot.seed)
    n = len(problems)
    return {"heldout_accuracy": sum(t.answer_ok for t in traces) / n,
            "heldout_sound": sum(t.sound and t.answer_ok for t in traces) / n,
            "heldout_malformed": malformed / n}
