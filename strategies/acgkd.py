"""``acgkd``: server-side data-free distillation of the clients' GNN teachers (ACGKD, arXiv 2504.00540).

Spec ``acgkd.md`` §6 (all our choice): each round every sampled client trains its GNN teacher on its
own label-skewed graph shard and uploads it (``train.gnn_teacher``, :mod:`fedsim.graph.flower`); with
``mode: client_compress`` it first distils the teacher into a compact student with ACGKD on the node
and uploads that instead. The server keeps the newest upload of every client, treats them as one
ensemble teacher (mean logits, concatenated features, every member's BN statistics;
:class:`fedsim.graph.federated.EnsembleTeacher`) and distils it with ACGKD into one global student.
The pseudo-graphs are generated on the server against the uploaded weights: no graph, real or
pseudo, and no client data statistic other than those inside the weights ever travels.

Evaluation runs on the server on the held-out test graphs (the run's graph split; clients never see
them during training): per client ``upload_acc`` (and ``teacher_acc``: the same model with
``server_ensemble``, the client's own report of its kept teacher with ``client_compress``); for the
federation ``ensemble_acc`` and ``student_acc``. Distillation metrics (generation time, bank
agreement, KD loss) are the round's training metrics. Hooks: :meth:`client_config`,
:meth:`receive`, :meth:`distill`, :meth:`score`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from fedsim.config import choice, ranged
from fedsim.graph.config import ACGKDConfig, GraphDataConfig, TeacherConfig
from fedsim.graph.flower import ACTION, graph_split, unpack_model
from fedsim.registry import STRATEGIES
from fedsim.server import ClientReply
from strategies.base import FedsimStrategy, StrategyConfig


@dataclass
class ACGKDDataSection(GraphDataConfig):
    key_prefix: ClassVar[str] = "strategy.data"

    num_graphs: int = 600
    test_fraction: float = 0.25


@dataclass
class ACGKDTeacherSection(TeacherConfig):
    key_prefix: ClassVar[str] = "strategy.teacher"


@dataclass
class ACGKDDistillSection(ACGKDConfig):
    key_prefix: ClassVar[str] = "strategy.distill"


@dataclass
class ACGKDStrategyConfig(StrategyConfig):
    """``strategy:`` of an ACGKD run: the graph data, the clients' teachers, the distillation."""

    name: str = "acgkd"
    #: server_ensemble: clients upload teachers; client_compress: clients upload ACGKD students
    mode: str = choice("server_ensemble", "client_compress")
    #: Dirichlet concentration of the label skew across clients (smaller = more skewed)
    alpha: float = ranged(0.5, 1e-3, None)
    data: ACGKDDataSection = field(default_factory=ACGKDDataSection)
    teacher: ACGKDTeacherSection = field(default_factory=ACGKDTeacherSection)
    distill: ACGKDDistillSection = field(default_factory=ACGKDDistillSection)


@STRATEGIES.register("acgkd")
class ACGKDStrategy(FedsimStrategy):
    """Clients train GNN teachers on private graphs; the server distils their ensemble data-free."""

    name = "acgkd"
    image_clients = False
    Config = ACGKDStrategyConfig

    def setup(self) -> None:
        # builds (and caches on disk) the graph data before any client asks for its shard
        self.split = graph_split(self.cfg)
        if not hasattr(self, "uploads"):
            self.uploads: dict[int, Any] = {}  # partition id -> newest uploaded model
            self.student: Any = None
        self.client_metrics: dict[int, dict[str, float]] = {}

    # -- hooks ------------------------------------------------------------------------------------
    def client_config(self, r: int) -> dict[str, Any]:
        """Extra ConfigRecord entries for ``train.gnn_teacher`` (none: the config travels anyway)."""
        return {}

    def receive(self, reply: ClientReply) -> Any:
        """The model a client uploaded."""
        return unpack_model(reply.config, reply.arrays)

    def distill(self, r: int, teachers: list[Any]) -> tuple[Any, dict[str, float]]:
        """ACGKD of the uploaded models' ensemble into one global student (no data on the server)."""
        from fedsim.graph.federated import distill_ensemble

        return distill_ensemble([self.copy(t) for t in teachers], self.scfg.distill, seed=self.cfg.seed * 1000 + r)

    def score(self, model: Any) -> float:
        """Accuracy on the held-out test graphs."""
        from fedsim.graph.gnn import accuracy

        return accuracy(model, self.split.test)

    # -- round ------------------------------------------------------------------------------------
    def round(self, r: int) -> dict[str, float]:
        replies = self.ctx.broadcast(ACTION, r, self.ctx.sample(r), self.client_config(r))
        self.client_metrics = {pid: rep.metrics for pid, rep in replies.items()}
        self.uploads.update({pid: self.receive(rep) for pid, rep in sorted(replies.items())})
        if not self.uploads:
            raise RuntimeError(f"round {r}: no client uploaded a model")
        self.student, metrics = self.distill(r, [self.uploads[pid] for pid in sorted(self.uploads)])
        return {k: float(v) for k, v in metrics.items()}

    def evaluate(self, r: int) -> dict[int, dict[str, float]]:
        """Per client: its upload scored on the server's test graphs, plus what it reported."""
        out = {}
        for pid, model in sorted(self.uploads.items()):
            reported = {k: v for k, v in self.client_metrics.get(pid, {}).items() if k != "partition-id"}
            acc = self.score(model)
            teacher_acc = reported.pop("teacher_acc", acc) if self.scfg.mode == "client_compress" else acc
            out[pid] = {**reported, "upload_acc": acc, "teacher_acc": teacher_acc}
        return out

    def evaluate_global(self, r: int) -> dict[str, float]:
        from fedsim.graph.federated import EnsembleTeacher

        ensemble = EnsembleTeacher([self.copy(self.uploads[pid]) for pid in sorted(self.uploads)])
        return {"ensemble_acc": self.score(ensemble), "student_acc": self.score(self.student),
                "student_params": float(sum(p.numel() for p in self.student.parameters())),
                "ensemble_members": float(len(self.uploads))}

    @staticmethod
    def copy(model: Any) -> Any:
        """A fresh copy: distillation freezes its teachers, the uploads stay untouched."""
        from fedsim.graph.federated import export_model, import_model

        return import_model(*export_model(model))

    # -- resume -------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Every client's newest upload and the global student, as (arch spec, state_dict) pairs."""
        from fedsim.graph.federated import export_model

        return {"uploads": {pid: export_model(m) for pid, m in self.uploads.items()},
                "student": export_model(self.student) if self.student is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from fedsim.graph.federated import import_model

        self.uploads = {int(pid): import_model(*packed) for pid, packed in state.get("uploads", {}).items()}
        self.student = import_model(*state["student"]) if state.get("student") else None
