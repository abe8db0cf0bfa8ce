"""Experiment configuration: dataclass schemas, YAML + ``key=value`` overrides, validation.

One :class:`ExperimentConfig` describes a whole run. It is built by :func:`load_config` from a YAML
file in ``configs/`` merged with dotlist overrides (``rounds=5 data.corruption.rate=0.5``). Every
error (unknown key, wrong type, out-of-range value, unknown component name) is a
:class:`~fedsim.errors.ConfigError` whose one-line message starts with the full key, raised before
anything runs. The ``trainer`` and ``strategy`` sections are validated against the ``Config``
dataclass of the component they name, so each method declares its own knobs next to its code.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from fedsim.errors import ConfigError
from fedsim.registry import STRATEGIES, TRAINERS

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
QUICKSTART = CONFIG_DIR / "quickstart.yaml"


def ranged(default: Any, lo: float | None = None, hi: float | None = None) -> Any:
    """A dataclass field whose value must lie in [lo, hi] (None = unbounded)."""
    return field(default=default, metadata={"range": (lo, hi)})


def choice(default: Any, *options: Any) -> Any:
    """A dataclass field whose value must be one of ``options``."""
    return field(default=default, metadata={"choices": (default, *options)})


def listed(*items: Any) -> Any:
    return field(default_factory=lambda: list(items))


@dataclass
class CorruptionSpec:
    """Per-image corruption of a split at rate ``rate`` (RAHFL's generator, CIFAR-10-C types)."""

    rate: float = ranged(0.0, 0.0, 1.0)
    severity_min: int = ranged(1, 1, 5)
    severity_max: int = ranged(4, 1, 5)
    types: list[str] = listed()  # empty = all 15


@dataclass
class PartitionConfig:
    name: str = choice("overlap", "iid", "dirichlet")
    #: Dirichlet concentration (label skew); smaller = more skewed.
    alpha: float = ranged(0.5, 1e-3, None)
    #: ``overlap``: each client independently draws this many samples (RAHFL's sampling).
    samples_per_client: int = ranged(1000, 1, None)


@dataclass
class PublicConfig:
    """Unlabelled public data shared by all clients (RAHFL and the distillation baselines)."""

    #: ``synthetic``: procedural coloured shapes; ``glyphs``: typeset characters rendered like the digits
    #: scans (a near-domain public set for ``data.source: digits``); the rest sample a dataset's train split
    source: str = choice("synthetic", "glyphs", "digits", "cifar10", "cifar100", "imagefolder", "none")
    root: str | None = None
    size: int = ranged(1000, 1, None)
    batch_size: int = ranged(64, 1, None)


@dataclass
class DataConfig:
    source: str = choice("digits", "synthetic", "cifar10", "cifar100", "imagefolder")
    #: local dataset directory for cifar10/cifar100/imagefolder (nothing is downloaded)
    root: str | None = None
    image_size: int = ranged(32, 8, 256)
    num_classes: int = ranged(10, 2, None)  # synthetic source only; real sources know theirs
    #: synthetic source: number of training / test images generated
    synthetic_train: int = ranged(4000, 10, None)
    synthetic_test: int = ranged(1000, 10, None)
    #: random horizontal flips in the training and public-set augmentations (RAHFL's CIFAR recipe flips);
    #: mirror-asymmetric images such as digits may want ``false`` (see benchmarks/results/rahfl_table.notes.md)
    hflip: bool = True
    #: images reserved from the training set before client sampling for selection (RAHFL's val split)
    val_size: int = ranged(200, 0, None)
    #: cap on scored test images (0 = all)
    test_size: int = ranged(0, 0, None)
    partition: PartitionConfig = field(default_factory=PartitionConfig)
    corruption: CorruptionSpec = field(default_factory=CorruptionSpec)
    #: the corrupted test set is corrupted at this rate (the clean one is never corrupted)
    test_corruption: CorruptionSpec = field(default_factory=lambda: CorruptionSpec(rate=1.0))
    public: PublicConfig = field(default_factory=PublicConfig)


@dataclass
class ModelConfig:
    #: architecture for every client, unless ``archs`` lists one per partition id (cycled)
    arch: str = "cnn"
    archs: list[str] = listed()
    width: float = ranged(1.0, 0.05, 4.0)

    def arch_for(self, partition_id: int) -> str:
        return self.archs[partition_id % len(self.archs)] if self.archs else self.arch


@dataclass
class RayConfig:
    #: attach to an existing cluster ("auto", "127.0.0.1:6379", "ray://..."); None = start a local one.
    #: The RAY_ADDRESS environment variable is used when this is None.
    address: str | None = None
    num_cpus_per_client: float = ranged(1.0, 0.01, None)
    num_gpus_per_client: float = ranged(0.0, 0.0, None)
    #: CPUs given to a locally started Ray (None = all); ignored when attaching
    num_cpus: int | None = None
    logging_level: str = choice("WARNING", "ERROR", "INFO", "DEBUG")


@dataclass
class ExperimentConfig:
    experiment: str = "quickstart"
    seed: int = 0
    rounds: int = ranged(3, 1, None)
    num_clients: int = ranged(4, 1, None)
    #: clients sampled per round (0 = all)
    clients_per_round: int = ranged(0, 0, None)
    local_epochs: int = ranged(1, 0, None)
    #: CE-only pre-training epochs each client runs before the first round (RAHFL: 40)
    pretrain_epochs: int = ranged(0, 0, None)
    #: crop/flip augmentation during pre-training (RAHFL's official pre-training uses no AugMix; on 500
    #: 16x16 digits the depthwise-separable nets barely fit with crop/flip, see configs/rahfl/digits.yaml)
    pretrain_augment: bool = True
    #: pre-training batch size (0 = the trainer's batch size)
    pretrain_batch_size: int = ranged(0, 0, None)
    eval_every: int = ranged(1, 1, None)
    #: seconds the server waits for one round of replies before going on without the missing ones
    round_timeout: float = ranged(3600.0, 1.0, None)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: dict[str, Any] = field(default_factory=lambda: {"name": "supervised"})
    strategy: dict[str, Any] = field(default_factory=lambda: {"name": "fedavg"})
    ray: RayConfig = field(default_factory=RayConfig)
    output_dir: str = "runs"
    #: where cached artefacts (pre-trained weights, generated data) live; None = <output_dir>/.cache
    cache_dir: str | None = None

    # resolved sections (filled by load_config)
    def trainer_config(self) -> Any:
        return _section(self.trainer, TRAINERS, "trainer")

    def strategy_config(self) -> Any:
        return _section(self.strategy, STRATEGIES, "strategy")


def _section(raw: dict[str, Any], registry, key: str) -> Any:
    """Validate a ``trainer``/``strategy`` section against the named component's Config dataclass."""
    if "name" not in raw:
        raise ConfigError(f"{key}.name: missing; choose one of {registry.names()}")
    cls = registry.get(raw["name"], key=f"{key}.name")
    schema = OmegaConf.structured(cls.Config)
    try:
        merged = OmegaConf.merge(schema, raw)
        obj = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        raise _as_config_error(exc, prefix=key) from None
    _check_ranges(obj, key)
    return obj


def _as_config_error(exc: OmegaConfBaseException, prefix: str = "") -> ConfigError:
    full = getattr(exc, "full_key", None) or getattr(exc, "key", None) or "?"
    full = f"{prefix}.{full}" if prefix and not str(full).startswith(prefix) else str(full)
    msg = str(exc).split("\n")[0]
    if "not in" in msg or "Key '" in msg and "not" in msg:
        parent = full.rsplit(".", 1)[0] if "." in full else ""
        allowed = _allowed_keys(exc)
        return ConfigError(f"{full}: unknown key{f' in {parent}' if parent else ''}; allowed keys: {allowed}")
    return ConfigError(f"{full}: {msg}")


def _allowed_keys(exc: OmegaConfBaseException) -> list[str]:
    obj_type = getattr(exc, "object_type", None)
    if obj_type is not None and dataclasses.is_dataclass(obj_type):
        return [f.name for f in dataclasses.fields(obj_type)]
    return []


def _check_ranges(obj: Any, prefix: str) -> None:
    """Walk a dataclass tree and enforce the ``range`` / ``choices`` field metadata."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        key = f"{prefix}.{f.name}" if prefix else f.name
        if dataclasses.is_dataclass(value):
            _check_ranges(value, key)
            continue
        if "choices" in f.metadata and value not in f.metadata["choices"]:
            raise ConfigError(f"{key}: {value!r} is not allowed; choose one of {list(f.metadata['choices'])}")
        if "range" in f.metadata and value is not None:
            lo, hi = f.metadata["range"]
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                bounds = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
                raise ConfigError(f"{key}: {value!r} is out of range; allowed {bounds}")


def _cross_checks(cfg: ExperimentConfig) -> None:
    if cfg.data.corruption.severity_min > cfg.data.corruption.severity_max:
        raise ConfigError("data.corruption.severity_min: must be <= data.corruption.severity_max")
    if cfg.clients_per_round > cfg.num_clients:
        raise ConfigError(f"clients_per_round: {cfg.clients_per_round} exceeds num_clients={cfg.num_clients}")
    from fedsim.registry import MODELS, load_plugins

    load_plugins()
    for arch in cfg.model.archs or [cfg.model.arch]:
        if arch not in MODELS:
            raise ConfigError(f"model.arch: unknown model {arch!r}; choose one of {MODELS.names()}")
    if cfg.data.source in ("cifar10", "cifar100", "imagefolder") and not cfg.data.root:
        raise ConfigError(f"data.root: required for data.source={cfg.data.source} (a local directory)")


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Load YAML ``path`` (None = the quickstart) with ``key=value`` overrides into a validated config."""
    path = Path(path) if path is not None else QUICKSTART
    if not path.is_file():
        raise ConfigError(f"config: file not found: {path}")
    try:
        raw = OmegaConf.load(path)
    except Exception as exc:  # yaml syntax errors
        raise ConfigError(f"config: cannot parse {path}: {str(exc).splitlines()[0]}") from None
    return build_config(raw, overrides or [])


def build_config(raw: DictConfig | dict, overrides: list[str]) -> ExperimentConfig:
    """Merge schema <- raw <- overrides; validate every section; return the dataclass tree."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value")
    schema = OmegaConf.structured(ExperimentConfig)
    try:
        merged = OmegaConf.merge(schema, raw, OmegaConf.from_dotlist(list(overrides)))
        cfg: ExperimentConfig = OmegaConf.to_object(merged)  # type: ignore[assignment]
    except OmegaConfBaseException as exc:
        raise _as_config_error(exc) from None
    _check_ranges(cfg, "")
    # resolve the named sections with all their defaults, so the saved config reruns exactly
    cfg.trainer = dataclasses.asdict(cfg.trainer_config())
    cfg.strategy = dataclasses.asdict(cfg.strategy_config())
    _cross_checks(cfg)
    return cfg


def to_yaml(cfg: ExperimentConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def from_yaml(text: str) -> ExperimentConfig:
    return build_config(OmegaConf.create(text), [])


def config_hash(cfg: ExperimentConfig, *sections: str, exclude: tuple[str, ...] = ()) -> str:
    """Stable short hash of the whole config or of some top-level sections (cache keys), without the dotted
    keys in ``exclude`` (parts the cached thing does not depend on)."""
    data = OmegaConf.to_container(OmegaConf.structured(cfg))
    if sections:
        data = {k: data[k] for k in sections}
    for dotted in exclude:
        *parents, leaf = dotted.split(".")
        node = data
        for part in parents:
            node = node.get(part, {})
        node.pop(leaf, None)
    return hashlib.sha256(repr(data).encode()).hexdigest()[:12]


__all__ = ["MISSING", "ExperimentConfig", "build_config", "config_hash", "from_yaml", "load_config", "to_yaml"]
