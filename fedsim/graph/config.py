"""The ``configs/acgkd/*.yaml`` schema (ACGKD, arXiv 2504.00540) and a plain runner for it.

Until the core config module absorbs it, this module validates an ACGKD YAML into dataclasses
(unknown or mistyped keys -> :class:`ConfigError` naming the dotted key) and runs one experiment
without Flower: train the teacher(s) on real graphs, distil data-free, report test accuracies.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from fedsim.errors import ConfigError, DataPathError
from fedsim.graph.acgkd import ACGKDConfig, acgkd_distill
from fedsim.graph.data import GraphDataConfig, label_skew_split, load_graphs, num_classes, train_test_split
from fedsim.graph.federated import distill_ensemble
from fedsim.graph.gnn import GNNSpec, GraphNet, accuracy, train_supervised

MODES = ("server_ensemble", "client_compress")


@dataclass
class TeacherConfig:
    arch: str = "gin"
    hidden: int = 64
    layers: int = 5
    epochs: int = 20
    lr: float = 1e-2


@dataclass
class FederationConfig:
    num_clients: int = 1
    alpha: float = 0.5
    mode: str = "server_ensemble"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"federation.mode: unknown {self.mode!r}; choose one of {list(MODES)}")


@dataclass
class ACGKDExperiment:
    experiment: str = "acgkd"
    task: str = "acgkd"
    seed: int = 0
    data: GraphDataConfig = field(default_factory=GraphDataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    trainer: ACGKDConfig = field(default_factory=ACGKDConfig)
    federation: FederationConfig = field(default_factory=FederationConfig)


def build(cls: type, values: Any, where: str) -> Any:
    """Dataclass ``cls`` from ``values``; unknown keys and wrong scalar types name the dotted key."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        dotted = f"{where}.{key}" if where else key
        if key not in fields:
            raise ConfigError(f"{dotted}: unknown key; choose one of {sorted(fields)}")
        f = fields[key]
        if f.default_factory is not dataclasses.MISSING:
            proto = f.default_factory()
            nested = dataclasses.is_dataclass(proto)
            kwargs[key] = build(type(proto), value or {}, dotted) if nested else value
        elif f.default is not dataclasses.MISSING and f.default is not None:
            kwargs[key] = coerce(value, type(f.default), dotted)
        else:
            kwargs[key] = value
    return cls(**kwargs)


def coerce(value: Any, kind: type, dotted: str) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
        raise ConfigError(f"{dotted}: expected {kind.__name__}, got {value!r}")
    return value


def load_experiment(path: str, overrides: list[str] | None = None) -> ACGKDExperiment:
    """Read an ACGKD YAML (+ ``key.sub=value`` overrides, omegaconf syntax) into dataclasses."""
    from omegaconf import OmegaConf

    try:
        conf = OmegaConf.load(path)
    except FileNotFoundError as exc:
        raise DataPathError(f"config: file not found: {path}") from exc
    if overrides:
        conf = OmegaConf.merge(conf, OmegaConf.from_dotlist(list(overrides)))
    return build(ACGKDExperiment, OmegaConf.to_container(conf, resolve=True), "")


def run_experiment(exp: ACGKDExperiment) -> dict[str, float]:
    """Teacher(s) on real training graphs, then data-free ACGKD; test accuracies of every model."""
    graphs = load_graphs(exp.data)
    train, test = train_test_split(graphs, exp.data.test_fraction, exp.seed)
    in_dim, classes = graphs[0].x.shape[1], num_classes(graphs)
    fed = exp.federation
    shards = label_skew_split(train, fed.num_clients, fed.alpha, exp.seed) if fed.num_clients > 1 else [train]
    teachers = []
    for k, shard in enumerate(shards):
        t = GraphNet(GNNSpec(in_dim, classes, arch=exp.teacher.arch, hidden=exp.teacher.hidden,
                             layers=exp.teacher.layers))
        train_supervised(t, shard, exp.teacher.epochs, lr=exp.teacher.lr, seed=exp.seed + k)
        teachers.append(t)
    out = {f"teacher{k}_acc": accuracy(t, test) for k, t in enumerate(teachers)}
    if len(teachers) > 1 and fed.mode == "server_ensemble":
        student, metrics = distill_ensemble(teachers, exp.trainer, exp.seed)
        out["student_acc"] = accuracy(student, test)
    else:
        for k, t in enumerate(teachers):
            student, metrics = acgkd_distill(t, exp.trainer, exp.seed + k)
            out[f"student{k}_acc"] = accuracy(student, test)
    return {**out, **{k: v for k, v in metrics.items() if isinstance(v, float)}}
