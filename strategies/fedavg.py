"""``fedavg``: Flower's own FedAvg (McMahan et al. 2017) driven by fedsim's round loop.

Homogeneous models only: every client must have the same architecture. Flower's
``flwr.serverapp.strategy.FedAvg`` samples the clients (``configure_train``) and computes the
example-weighted average (``aggregate_train``); fedsim adds the run directory, server-side evaluation of
the global model on the clean and corrupted test sets, per-client training metrics, checkpoints and
``--resume``. Replies are sorted by partition id
before averaging and sampling is seeded from (seed, round), so a resumed run averages in the same order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord
from flwr.serverapp.strategy import FedAvg as FlowerFedAvg

from fedsim.client import evaluate_model
from fedsim.config import ranged
from fedsim.errors import ConfigError
from fedsim.federation import build_client_model, federation_data
from fedsim.registry import STRATEGIES
from strategies.base import FedsimStrategy, StrategyConfig


@dataclass
class FedAvgConfig(StrategyConfig):
    name: str = "fedavg"
    #: FedProx proximal weight mu (0 = plain FedAvg)
    prox_mu: float = ranged(0.0, 0.0, None)


@STRATEGIES.register("fedavg")
class FedAvg(FedsimStrategy):
    """Flower's FedAvg over a homogeneous model (optionally with FedProx's proximal term)."""

    name = "fedavg"
    Config = FedAvgConfig

    def setup(self) -> None:
        archs = {self.cfg.model.arch_for(pid) for pid in self.ctx.pids}
        if len(archs) > 1:
            raise ConfigError(f"model.archs: fedavg needs one architecture for all clients, got {sorted(archs)}")
        n = self.cfg.clients_per_round or self.cfg.num_clients
        self.flower = FlowerFedAvg(fraction_train=n / self.cfg.num_clients, fraction_evaluate=1.0,
                                   min_train_nodes=n, min_available_nodes=self.cfg.num_clients)
        if not hasattr(self, "arrays"):
            num_classes = federation_data(self.cfg).train.num_classes  # built by the launcher, cached
            self.arrays = ArrayRecord(build_client_model(self.cfg, 0, num_classes).state_dict())

    def round(self, r: int) -> dict[str, float]:
        conf = {**self.ctx.base_config(r), "return-weights": True}
        if self.scfg.prox_mu > 0:
            conf.update({"regularizer": "fedprox", "prox-mu": self.scfg.prox_mu})
        random.seed(self.cfg.seed * 7919 + r)  # Flower samples with the random module
        msgs = list(self.flower.configure_train(r, self.arrays, ConfigRecord(conf), self.ctx.grid))
        replies = list(self.ctx.grid.send_and_receive(msgs, timeout=self.cfg.round_timeout))
        ok = [m for m in replies if not m.has_error()]
        self.ctx.failures += len(replies) - len(ok) + len(msgs) - len(replies)
        ok.sort(key=lambda m: int(m.content["metrics"]["partition-id"]))
        self.client_metrics = {int(m.content["metrics"]["partition-id"]): {
            k: float(v) for k, v in m.content["metrics"].items() if k != "partition-id"} for m in ok}
        arrays, metrics = self.flower.aggregate_train(r, ok)
        if arrays is not None:
            self.arrays = arrays
        return {k: float(v) for k, v in (metrics or {}).items() if k not in ("partition-id", "num-examples")}

    def evaluate(self, r: int) -> dict[int, dict[str, float]]:
        """Per client: what it reported from local training this round."""
        return getattr(self, "client_metrics", {})

    def evaluate_global(self, r: int) -> dict[str, float]:
        """The global model on the clean and corrupted test sets, once, on the server (Flower's
        ``evaluate_fn`` pattern): every client holds the same test sets, so asking each of them would only
        repeat the same computation and add a round trip."""
        data = federation_data(self.cfg)
        model = build_client_model(self.cfg, 0, data.train.num_classes)
        model.load_state_dict(self.arrays.to_torch_state_dict())
        out = {}
        for name, split in (("clean", data.test_clean), ("corrupt", data.test_corrupt)):
            out[f"acc_{name}"], out[f"loss_{name}"] = evaluate_model(model, split)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"arrays": self.arrays.to_torch_state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.arrays = ArrayRecord(state["arrays"])
