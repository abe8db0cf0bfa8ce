"""CoT-Kinetics energy (Bi et al., arXiv 2505.13408) and its baselines from one teacher-forced forward.

CoT-Kinetics treats the way a token's state moves through the transformer's layers as a particle
moving in a field, and scores the soundness of the reasoning span by an energy of that motion. One
forward of any transformers causal LM over ``prompt + reasoning + answer`` with
``output_hidden_states=True`` yields every score here:

* ``cot_kinetics``: the energy over the reasoning span (pluggable, see :data:`ENERGIES`);
* MaxProb / PPL / Entropy (Chain-of-Embedding definitions) and ``nll`` (the true teacher-forced
  negative log-likelihood) over ``baseline_span``, plus answer-only variants (``...@answer``);
* CoE-Mag / CoE-Ang / CoE-R / CoE-C over the span-averaged layer trajectory.

Departures / our choices (the paper's equation is not public; see ``shared/specs/cot_kinetics.md``):

* Energy (ours): per token t, velocity v_t^l = (h_t^{l+1} - h_t^l) / ||h_t^L - h_t^0||, kinetic
  term K_t = mean_l 1/2 ||v_t^l||^2, curvature term U_t = mean_l arccos cos(v_t^l, v_t^{l+1}),
  E_t = gamma K_t + (1 - gamma) U_t with gamma = 0.8 (the value the third-party harness uses).
  Any callable ``energy_fn(hidden[L+1, T, D], cfg) -> Tensor[T] | scalar`` can replace it.
* Hidden states are taken at the positions that *predict* each span token (``positions``).
* Open choices of the energy are knobs (``normalize``, ``layer_start``/``layer_stop``, ``gamma``,
  ``aggregation``, ``positions``); ``benchmarks/cot_table.py`` picks among them on the validation
  split only and reports the pick on test.
* ``nll`` is not in CoE: its "PPL" uses the max probability, which ignores which token was actually
  written; for teacher-forced perturbed traces the true likelihood is the fair, stronger baseline.
* Which sign of a score means "unsound" is fitted on a validation split (:func:`fit_orientations`).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from fedsim.cot.config import ScorerConfig
from fedsim.cot.metrics import fit_orientation
from fedsim.errors import ConfigError

EnergyFn = Callable[[torch.Tensor, ScorerConfig], torch.Tensor]


@dataclass(frozen=True)
class ReasoningSample:
    """One reasoning trace: the prompt (already chat-formatted if needed), its reasoning and answer."""

    prompt: str
    reasoning: str
    answer: str


@dataclass(frozen=True)
class Spans:
    """Token ids of the whole text and the token slices of the reasoning and answer segments."""

    input_ids: list[int]
    reasoning: slice
    answer: slice


# --------------------------------------------------------------------------------------------
# Span location
# --------------------------------------------------------------------------------------------

def _spans_by_offsets(tok, sample: ReasoningSample, max_length: int) -> Spans:
    """Assign each token to the segment holding its first character (fast tokenizers)."""
    text = sample.prompt + sample.reasoning + sample.answer
    enc = tok(text, return_offsets_mapping=True, truncation=True, max_length=max_length)
    offsets = enc["offset_mapping"]
    real = [i for i, (s, e) in enumerate(offsets) if e > s]  # special tokens have empty offsets
    starts = [offsets[i][0] for i in real]
    r_char, a_char = len(sample.prompt), len(sample.prompt) + len(sample.reasoning)
    r0 = real[bisect.bisect_left(starts, r_char)] if starts and starts[-1] >= r_char else len(offsets)
    a0 = real[bisect.bisect_left(starts, a_char)] if starts and starts[-1] >= a_char else len(offsets)
    end = real[-1] + 1 if real else 0
    return Spans(list(enc["input_ids"]), slice(r0, a0), slice(a0, max(a0, end)))


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _spans_incremental(tok, sample: ReasoningSample, max_length: int) -> Spans:
    """Slow tokenizers: tokenise growing prefixes; a segment starts where the prefixes diverge.

    The longest common prefix absorbs special tokens a tokenizer appends (EOS) and a merge across
    a boundary, which then lands in the later segment.
    """
    kw = {"truncation": True, "max_length": max_length}
    ids_p = tok(sample.prompt, **kw)["input_ids"]
    ids_pr = tok(sample.prompt + sample.reasoning, **kw)["input_ids"]
    ids = list(tok(sample.prompt + sample.reasoning + sample.answer, **kw)["input_ids"])
    special = set(getattr(tok, "all_special_ids", []))
    end = len(ids)
    while end > 0 and ids[end - 1] in special:
        end -= 1
    r0 = min(_common_prefix(ids_p, ids), end)
    a0 = max(r0, min(_common_prefix(ids_pr, ids), end))
    return Spans(ids, slice(r0, a0), slice(a0, end))


def locate_spans(tok, sample: ReasoningSample, method: str = "auto", max_length: int = 1024) -> Spans:
    """Token ids of the full text plus the reasoning and answer token slices."""
    if method == "auto":
        method = "offsets" if getattr(tok, "is_fast", False) else "incremental"
    if method == "offsets":
        return _spans_by_offsets(tok, sample, max_length)
    if method == "incremental":
        return _spans_incremental(tok, sample, max_length)
    raise ConfigError(f"cot.scorer.span_method: unknown {method!r}")


# --------------------------------------------------------------------------------------------
# Energy (ours, pluggable)
# --------------------------------------------------------------------------------------------

def _cos(a: torch.Tensor, b: torch.Tensor, eps: float) -> torch.Tensor:
    dot = (a * b).sum(-1)
    return (dot / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(eps)).clamp(-1.0, 1.0)


def velocities(hidden: torch.Tensor, eps: float = 1e-8, normalize: str = "displacement") -> torch.Tensor:
    """Layer-to-layer steps of each token [L, T, D] under one of the normalisations of ScorerConfig.

    ``displacement`` (ours): steps divided by the token's total displacement ||h^L - h^0||, so a
    global rescaling of the states leaves the energy unchanged; ``unit``: every layer's state is first
    scaled to unit norm (the residual stream's norm grows with depth, which otherwise dominates the
    step sizes); ``none``: raw steps.
    """
    h = hidden.double()
    if normalize == "unit":
        h = h / h.norm(dim=-1, keepdim=True).clamp_min(eps)
    steps = h[1:] - h[:-1]
    if normalize == "displacement":
        scale = (h[-1] - h[0]).norm(dim=-1).clamp_min(eps)  # [T]
        steps = steps / scale.unsqueeze(-1)
    elif normalize not in ("unit", "none"):
        raise ConfigError(f"cot.scorer.normalize: unknown {normalize!r}")
    return steps


def kinetic_term(hidden: torch.Tensor, eps: float = 1e-8, normalize: str = "displacement") -> torch.Tensor:
    """K_t = mean over layers of 1/2 ||v_t^l||^2: how much a token's state moves per layer."""
    return 0.5 * velocities(hidden, eps, normalize).pow(2).sum(-1).mean(0)


def curvature_term(hidden: torch.Tensor, eps: float = 1e-8, normalize: str = "displacement") -> torch.Tensor:
    """U_t = mean turning angle between consecutive layer steps (0 on a straight line)."""
    v = velocities(hidden, eps, normalize)
    if v.shape[0] < 2:
        return torch.zeros(v.shape[1], dtype=v.dtype)
    return torch.arccos(_cos(v[:-1], v[1:], eps)).mean(0)


def layer_range(hidden: torch.Tensor, cfg: ScorerConfig) -> torch.Tensor:
    """The hidden-state layers ``[layer_start, layer_stop)`` the energy looks at."""
    sub = hidden[cfg.layer_start: cfg.layer_stop]
    if sub.shape[0] < 2:
        raise ConfigError(f"cot.scorer.layer_start: layers [{cfg.layer_start}, {cfg.layer_stop}) leave "
                          f"{sub.shape[0]} of the model's {hidden.shape[0]} hidden states; need >= 2")
    return sub


def kinetics_energy(hidden: torch.Tensor, cfg: ScorerConfig) -> torch.Tensor:
    """Per-token energy E_t = gamma K_t + (1 - gamma) U_t (fedsim's equation; see module doc)."""
    h = layer_range(hidden, cfg)
    k = kinetic_term(h, cfg.eps, cfg.normalize) if cfg.gamma > 0 else 0.0
    u = curvature_term(h, cfg.eps, cfg.normalize) if cfg.gamma < 1 else 0.0
    return cfg.gamma * k + (1.0 - cfg.gamma) * u


ENERGIES: dict[str, EnergyFn] = {"kinetics": kinetics_energy}


def aggregate(values: torch.Tensor, how: str) -> float:
    """Token aggregation of per-token energies (the harness default is the average)."""
    if values.ndim == 0:
        return float(values)
    if values.numel() == 0:
        return float("nan")
    ops = {"mean": torch.mean, "median": torch.median, "max": torch.max, "last": lambda x: x[-1]}
    return float(ops[how](values))


def energy_score(hidden: torch.Tensor, cfg: ScorerConfig, energy_fn: EnergyFn | None = None) -> float:
    """Sequence energy of a span's trajectory ``hidden`` [L+1, T, D]."""
    if energy_fn is None:
        if cfg.energy not in ENERGIES:
            raise ConfigError(f"cot.scorer.energy: unknown {cfg.energy!r}; choose one of {sorted(ENERGIES)}")
        energy_fn = ENERGIES[cfg.energy]
    return aggregate(energy_fn(hidden, cfg), cfg.aggregation)


# --------------------------------------------------------------------------------------------
# Baselines: Chain-of-Embedding formulas on the span-averaged trajectory, and logit scores
# --------------------------------------------------------------------------------------------

def _angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.arccos(_cos(a, b, 0.0))


def coe_components(traj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-layer normalised magnitudes m_l and angles a_l of a trajectory ``traj`` [L+1, D]."""
    h = traj.double()
    steps = h[1:] - h[:-1]
    mag = steps.norm(dim=-1) / (h[-1] - h[0]).norm()
    ang = _angle(h[1:], h[:-1]) / _angle(h[-1], h[0])
    return mag, ang


def coe_scores(traj: torch.Tensor) -> dict[str, float]:
    """CoE-Mag, CoE-Ang, CoE-R and CoE-C (Wang et al., Chain-of-Embedding) of ``traj`` [L+1, D]."""
    mag, ang = coe_components(traj)
    x, y = (mag * torch.cos(ang)).mean(), (mag * torch.sin(ang)).mean()
    return {"coe_mag": float(mag.mean()), "coe_ang": float(ang.mean()),
            "coe_r": float(mag.mean() - ang.mean()), "coe_c": float(torch.sqrt(x * x + y * y))}


def logit_scores(logits: torch.Tensor, targets: torch.Tensor, suffix: str = "") -> dict[str, float]:
    """MaxProb, PPL (CoE: -mean log max prob), Entropy (bits) and true NLL of next-token ``logits``."""
    logp = torch.log_softmax(logits.double(), dim=-1)
    max_logp = logp.max(dim=-1).values
    entropy = -(logp.exp() * logp).sum(-1) / math.log(2)
    nll = -logp.gather(-1, targets.view(-1, 1)).squeeze(-1)
    return {f"maxprob{suffix}": float(max_logp.exp().mean()), f"ppl{suffix}": float(-max_logp.mean()),
            f"entropy{suffix}": float(entropy.mean()), f"nll{suffix}": float(nll.mean())}


# --------------------------------------------------------------------------------------------
# One forward -> all scores
# --------------------------------------------------------------------------------------------

@torch.no_grad()
def forward_states(model, input_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden states of every layer [L+1, T, D] and logits [T, V] of one teacher-forced pass."""
    device = next(model.parameters()).device
    ids = torch.tensor([input_ids], device=device)
    out = model(input_ids=ids, output_hidden_states=True, use_cache=False)
    hidden = torch.stack([h[0] for h in out.hidden_states]).float().cpu()
    return hidden, out.logits[0].float().cpu()


def _state_rows(span: slice, cfg: ScorerConfig) -> slice:
    shift = 1 if cfg.positions == "predict" else 0
    return slice(span.start - shift, span.stop - shift)


def _span(spans: Spans, which: str) -> slice:
    if which == "reasoning":
        return spans.reasoning
    if which == "answer":
        return spans.answer
    return slice(spans.reasoning.start, spans.answer.stop)


def scores_from_states(hidden: torch.Tensor, logits: torch.Tensor, spans: Spans, cfg: ScorerConfig,
                       energy_fn: EnergyFn | None = None) -> dict[str, float]:
    """All scores of one sample from its forward outputs; NaN where a span is empty."""
    if spans.reasoning.start < 1:
        raise ValueError("the prompt must contribute at least one token before the reasoning span")
    ids = torch.tensor(spans.input_ids)
    out: dict[str, float] = {}
    reasoning = _state_rows(spans.reasoning, cfg)
    out["cot_kinetics"] = (energy_score(hidden[:, reasoning], cfg, energy_fn)
                           if reasoning.stop > reasoning.start else float("nan"))
    for which, suffix in ((cfg.baseline_span, ""), ("answer", "@answer")):
        span = _span(spans, which)
        if span.stop <= span.start:
            continue
        pred = slice(span.start - 1, span.stop - 1)  # logits at t-1 predict token t
        out.update(logit_scores(logits[pred], ids[span], suffix))
        if not suffix:
            out.update(coe_scores(hidden[:, _state_rows(span, cfg)].mean(1)))
    return out


def score_sample(model, tok, sample: ReasoningSample, cfg: ScorerConfig | None = None,
                 energy_fn: EnergyFn | None = None) -> dict[str, float]:
    """CoT-Kinetics energy and every baseline of one (prompt, reasoning, answer) sample."""
    cfg = cfg or ScorerConfig()
    spans = locate_spans(tok, sample, cfg.span_method, cfg.max_length)
    hidden, logits = forward_states(model, spans.input_ids)
    return scores_from_states(hidden, logits, spans, cfg, energy_fn)


@torch.no_grad()
def forward_batch(model, rows: Sequence[list[int]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """:func:`forward_states` of several sequences in one right-padded forward.

    Causal attention plus right padding leaves every real position's states as in a single forward
    (up to float rounding), so batching only saves time.
    """
    device = next(model.parameters()).device
    width = max(map(len, rows))
    ids = torch.zeros((len(rows), width), dtype=torch.long, device=device)
    mask = torch.zeros((len(rows), width), dtype=torch.long, device=device)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, device=device)
        mask[i, : len(row)] = 1
    out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True, use_cache=False)
    hidden = torch.stack(out.hidden_states, 1).float().cpu()  # [B, L+1, T, D]
    logits = out.logits.float().cpu()
    return [(hidden[i, :, : len(r)], logits[i, : len(r)]) for i, r in enumerate(rows)]


def score_samples(model, tok, samples: Sequence[ReasoningSample], cfg: ScorerConfig | None = None,
                  energy_fn: EnergyFn | None = None) -> dict[str, np.ndarray]:
    """Score many samples (``cfg.batch_size`` per forward); returns score name -> array aligned with them."""
    cfg = cfg or ScorerConfig()
    spans = [locate_spans(tok, s, cfg.span_method, cfg.max_length) for s in samples]
    order = sorted(range(len(spans)), key=lambda i: len(spans[i].input_ids))  # similar lengths share a batch
    rows: list[dict[str, float]] = [{} for _ in spans]
    for b in range(0, len(order), cfg.batch_size):
        chunk = order[b: b + cfg.batch_size]
        for i, (hidden, logits) in zip(chunk, forward_batch(model, [spans[i].input_ids for i in chunk])):
            rows[i] = scores_from_states(hidden, logits, spans[i], cfg, energy_fn)
    names = sorted({k for r in rows for k in r})
    return {k: np.array([r.get(k, float("nan")) for r in rows]) for k in names}


def fit_orientations(val_scores: dict[str, np.ndarray], val_labels: np.ndarray) -> dict[str, int]:
    """Per score, +1 if high values flag the positive (incorrect/unsound) class on validation."""
    out = {}
    for name, values in val_scores.items():
        ok = np.isfinite(values)
        out[name] = fit_orientation(values[ok], np.asarray(val_labels)[ok])
    return out
