"""``local``: no collaboration. Each client trains alone on its private data every round.

The "Baseline" row of RAHFL's tables and the lower bound any collaborative method must beat.
"""

from __future__ import annotations

from fedsim.registry import STRATEGIES
from strategies.base import FedsimStrategy, StrategyConfig, mean_of


@STRATEGIES.register("local")
class Local(FedsimStrategy):
    """Clients train alone (no messages between them)."""

    name = "local"
    Config = StrategyConfig

    def round(self, r: int) -> dict[str, float]:
        replies = self.ctx.broadcast("train", r, self.ctx.sample(r))
        return {"train_loss": mean_of(replies, "train_loss")}
