"""The role-DAG protocol engine: routing, stages, dynamic topology, failures, JSON payloads."""

from __future__ import annotations

import json

import pytest

from agents.profiles import Task
from agents.protocol import InProcessTransport, MASProtocol, RoleDAG
from fedsim.errors import ConfigError


class EchoAgent:
    """Replies with what it received, and a distinct copy per recipient (to check routing)."""

    def __init__(self, role: str, calls: list):
        self.role, self.calls = role, calls

    def handle(self, action, payload):
        self.calls.append((self.role, len(payload["items"])))
        items = []
        for it in payload["items"]:
            seen = "+".join(sorted(m["from"] for m in it["inbox"]))
            out = f"{self.role}({seen}) on {it['question']}"
            items.append(
                {
                    "task_id": it["task_id"],
                    "output": out,
                    "audit": {"agent_id": 0},
                    "outbound": {r["role"]: f"{self.role}->{r['role']}#{r['agent_id']}" for r in it["recipients"]},
                }
            )
        return {"items": items}


DAG = RoleDAG.from_dict({"roles": {"a": 1, "b": 2, "c": 3}, "edges": [["a", "c"], ["b", "c"]], "answer": "c"})


def _tasks(n=2, **kw):
    return [Task(f"t{i}", i, "utility", "name", f"q{i}", **kw) for i in range(n)]


def _transport(calls, fail=()):
    return InProcessTransport({r: EchoAgent(r, calls) for r in ("a", "b", "c")}, fail_roles=fail)


def test_three_agent_dag_routes_outputs_along_edges():
    calls = []
    run = MASProtocol(DAG, _transport(calls)).run(_tasks(2))
    assert calls == [("a", 2), ("b", 2), ("c", 2)]  # one batched message per agent per stage
    assert run.answers == {"t0": "c(a+b) on q0", "t1": "c(a+b) on q1"}
    handoffs = [m for m in run.messages if m["kind"] == "handoff"]
    assert {(m["src"], m["dst"], m["text"]) for m in handoffs} == {("a", "c", "a->c#3"), ("b", "c", "b->c#3")}
    assert len(handoffs) == 4 and sum(m["kind"] == "query" for m in run.messages) == 6
    assert all(m["bytes"] > 0 for m in run.messages) and not run.failures
    json.dumps(run.messages)


def test_failed_agent_is_logged_and_the_run_goes_on():
    calls = []
    run = MASProtocol(DAG, _transport(calls, fail=("a",))).run(_tasks(2))
    assert run.answers["t0"] == "c(b) on q0"  # c gets nothing from a, still answers
    assert run.failures == [
        {
            "role": "a",
            "task_ids": ["t0", "t1"],
            "reason": "RuntimeError('agent a is unavailable (simulated failure)')",
        }
    ]
    failed_answer = MASProtocol(DAG, _transport([], fail=("c",))).run(_tasks(1))
    assert failed_answer.answers == {"t0": None} and failed_answer.failures[0]["role"] == "c"


def test_roles_absent_per_task_and_batching():
    calls = []
    tasks = [Task("x", 0, "utility", "name", "qx", absent_roles=("b",)), *_tasks(3)]
    run = MASProtocol(DAG, _transport(calls), batch_size=2).run(tasks)
    assert run.answers["x"] == "c(a) on qx" and run.answers["t2"] == "c(a+b) on q2"
    assert calls == [("a", 2), ("b", 1), ("c", 2), ("a", 2), ("b", 2), ("c", 2)]


def test_any_dag_from_a_dict_walks_in_topological_stages():
    chain = RoleDAG.from_dict({"roles": {"c": 3, "a": 1, "b": 2}, "edges": [["a", "b"], ["b", "c"]], "answer": "c"})
    assert chain.stages() == [["a"], ["b"], ["c"]]
    run = MASProtocol(chain, _transport([])).run(_tasks(1))
    assert run.answers["t0"] == "c(b) on q0"
    assert run.replies["t0"]["b"]["output"] == "b(a) on q0"
    assert RoleDAG.for_domain("medical").to_dict() == {
        "roles": {"diagnosis": 4, "treatment_recommendation": 5, "medication_management": 6},
        "edges": [
            ["diagnosis", "medication_management"],
            ["treatment_recommendation", "medication_management"],
        ],
        "answer": "medication_management",
    }


@pytest.mark.parametrize(
    "bad, key",
    [
        ({"roles": {"a": 1}, "edges": [["a", "z"]], "answer": "a"}, "mas.dag.edges"),
        ({"roles": {"a": 1, "b": 2}, "edges": [["a", "b"], ["b", "a"]], "answer": "a"}, "cycle"),
        ({"roles": {"a": 1}, "edges": []}, "mas.dag.answer"),
    ],
)
def test_bad_dags_raise_config_errors(bad, key):
    with pytest.raises(ConfigError, match=key):
        RoleDAG.from_dict(bad)
