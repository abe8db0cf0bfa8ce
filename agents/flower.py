"""Federated MAS over Flower (EPEAgent, arXiv 2503.08175): the agent-node side (``query.generate``).

Each Flower ClientApp node is one agent: partition id p hosts the p-th role of the DAG (spec section 4:
6 nodes for both domains, 3 for one). The node rebuilds its agent from the experiment config it receives
(seeded profiles -> its own FAISS store; the LLM loads once per Ray worker) and answers
``query.generate`` with the batch of task items of one DAG stage. :class:`strategies.mas.FlowerTransport` implements the
protocol engine's :class:`agents.protocol.Transport` with fedsim's :class:`ServerContext`: all requests of a
stage go out in one ``send_and_receive``, payloads travel as JSON strings in a ``ConfigRecord``, and a
failed or missing reply becomes an exception the engine logs (the downstream agent gets nothing).

The server side (the ``mas`` strategy and the Flower transport) is :mod:`strategies.mas`.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from agents.config import MASConfig
from fedsim.client import Reply, action
from fedsim.errors import ConfigError

ACTION = "query.generate"


def mas_config_of(experiment_cfg: Any) -> MASConfig:
    scfg = experiment_cfg.strategy_config()
    if not hasattr(scfg, "mas"):  # the mas strategy's Config (strategies.mas.MASStrategyConfig)
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


@action(ACTION, image_runtime=False)
def generate(rt: Any, conf: dict[str, Any], arrays: dict[str, Any]) -> Reply:
    """Client side: run this node's agent on one stage batch (``mas-payload`` JSON -> ``mas-reply`` JSON)."""
    agent = agent_for(mas_config_of(rt.cfg), rt.pid)
    reply = agent.handle(conf.get("mas-action", "generate"), json.loads(conf["mas-payload"]))
    return Reply(metrics={"items": float(len(reply["items"]))}, config={"mas-reply": json.dumps(reply)})
