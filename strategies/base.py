"""The base every fedsim strategy builds on: one class, small hooks, like Flower's own strategies.

A strategy implements :meth:`FedsimStrategy.round` (one communication round, written in terms of client
actions sent through :class:`fedsim.server.ServerContext`) and may override :meth:`evaluate`,
:meth:`setup` and the server-state hooks used by ``--resume``. The round loop, metrics, checkpoints and
progress live in :func:`fedsim.server.run_rounds`, once for all strategies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from fedsim.server import ServerContext


@dataclass
class StrategyConfig:
    """Fields every strategy understands; a method's Config subclasses this."""

    name: str = "local"


class FedsimStrategy:
    name = "base"
    Config: ClassVar[type[StrategyConfig]] = StrategyConfig
    #: False when the clients are not image classifiers (LLM agents, MLLMs, GNNs, text LMs): the launcher
    #: then builds no image federation data and the config's ``data``/``model`` sections go unused
    image_clients: ClassVar[bool] = True

    def __init__(self, scfg: StrategyConfig, ctx: ServerContext) -> None:
        self.scfg = scfg
        self.ctx = ctx
        self.cfg = ctx.cfg

    def setup(self) -> None:
        """Called once after clients connected (and after :meth:`load_state_dict` on resume)."""

    def round(self, r: int) -> dict[str, float]:
        """One communication round; returns federation-level training metrics."""
        raise NotImplementedError

    def evaluate(self, r: int) -> dict[int, dict[str, float]]:
        """Per-client metrics on the clean and corrupted test sets (client-side models)."""
        replies = self.ctx.broadcast("evaluate", r, self.ctx.pids, self.evaluate_config(r), self.evaluate_arrays(r))
        return {pid: rep.metrics for pid, rep in replies.items()}

    def evaluate_global(self, r: int) -> dict[str, float]:
        """Federation-level metrics computed on the server (e.g. a global model); override the client means."""
        return {}

    def evaluate_config(self, r: int) -> dict[str, Any]:
        return {}

    def evaluate_arrays(self, r: int) -> dict[str, Any]:
        return {}

    # -- resume ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


def mean_of(replies, key: str) -> float:
    vals = [r.metrics[key] for r in replies.values() if key in r.metrics]
    return sum(vals) / len(vals) if vals else float("nan")
