"""Federated MAS over Flower (EPEAgent, arXiv 2503.08175): agent nodes, Flower transport, ``mas`` strategy.

Each Flower ClientApp node is one agent: partition id p hosts the p-th role of the DAG (spec section 4:
6 nodes for both domains, 3 for one). The node rebuilds its agent from the experiment config it receives
(seeded profiles -> its own FAISS store; the LLM loads once per Ray worker) and answers
``query.generate`` with the batch of task items of one DAG stage. :class:`FlowerTransport` implements the
protocol engine's :class:`agents.protocol.Transport` with fedsim's :class:`ServerContext`: all requests of a
stage go out in one ``send_and_receive``, payloads travel as JSON strings in a ``ConfigRecord``, and a
failed or missing reply becomes an exception the engine logs (the downstream agent gets nothing).

:class:`MASStrategy` (registered as ``mas``) runs the whole task set in round 1 (``rounds: 1``), then
logs overall metrics (client = null) and per-agent metrics (client = partition id) in ``metrics.jsonl``
and writes every protocol message to ``mas_messages.jsonl`` and failures to ``mas_failures.json``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agents.config import MASConfig
from fedsim.client import Reply, action
from fedsim.errors import ConfigError
from fedsim.registry import STRATEGIES
from fedsim.results import atomic_write_text
from strategies.base import FedsimStrategy, StrategyConfig

ACTION = "query.generate"


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


def mas_config_of(experiment_cfg: Any) -> MASConfig:
    scfg = experiment_cfg.strategy_config()
    if not isinstance(scfg, MASStrategyConfig):
        raise ConfigError("strategy.name: query.generate needs the mas strategy")
    return scfg.mas()


_AGENTS: dict[tuple[str, int], Any] = {}


def agent_for(mas: MASConfig, pid: int) -> Any:
    """This node's agent (built once per process per config and partition id)."""
    from agents.mas import build_agent, make_dag

    key = (json.dumps(dataclasses.asdict(mas), sort_keys=True, default=str), pid)
    if key not in _AGENTS:
        roles = list(make_dag(mas).roles)
        if pid >= len(roles):
            raise ConfigError(f"num_clients: partition {pid} has no role; the DAG has {len(roles)} roles")
        _AGENTS[key] = build_agent(mas, roles[pid])
    return _AGENTS[key]


@action(ACTION)
def generate(rt: Any, conf: dict[str, Any], arrays: dict[str, Any]) -> Reply:
    """Client side: run this node's agent on one stage batch (``mas-payload`` JSON -> ``mas-reply`` JSON)."""
    agent = agent_for(mas_config_of(rt.cfg), rt.pid)
    reply = agent.handle(conf.get("mas-action", "generate"), json.loads(conf["mas-payload"]))
    return Reply(metrics={"items": float(len(reply["items"]))}, config={"mas-reply": json.dumps(reply)})


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

    def call_many(
        self, requests: Sequence[tuple[str, str, dict[str, Any]]]
    ) -> list[dict[str, Any] | Exception]:
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
            self.ctx.recorder.log(
                r, pid_of_agent[int(agent_id)], {"agent_id": int(agent_id), **_numbers(metrics)}
            )
        lines = "".join(json.dumps(m) + "\n" for m in run.messages)
        atomic_write_text(self.ctx.run_dir / "mas_messages.jsonl", lines)
        atomic_write_text(self.ctx.run_dir / "mas_failures.json", json.dumps(run.failures, indent=1))
        return {}

    def evaluate(self, r: int) -> dict[int, dict[str, float]]:
        """Per-agent metrics are logged by :meth:`round` (averaging them would overwrite the overall ones)."""
        return {}
