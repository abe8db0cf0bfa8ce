"""Assemble a Federated MAS with EPEAgent from a :class:`MASConfig` (arXiv 2503.08175).

``build_agent`` is what one agent node (a Flower ClientApp) calls for its role: every node regenerates
the same seeded profiles and builds its own knowledge store, so no user data travels. ``MASSystem``
wires all agents in one process with :class:`InProcessTransport` (tests, benchmark); a Flower strategy
reuses :class:`MASProtocol` with a Flower transport instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agents.agent import Agent
from agents.config import MASConfig
from agents.embeddings import make_embeddings
from agents.epe import PrivacyPolicy
from agents.llm import make_chat_model
from agents.metrics import evaluate
from agents.profiles import Task, UserProfile, generate_profiles, privacy_tasks, roles, utility_tasks
from agents.protocol import InProcessTransport, MASProtocol, ProtocolRun, RoleDAG, Transport
from agents.store import KnowledgeStore
from fedsim.errors import ConfigError


def make_dag(cfg: MASConfig) -> RoleDAG:
    return RoleDAG.from_dict(cfg.dag) if cfg.dag else RoleDAG.for_domain(cfg.domain)


def make_tasks(cfg: MASConfig, profiles: list[UserProfile], dag: RoleDAG) -> list[Task]:
    tasks: list[Task] = []
    if "utility" in cfg.questions:
        tasks += utility_tasks(profiles, cfg.seed)
    if "privacy" in cfg.questions:
        tasks += privacy_tasks(profiles, dag.roles[dag.answer])
    return tasks[: cfg.max_tasks] if cfg.max_tasks else tasks


def build_agent(cfg: MASConfig, role: str, store: KnowledgeStore | None = None, llm: Any = None) -> Agent:
    """The agent for ``role`` (a role name of the domain), with its own store unless one is given."""
    specs = {r.name: r for r in roles(cfg.domain)}
    if role not in specs:
        raise ConfigError(f"mas.dag.roles: no role {role!r} in domain {cfg.domain}; choose from {sorted(specs)}")
    if store is None:
        store = KnowledgeStore.from_profiles(
            generate_profiles(cfg.domain, cfg.num_users, cfg.seed), make_embeddings(cfg.embedder)
        )
    policy = PrivacyPolicy.for_domain(cfg.domain, cfg.policy_overrides)
    return Agent(specs[role], llm or make_chat_model(cfg.llm), store, policy, cfg.epe, cfg.runtime)


@dataclass
class MASSystem:
    """Profiles, tasks, DAG and the agents of one configured run."""

    cfg: MASConfig
    profiles: list[UserProfile]
    dag: RoleDAG
    agents: dict[str, Agent]
    tasks: list[Task] = field(default_factory=list)

    @classmethod
    def build(cls, cfg: MASConfig, store: KnowledgeStore | None = None, llm: Any = None) -> MASSystem:
        """All agents in one process, sharing one store and one chat model (same content as per-node)."""
        profiles = generate_profiles(cfg.domain, cfg.num_users, cfg.seed)
        dag = make_dag(cfg)
        store = store or KnowledgeStore.from_profiles(profiles, make_embeddings(cfg.embedder))
        llm = llm or make_chat_model(cfg.llm)
        agents = {r: build_agent(cfg, r, store, llm) for r in dag.roles}
        return cls(cfg, profiles, dag, agents, make_tasks(cfg, profiles, dag))

    @property
    def policy(self) -> PrivacyPolicy:
        return PrivacyPolicy.for_domain(self.cfg.domain, self.cfg.policy_overrides)

    def run(self, tasks: list[Task] | None = None, transport: Transport | None = None) -> ProtocolRun:
        transport = transport or InProcessTransport(self.agents)
        return MASProtocol(self.dag, transport, self.cfg.batch_size).run(tasks or self.tasks)

    def evaluate(self, run: ProtocolRun, tasks: list[Task] | None = None) -> dict[str, Any]:
        return evaluate(run, tasks or self.tasks, self.profiles, self.policy, self.dag.answer)
