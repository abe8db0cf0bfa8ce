"""Config dataclasses of the graph KD code (ACGKD, arXiv 2504.00540) and the ``configs/acgkd`` runner.

This module is deliberately light (no torch_geometric, no networkx at import: PyG alone costs ~15 s
to import on the shared machine) because ``strategies/acgkd.py`` is imported by every fedsim run and
declares its ``strategy:`` schema from these dataclasses.

- :class:`GraphDataConfig`, :class:`TeacherConfig`, :class:`ACGKDConfig`: data, teacher and method
  knobs. Each validates itself and names the bad key with its ``key_prefix`` (``trainer.xi`` in the
  plain YAML, ``strategy.distill.xi`` inside a Flower run's strategy section).
- :class:`ACGKDExperiment` + :func:`load_experiment` + :func:`run_experiment`: the plain, in-process
  runner of ``configs/acgkd/synthetic.yaml`` / ``mutag.yaml`` (no Flower). The Flower path is the
  ``acgkd`` strategy (``configs/acgkd/federated.yaml`` with ``fedsim run``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from fedsim.errors import ConfigError, DataPathError
from fedsim.trainers.base import TrainerConfig

ARCHS = ("gin", "gcn")
EDGE_MODELS = ("concrete", "bernoulli")
FAMILIES = ("motif", "community")
MODES = ("server_ensemble", "client_compress")
#: pseudo-graph node features: free softmax logits, or derived from the structure like the data's
NODE_FEATURES = ("learned", "degree", "constant")


def check_all(prefix: str, obj: Any, checks: dict[str, bool]) -> None:
    """Raise a ConfigError naming ``prefix.key`` for the first failed check."""
    for key, ok in checks.items():
        if not ok:
            raise ConfigError(f"{prefix}.{key}: invalid value {getattr(obj, key)!r}")


@dataclass
class GraphDataConfig:
    """Which graphs to build or load; ``source: tu`` reads ``root/name`` (no download)."""

    key_prefix: ClassVar[str] = "data"

    source: str = "synthetic"  # synthetic | tu
    family: str = "motif"  # motif | community (synthetic only)
    num_graphs: int = 900
    min_nodes: int = 20
    max_nodes: int = 40
    ba_edges: int = 1  # m of the Barabasi-Albert backbone
    noise_edges: float = 0.05  # extra random edges, as a fraction of the node count
    feature: str = "degree"  # degree | constant
    max_degree: int = 10
    root: str = ""  # TU only: folder holding NAME/raw/NAME_A.txt ...
    name: str = ""  # TU only: dataset name, e.g. MUTAG
    test_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        p = self.key_prefix
        if self.source not in ("synthetic", "tu"):
            raise ConfigError(f"{p}.source: unknown {self.source!r}; choose synthetic or tu")
        if self.family not in FAMILIES:
            raise ConfigError(f"{p}.family: unknown {self.family!r}; choose one of {list(FAMILIES)}")
        if self.feature not in ("degree", "constant"):
            raise ConfigError(f"{p}.feature: unknown {self.feature!r}; choose degree or constant")
        if not 4 <= self.min_nodes <= self.max_nodes:
            raise ConfigError(f"{p}.min_nodes/max_nodes: need 4 <= min <= max, got "
                              f"{self.min_nodes}, {self.max_nodes}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"{p}.test_fraction: must be in (0, 1), got {self.test_fraction}")
        check_all(p, self, {"num_graphs": self.num_graphs >= 3, "max_degree": self.max_degree >= 1})

    @property
    def in_dim(self) -> int:
        return self.max_degree + 1 if self.feature == "degree" else 1


@dataclass
class TeacherConfig:
    """The GNN each client (or the single owner) trains on real graphs: GIN-5-64 by default."""

    key_prefix: ClassVar[str] = "teacher"

    arch: str = "gin"
    hidden: int = 64
    layers: int = 5
    epochs: int = 20
    lr: float = 1e-2
    batch_size: int = 32

    def __post_init__(self) -> None:
        check_all(self.key_prefix, self, {"arch": self.arch in ARCHS, "hidden": self.hidden >= 1,
                                          "layers": self.layers >= 1, "epochs": self.epochs >= 0,
                                          "lr": self.lr > 0, "batch_size": self.batch_size >= 1})


@dataclass
class ACGKDConfig(TrainerConfig):
    """Every ACGKD knob (spec §3 defaults); the baselines are presets of this (see baselines.py)."""

    key_prefix: ClassVar[str] = "trainer"

    name: str = "acgkd"
    lr: float = 5e-3  # student (and theta_tau) Adam learning rate
    batch_size: int = 64
    # -- pseudo-graph bank -------------------------------------------------------------------
    graphs_per_class: int = 32
    min_nodes: int = 20
    max_nodes: int = 40
    xi: int = 4  # rank of the edge logits; 0 = full-rank n x n logits
    #: never materialise n x n: blockwise S @ X with recomputation (fedsim.graph.implicit; xi > 0, GIN)
    implicit_edges: bool = False
    edge_model: str = "concrete"  # concrete (ACGKD) | bernoulli (GFKD: score-function gradients)
    #: learned (softmax logits) | degree (one-hot of the pseudo-graph's own degrees, like the data's
    #: ``feature: degree``; relaxed degrees interpolate between bins) | constant (all ones)
    node_features: str = "learned"
    init_density: float = 0.05  # chosen on validation (fedsim.graph.acgkd docstring)
    #: straight-through Binary Concrete: the teacher sees the hard 0/1 sample, gradients flow through
    #: the relaxation (our choice; dense edges only)
    straight_through: bool = True
    gen_steps: int = 150
    gen_lr: float = 0.1
    lambda_start: float = 1.0
    lambda_end: float = 0.1
    beta_ce: float = 1.0
    rho_sparsity: float = 1e-3
    bn_normalize: bool = True  # BN matching in units of the running std (see BNStatLoss)
    alpha_bn: float = 0.01  # weight of the BN-statistics term (spec: 1; chosen on validation, see acgkd.py)
    reinforce_baseline_momentum: float = 0.9  # GFKD only: moving-average reward baseline
    # -- student -----------------------------------------------------------------------------
    student_arch: str = "gin"
    student_layers: int = 3
    student_hidden: int = 64
    reuse_classifier: bool = True
    feat_weight: float = 1.0
    kd_epochs: int = 100
    # -- adversarial temperature and curriculum ----------------------------------------------
    adversarial_temp: bool = True
    tau_init: float = 4.0
    lambda_rev_max: float = 1.0
    curriculum: bool = True
    curriculum_start: float = 0.3
    # -- client-side use (ACGKDTrainer) -------------------------------------------------------
    teacher_lr: float = 1e-2
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        checks = {
            "edge_model": self.edge_model in EDGE_MODELS,
            "node_features": self.node_features in NODE_FEATURES,
            "student_arch": self.student_arch in ARCHS,
            "xi": self.xi >= 0,
            "implicit_edges": not self.implicit_edges or (self.xi > 0 and self.edge_model == "concrete"),
            "graphs_per_class": self.graphs_per_class >= 1,
            "min_nodes": 2 <= self.min_nodes <= self.max_nodes,
            "init_density": 0.0 < self.init_density < 1.0,
            "lambda_end": 0.0 < self.lambda_end <= self.lambda_start,
            "tau_init": 1.0 < self.tau_init < 21.0,
            "curriculum_start": 0.0 < self.curriculum_start <= 1.0,
            "gen_steps": self.gen_steps >= 1,
            "kd_epochs": self.kd_epochs >= 1,
        }
        check_all(self.key_prefix, self, checks)
        if self.implicit_edges and self.straight_through:
            raise ConfigError(f"{self.key_prefix}.straight_through: needs dense edges; set it false "
                              "with implicit_edges (the implicit adjacency is relaxed only)")


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
    from fedsim.graph.acgkd import acgkd_distill
    from fedsim.graph.data import label_skew_split, load_graphs, num_classes, train_test_split
    from fedsim.graph.federated import distill_ensemble
    from fedsim.graph.gnn import GNNSpec, GraphNet, accuracy, train_supervised

    graphs = load_graphs(exp.data)
    train, test = train_test_split(graphs, exp.data.test_fraction, exp.seed)
    in_dim, classes = graphs[0].x.shape[1], num_classes(graphs)
    fed = exp.federation
    shards = label_skew_split(train, fed.num_clients, fed.alpha, exp.seed) if fed.num_clients > 1 else [train]
    teachers = []
    for k, shard in enumerate(shards):
        t = GraphNet(GNNSpec(in_dim, classes, arch=exp.teacher.arch, hidden=exp.teacher.hidden,
                             layers=exp.teacher.layers))
        train_supervised(t, shard, exp.teacher.epochs, lr=exp.teacher.lr,
                         batch_size=exp.teacher.batch_size, seed=exp.seed + k)
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
