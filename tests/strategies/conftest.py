"""An in-process stand-in for the Flower Grid, so strategy logic is tested without Ray.

``InProcessContext`` has the interface strategies use from :class:`fedsim.server.ServerContext`
(``send``, ``broadcast``, ``sample``, ``pids``, ``base_config``, ``info``) and serves every message by
calling the registered client action on the client's runtime, exactly as the ClientApp does, with the
same on-disk client state. It also records every message sent, for assertions.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import fedsim.actions  # noqa: F401  (registers the built-in actions)
from fedsim.client import ACTIONS, open_runtime
from fedsim.config import ExperimentConfig, load_config
from fedsim.server import ClientReply

TINY = Path(__file__).parent.parent / "configs" / "tiny.yaml"


class InProcessContext:
    def __init__(self, cfg: ExperimentConfig, run_dir: Path) -> None:
        self.cfg, self.run_dir, self.failures = cfg, run_dir, 0
        self.node_of = {pid: pid for pid in range(cfg.num_clients)}
        self.sent: list[tuple[str, int, int, dict, dict]] = []  # (action, round, pid, conf, arrays)
        self.fail: set[int] = set()  # partition ids whose next replies fail
        self.info = {}
        for pid in self.pids:
            rt = open_runtime(cfg, pid, str(run_dir), 0)
            self.info[pid] = {"num-classes": float(rt.data.train.num_classes), "arch": rt.model.arch}

    @property
    def pids(self) -> list[int]:
        return sorted(self.node_of)

    def sample(self, r: int) -> list[int]:
        return self.pids

    def base_config(self, r: int) -> dict:
        return {"run-dir": str(self.run_dir), "server-round": r}

    def send(self, action: str, r: int, requests: dict) -> dict[int, ClientReply]:
        out = {}
        for pid, (conf, arrays) in requests.items():
            self.sent.append((action, r, pid, dict(conf), dict(arrays)))
            if pid in self.fail:
                self.failures += 1
                continue
            rt = open_runtime(self.cfg, pid, str(self.run_dir), r)
            reply = ACTIONS[action](rt, {**self.base_config(r), **conf}, dict(arrays))
            if reply.mutated:
                rt.save()
            out[pid] = ClientReply(pid, {**reply.metrics, "partition-id": pid}, reply.config, reply.arrays)
        return out

    def broadcast(self, action: str, r: int, pids: list[int], conf=None, arrays=None):
        return self.send(action, r, {pid: (conf or {}, arrays or {}) for pid in pids})


def tiny_config(tmp_path: Path, *overrides: str) -> ExperimentConfig:
    base = ["data.public.source=synthetic", "data.public.size=64", "data.public.batch_size=32",
            "num_clients=3", "local_epochs=1", f"cache_dir={tmp_path / 'cache'}"]
    return load_config(TINY, [*base, *overrides])


@pytest.fixture
def make_context(tmp_path):
    """``make_context(*overrides)`` -> InProcessContext over the tiny config plus overrides."""

    def make(*overrides: str) -> InProcessContext:
        cfg = tiny_config(tmp_path, *overrides)
        run_dir = tmp_path / f"run{len(list(tmp_path.glob('run*')))}"
        return InProcessContext(cfg, run_dir)

    return make
