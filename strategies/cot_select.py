"""``cot_select``: FedAvg of a shared reasoning decoder whose clients select their training traces by
CoT-Kinetics energy (arXiv 2505.13408) or another score.

Each round the server sends the global decoder to the sampled clients (action ``train.cot``,
:mod:`fedsim.cot.flower`); each scores its own traces, keeps or weights them by the oriented score,
trains locally and returns its weights and selection statistics. The server averages the weights by
the number of traces each client kept (FedAvg), records every client's statistics, and measures the
global model's greedy answer accuracy on held-out problems (``heldout_accuracy``) in
``metrics.jsonl``. The score's orientation is fitted once, before round 1, on a labelled validation
split with the initial model (or taken from ``scorer.orientation``), and then sent to every client.

Compare selections by override, e.g. ``strategy.selection.score=none|random|oracle|cot_kinetics|nll``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from flwr.app import ArrayRecord

from fedsim.cot.config import CoTConfig
from fedsim.cot.flower import ACTION, fit_orientation_on_validation, heldout_accuracy, initial_state, weighted_average
from fedsim.registry import STRATEGIES
from fedsim.server import ClientReply
from strategies.base import FedsimStrategy, StrategyConfig

#: client statistics summed over clients into the round's federation-level row
SUMMED = ("n_local", "n_flawed", "n_kept", "flawed_removed", "clean_removed")


@dataclass
class CoTSelectConfig(CoTConfig, StrategyConfig):
    """The ``strategy:`` section: ``name: cot_select`` plus every :class:`CoTConfig` knob."""

    name: str = "cot_select"
    KEY_PREFIX: ClassVar[str] = "strategy"

    def cot(self) -> CoTConfig:
        return CoTConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(CoTConfig)})


@STRATEGIES.register("cot_select")
class CoTSelect(FedsimStrategy):
    """FedAvg of a reasoning decoder; clients keep/weight their traces by a soundness score."""

    name = "cot_select"
    image_clients = False
    Config = CoTSelectConfig

    def setup(self) -> None:
        self.cot = self.scfg.cot()
        if hasattr(self, "state"):  # resumed: weights and orientation come from the checkpoint
            return
        self.state = initial_state(self.cot)
        self.orientation = self.cot.scorer.orientation
        row: dict[str, float] = heldout_accuracy(self.cot, self.state)
        if self.orientation is None and self.needs_orientation():
            self.orientation, row["orientation_val_auroc"] = fit_orientation_on_validation(self.cot, self.state)
        if self.orientation is not None:
            row["orientation"] = float(self.orientation)
        self.ctx.recorder.log(0, None, row)

    def needs_orientation(self) -> bool:
        return self.cot.selection.score not in ("none", "random", "oracle")

    # -- one round: hooks ---------------------------------------------------------------------------
    def client_config(self, r: int) -> dict[str, Any]:
        return {} if self.orientation is None else {"cot-orientation": int(self.orientation)}

    def aggregate(self, replies: dict[int, ClientReply]) -> None:
        ordered = [replies[pid] for pid in sorted(replies)]  # fixed order: a resumed run sums identically
        if ordered:
            self.state = weighted_average([rep.tensors("weights") for rep in ordered],
                                          [rep.metrics["num-examples"] for rep in ordered])

    def round_metrics(self, replies: dict[int, ClientReply]) -> dict[str, float]:
        out = {k: float(sum(rep.metrics.get(k, 0.0) for rep in replies.values())) for k in SUMMED}
        out["flawed_removed_share"] = out["flawed_removed"] / max(out["n_flawed"], 1.0)
        out["kept_flawed_share"] = (out["n_flawed"] - out["flawed_removed"]) / max(out["n_kept"], 1.0)
        return out

    def round(self, r: int) -> dict[str, float]:
        replies = self.ctx.broadcast(ACTION, r, self.ctx.sample(r), self.client_config(r),
                                     {"global": ArrayRecord(self.state)})
        self.client_metrics = {pid: {k: v for k, v in rep.metrics.items() if k != "partition-id"}
                               for pid, rep in replies.items()}
        self.aggregate(replies)
        return self.round_metrics(replies)

    def evaluate(self, r: int) -> dict[int, dict[str, float]]:
        """Per client: its selection statistics and local loss from this round's ``train.cot``."""
        return getattr(self, "client_metrics", {})

    def evaluate_global(self, r: int) -> dict[str, float]:
        """The global decoder's greedy answer accuracy on held-out problems (server side, once)."""
        return heldout_accuracy(self.cot, self.state)

    # -- resume ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"state": self.state, "orientation": self.orientation}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state, self.orientation = state["state"], state["orientation"]

