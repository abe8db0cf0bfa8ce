"""An in-process federation: the real client actions and client state, without Flower's engine or Ray.

Writing or debugging a strategy against a full simulation costs ~30 s of start-up per try and hides
tracebacks in Ray actors. :class:`InProcessContext` is a :class:`fedsim.server.ServerContext` whose
``send`` calls each client's registered action in this process through the same dispatch the ClientApp
uses (:func:`fedsim.client.run_action`), with the request config passed through Flower's
``ConfigRecord`` so values arrive with the types they have on the wire. Client state lives in the run dir
exactly as in a simulation, so a strategy that works here works on Ray. It also keeps a log of every
message for assertions and can make chosen clients fail::

    ctx = InProcessContext.open(fedsim.load_config("configs/rahfl/digits.yaml"), Path("runs/debug"))
    strategy = STRATEGIES.get("rahfl")(ctx.cfg.strategy_config(), ctx)
    strategy.setup(); strategy.round(1)
    ctx.sent("train.collab")  # every train.collab request and its reply
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from flwr.app import ArrayRecord, ConfigRecord

from fedsim.config import ExperimentConfig
from fedsim.server import ClientReply, ServerContext


class Sent(NamedTuple):
    """One request as the client saw it, and its reply (None when the client failed)."""

    action: str
    pid: int
    conf: dict[str, Any]
    arrays: dict[str, ArrayRecord]
    reply: ClientReply | None


@dataclass
class InProcessContext(ServerContext):
    #: every request, in order
    log: list[Sent] = field(default_factory=list)
    #: partition ids whose replies fail (counted in ``failures`` and missing from the replies, as on Ray)
    fail: set[int] = field(default_factory=set)

    @classmethod
    def open(cls, cfg: ExperimentConfig, run_dir: Path, recorder: Any = None) -> InProcessContext:
        """A context over ``cfg.num_clients`` in-process clients, connected (``query.hello`` answered)."""
        ctx = cls(grid=None, cfg=cfg, run_dir=Path(run_dir), recorder=recorder)
        ctx.connect()
        ctx.log.clear()  # the log holds the strategy's traffic, not the hand-shake
        return ctx

    def connect(self, deadline_s: float = 0.0) -> None:
        self.node_of = {pid: pid for pid in range(self.cfg.num_clients)}
        for pid, reply in self.broadcast("query.hello", 0, self.pids).items():
            self.info[pid] = {**reply.metrics, **reply.config}

    def send(self, action: str, round_idx: int, requests: dict[int, tuple[dict[str, Any], dict[str, ArrayRecord]]]
             ) -> dict[int, ClientReply]:
        from fedsim.client import run_action

        replies: dict[int, ClientReply] = {}
        for pid, (conf, arrays) in requests.items():
            wire = dict(ConfigRecord({**self.base_config(round_idx), **conf}))
            wire.pop("fedsim-config")  # the client would parse it back into this very config
            reply = None
            if pid in self.fail:
                self.failures += 1
            else:
                out = run_action(action, self.cfg, pid, wire, dict(arrays))
                reply = ClientReply(pid, {**out.metrics, "partition-id": pid}, out.config, out.arrays)
                replies[pid] = reply
            self.log.append(Sent(action, pid, wire, dict(arrays), reply))
        return replies

    def sent(self, action: str | None = None) -> list[Sent]:
        """The logged requests of ``action`` (all when None)."""
        return [m for m in self.log if action is None or m.action == action]


__all__ = ["InProcessContext", "Sent"]
