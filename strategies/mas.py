"""The Federated MAS protocol as a Flower strategy (EPEAgent, arXiv 2503.08175), registered as ``mas``.

The server walks the role DAG (:class:`agents.protocol.MASProtocol`) over the agent nodes: every stage's
items go to the agents as one batched ``query.generate`` exchange (:class:`FlowerTransport`), outputs are
routed along the edges, every message is recorded, and a failed agent is logged while the protocol goes on
without it. The whole task set runs in round 1 (``rounds: 1``); overall metrics (client = null) and
per-agent metrics (client = partition id) go to ``metrics.jsonl``, every protocol message to
``mas_messages.jsonl`` and failures to ``mas_failures.json``. The agent-node side is :mod:`agents.flower`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agents.config import MASConfig
from agents.flower import ACTION
from fedsim.errors import ConfigError
from fedsim.registry import STRATEGIES
from fedsim.results import atomic_write_text
from strategies.base import FedsimStrategy, StrategyConfig


@dataclass
class MASStrategyConfig(MASConfig, StrategyConfig):
    """The ``strategy:`` section of a MAS experiment: ``name: mas`` plus every :class:`MASConfig` knob."""

    name: str = "mas"

    def mas(self) -> MASConfig:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(MASConfig)}
        cfg = MASConfig(**data)
        cfg.questions = tuple(cfg.questions)
        cfg.validate("strategy")
        return cfg


class FlowerTransport:
    """:class:`agents.protocol.Transport` over fedsim's ServerContext (one Flower exchange per stage)."""

    def __init__(self, ctx: Any, round_idx: int, pid_of_role: dict[str, int]):
        self.ctx = ctx
        self.round_idx = round_idx
        self.pid_of_role = pid_of_role

    def call(self, role: str, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        out = self.call_many([(role, action, payload)])[0]
        if isinstance(out, Exception):
            raise out
        return out

    def call_many(self, requests: Sequence[tuple[str, str, dict[str, Any]]]) -> list[dict[str, Any] | Exception]:
        sends = {
            self.pid_of_role[role]: ({"mas-action": act, "mas-payload": json.dumps(payload)}, {})
            for role, act, payload in requests
        }
        replies = self.ctx.send(ACTION, self.round_idx, sends)
        out: list[dict[str, Any] | Exception] = []
        for role, _, _ in requests:
            rep = replies.get(self.pid_of_role[role])
            if rep is None or "mas-reply" not in rep.config:
                out.append(RuntimeError(f"no reply from agent {role} (partition {self.pid_of_role[role]})"))
            else:
                out.append(json.loads(rep.config["mas-reply"]))
        return out


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and v is not None}


@STRATEGIES.register("mas")
class MASStrategy(FedsimStrategy):
    """Federated MAS with EPEAgent: walks the role DAG over the agent nodes; metrics of spec section 6."""

    name = "mas"
    image_clients = False
    Config = MASStrategyConfig

    def setup(self) -> None:
        from agents.mas import make_dag, make_tasks
        from agents.profiles import generate_profiles

        self.mas = self.scfg.mas()
        self.dag = make_dag(self.mas)
        if len(self.ctx.pids) < len(self.dag.roles):
            raise ConfigError(f"num_clients: the role DAG needs {len(self.dag.roles)} agent nodes")
        self.pid_of_role = {role: i for i, role in enumerate(self.dag.roles)}
        self.profiles = generate_profiles(self.mas.domain, self.mas.num_users, self.mas.seed)
        self.tasks = make_tasks(self.mas, self.profiles, self.dag)

    def round(self, r: int) -> dict[str, float]:
        from agents.epe import PrivacyPolicy
        from agents.metrics import evaluate
        from agents.protocol import MASProtocol

        transport = FlowerTransport(self.ctx, r, self.pid_of_role)
        run = MASProtocol(self.dag, transport, self.mas.batch_size).run(self.tasks)
        policy = PrivacyPolicy.for_domain(self.mas.domain, self.mas.policy_overrides)
        result = evaluate(run, self.tasks, self.profiles, policy, self.dag.answer)
        pid_of_agent = {aid: self.pid_of_role[role] for role, aid in self.dag.roles.items()}
        self.ctx.recorder.log(r, None, _numbers(result["final"]))
        for agent_id, metrics in result["per_agent"].items():
            self.ctx.recorder.log(r, pid_of_agent[int(agent_id)], {"agent_id": int(agent_id), **_numbers(metrics)})
        lines = "".join(json.dumps(m) + "\n" for m in run.messages)
        atomic_write_text(self.ctx.run_dir / "mas_messages.jsonl", lines)
        atomic_write_text(self.ctx.run_dir / "mas_failures.json", json.dumps(run.failures, indent=1))
        return {}

    def evaluate(self, r: int) -> dict[int, dict[str, float]]:
        """Per-agent metrics are logged by :meth:`round` (averaging them would overwrite the overall ones)."""
        return {}
