"""Federated MAS protocol engine (EPEAgent, arXiv 2503.08175): walk a role DAG over a batch of tasks.

The paper's code hard-codes two 3-agent DAGs (two upstream agents feed one answering agent). This engine
takes any DAG (:meth:`RoleDAG.from_dict`), removes per task the roles listed in ``Task.absent_roles``
(dynamic topology; edges through a removed role are dropped), and walks it in topological *stages*:
all roles of a stage are called together, each once per batch with all of its items (one Flower
``query.generate`` message per agent per stage). Each reply is routed along the out-edges: recipient r
receives the sender's copy sanitised for r (``outbound[r]``). Every message -- server->agent query and
agent->agent hand-off -- is recorded with its UTF-8 size. A failed agent (exception, error reply, missing
item) is logged and the run goes on without it: its successors simply receive nothing from it (flower.md
section 9). The transport is pluggable (:class:`Transport`); :class:`InProcessTransport` calls agent
objects directly, a Flower transport sends the same JSON payloads in a ``ConfigRecord``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from agents.profiles import Task, roles
from fedsim.errors import ConfigError


@dataclass(frozen=True)
class RoleDAG:
    """Roles (name -> agent id), directed edges, and the role whose output answers the task."""

    roles: dict[str, int]
    edges: tuple[tuple[str, str], ...]
    answer: str

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "mas.dag") -> RoleDAG:
        """``{"roles": {name: agent_id}, "edges": [[src, dst], ...], "answer": name}``; validated, acyclic."""
        for key in ("roles", "edges", "answer"):
            if key not in data:
                raise ConfigError(f"{where}.{key}: missing")
        role_map = {str(k): int(v) for k, v in dict(data["roles"]).items()}
        edges = tuple((str(a), str(b)) for a, b in data["edges"])
        for a, b in edges:
            for r in (a, b):
                if r not in role_map:
                    raise ConfigError(f"{where}.edges: unknown role {r!r}; roles are {sorted(role_map)}")
        if data["answer"] not in role_map:
            raise ConfigError(f"{where}.answer: unknown role {data['answer']!r}")
        dag = cls(role_map, edges, str(data["answer"]))
        dag.stages()  # raises on a cycle
        return dag

    @classmethod
    def for_domain(cls, domain: str) -> RoleDAG:
        """The paper's DAG: the two upstream roles feed the answering role."""
        specs = roles(domain)
        *up, down = specs
        return cls({r.name: r.agent_id for r in specs}, tuple((u.name, down.name) for u in up), down.name)

    def to_dict(self) -> dict[str, Any]:
        return {"roles": dict(self.roles), "edges": [list(e) for e in self.edges], "answer": self.answer}

    def successors(self, role: str, active: set[str]) -> list[str]:
        return [b for a, b in self.edges if a == role and b in active]

    def stages(self, active: set[str] | None = None) -> list[list[str]]:
        """Kahn levels of the sub-DAG on ``active`` roles (all roles by default)."""
        nodes = [r for r in self.roles if active is None or r in active]
        edges = [(a, b) for a, b in self.edges if a in nodes and b in nodes]
        indeg = {r: sum(1 for _, b in edges if b == r) for r in nodes}
        levels, done = [], 0
        frontier = [r for r in nodes if indeg[r] == 0]
        while frontier:
            levels.append(frontier)
            done += len(frontier)
            nxt = []
            for r in frontier:
                for a, b in edges:
                    if a == r:
                        indeg[b] -= 1
                        if indeg[b] == 0:
                            nxt.append(b)
            frontier = nxt
        if done != len(nodes):
            raise ConfigError("mas.dag.edges: the role graph has a cycle")
        return levels


class Transport(Protocol):
    """How the engine reaches agents. ``call_many`` may run the requests in parallel."""

    def call(self, role: str, action: str, payload: dict[str, Any]) -> dict[str, Any]: ...

    def call_many(self, requests: Sequence[tuple[str, str, dict[str, Any]]]) -> list[dict[str, Any] | Exception]: ...


class InProcessTransport:
    """Calls agent objects in this process; payloads go through JSON both ways, as they would on the wire."""

    def __init__(self, agents: dict[str, Any], fail_roles: Sequence[str] = ()):
        self.agents = agents
        self.fail_roles = set(fail_roles)

    def call(self, role: str, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        if role in self.fail_roles:
            raise RuntimeError(f"agent {role} is unavailable (simulated failure)")
        if role not in self.agents:
            raise KeyError(f"no agent for role {role!r}")
        reply = self.agents[role].handle(action, json.loads(json.dumps(payload)))
        return json.loads(json.dumps(reply))

    def call_many(self, requests: Sequence[tuple[str, str, dict[str, Any]]]) -> list[dict[str, Any] | Exception]:
        out: list[dict[str, Any] | Exception] = []
        for role, action, payload in requests:
            try:
                out.append(self.call(role, action, payload))
            except Exception as exc:  # noqa: BLE001 - a failed agent must not stop the protocol
                out.append(exc)
        return out


@dataclass
class ProtocolRun:
    """Everything that happened: messages, failures, per-(task, role) replies, final answers."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    replies: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # task -> role -> reply
    answers: dict[str, str | None] = field(default_factory=dict)

    def merge(self, other: ProtocolRun) -> None:
        self.messages += other.messages
        self.failures += other.failures
        self.replies.update(other.replies)
        self.answers.update(other.answers)


def _nbytes(obj: Any) -> int:
    return len(json.dumps(obj, ensure_ascii=False).encode())


class MASProtocol:
    """Walks ``dag`` for batches of tasks over ``transport``; see the module docstring."""

    def __init__(self, dag: RoleDAG, transport: Transport, batch_size: int = 64):
        self.dag = dag
        self.transport = transport
        self.batch_size = batch_size

    def run(self, tasks: Sequence[Task]) -> ProtocolRun:
        result = ProtocolRun()
        for i in range(0, len(tasks), self.batch_size):
            result.merge(self._run_batch(tasks[i : i + self.batch_size]))
        return result

    def _active(self, task: Task) -> set[str]:
        return {r for r in self.dag.roles if r not in task.absent_roles}

    def _item(self, task: Task, role: str, active: set[str], inbox: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            **task.to_payload(),
            "inbox": inbox,
            "instruction": dict(task.instructions).get(role),
            "recipients": [{"role": s, "agent_id": self.dag.roles[s]} for s in self.dag.successors(role, active)],
        }

    def _run_batch(self, tasks: Sequence[Task]) -> ProtocolRun:
        run = ProtocolRun(replies={t.task_id: {} for t in tasks})
        active = {t.task_id: self._active(t) for t in tasks}
        inboxes: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for stage in self.dag.stages():
            requests = []
            for role in stage:
                items = [
                    self._item(t, role, active[t.task_id], inboxes.get((t.task_id, role), []))
                    for t in tasks
                    if role in active[t.task_id]
                ]
                if items:
                    requests.append((role, "generate", {"items": items}))
            for (role, _, payload), reply in zip(requests, self.transport.call_many(requests), strict=True):
                self._record_query(run, role, payload)
                self._route(run, role, payload, reply, inboxes)
        for t in tasks:
            reply = run.replies[t.task_id].get(self.dag.answer)
            run.answers[t.task_id] = reply["output"] if reply else None
        return run

    @staticmethod
    def _record_query(run: ProtocolRun, role: str, payload: dict[str, Any]) -> None:
        for it in payload["items"]:
            run.messages.append(
                {
                    "task_id": it["task_id"],
                    "src": "server",
                    "dst": role,
                    "kind": "query",
                    "bytes": _nbytes(it),
                }
            )

    def _route(
        self,
        run: ProtocolRun,
        role: str,
        payload: dict[str, Any],
        reply: Any,
        inboxes: dict[tuple[str, str], list[dict[str, Any]]],
    ) -> None:
        ids = [it["task_id"] for it in payload["items"]]
        if isinstance(reply, Exception) or not isinstance(reply, dict) or "items" not in reply:
            reason = repr(reply) if isinstance(reply, Exception) else f"malformed reply {str(reply)[:100]}"
            run.failures.append({"role": role, "task_ids": ids, "reason": reason})
            return
        got = {r.get("task_id"): r for r in reply["items"]}
        missing = [i for i in ids if i not in got]
        if missing:
            run.failures.append({"role": role, "task_ids": missing, "reason": "no reply item"})
        for it in payload["items"]:
            rep = got.get(it["task_id"])
            if rep is None:
                continue
            run.replies[it["task_id"]][role] = rep
            for rcp in it["recipients"]:
                text = rep.get("outbound", {}).get(rcp["role"], rep["output"])
                msg = {"from": role, "text": text}
                inboxes.setdefault((it["task_id"], rcp["role"]), []).append(msg)
                run.messages.append(
                    {
                        "task_id": it["task_id"],
                        "src": role,
                        "dst": rcp["role"],
                        "kind": "handoff",
                        "text": text,
                        "bytes": _nbytes(msg),
                    }
                )
