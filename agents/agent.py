"""One agent of the Federated MAS (EPEAgent, arXiv 2503.08175): role, LLM, private store, EPE middleware.

An :class:`Agent` is what one Flower ClientApp node hosts. It answers one action, ``generate``, on a batch
of task items (one DAG stage of many tasks), so a Flower round trip is paid once per stage, not per task:

``item = {task_id, user_id, question, inbox: [{from, text}], recipients: [{role, agent_id}], instruction}``

For each item it runs EPE stage A (retrieve its permitted records), stage B inbound (sanitise the
inbox for itself), calls its chat model, then stage B outbound (one sanitised copy per recipient). The
reply carries the raw output, the per-recipient copies and an audit record of what entered its context,
which the protocol engine keeps for the metrics (a simulation convenience: in a deployment the audit
would stay local).

Two runtimes produce the same prompt: ``chat`` (the chat-model layer; one ``batch`` call per stage, which
:class:`agents.llm.TransformersChat` turns into padded batched generation) and ``graph`` (langchain 1.x
``create_agent`` with :class:`agents.epe.EPEMiddleware`, one invoke per item: how a user would build it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain.agents import create_agent
from langchain_core.documents import Document
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage

from agents.config import EPEConfig
from agents.epe import EPEContext, EPEFilter, EPEMiddleware, PrivacyPolicy, render_inbox, render_system
from agents.profiles import RoleSpec
from agents.store import KnowledgeStore
from fedsim.errors import ConfigError


def _title(role: str) -> str:
    return role.replace("_", " ")


def task_message(item: dict[str, Any]) -> str:
    """The human turn: the task, an optional (adversarial) instruction, and what to produce."""
    parts = [f"Task: {item['question']}"]
    if item.get("instruction"):
        parts.append(str(item["instruction"]))
    recipients = item.get("recipients") or []
    if recipients:
        names = ", ".join(_title(r["role"]) for r in recipients)
        parts.append(f"Write a brief for the {names} agent with the user information needed for this task.")
    elif "Options:" in item["question"]:
        parts.append("Answer with the letter of the correct option, for example (a).")
    return "\n".join(parts)


class Agent:
    """A role with its own LLM, knowledge store, privacy policy and EPE middleware."""

    def __init__(
        self,
        role: RoleSpec,
        llm: BaseChatModel,
        store: KnowledgeStore,
        policy: PrivacyPolicy,
        epe: EPEConfig,
        runtime: str = "chat",
    ):
        if runtime not in ("chat", "graph"):
            raise ConfigError(f"mas.runtime: expected chat|graph, got {runtime!r}")
        self.role = role
        self.llm = llm
        self.runtime = runtime
        self.epe = EPEFilter(
            role.agent_id,
            role.description,
            store,
            policy,
            epe,
            rewriter=self._rewrite,
            batch_rewriter=self._rewrite_many,
        )
        self.middleware = EPEMiddleware(self.epe, role.system_prompt)
        self._graph: Any = None

    @property
    def graph(self) -> Any:
        """``create_agent`` graph with the EPE middleware (built on first use)."""
        if self._graph is None:
            self._graph = create_agent(
                self.llm,
                tools=[],
                middleware=[self.middleware],
                context_schema=EPEContext,
                name=self.role.name,
            )
        return self._graph

    def retrieve(self, task: dict[str, Any]) -> list[Document]:
        """EPE stage A for one task item."""
        return self.epe.retrieve(int(task["user_id"]), task["question"])

    @staticmethod
    def _rewrite_prompt(text: str, recipient_id: int) -> list[Any]:
        return [
            SystemMessage(
                f"You are a privacy filter. Rewrite the message for agent {recipient_id}, "
                "keeping task facts and removing personal details it does not need."
            ),
            HumanMessage(text),
        ]

    def _rewrite(self, text: str, recipient_id: int) -> str:
        return self.llm.invoke(self._rewrite_prompt(text, recipient_id)).text

    def _rewrite_many(self, pairs: Sequence[tuple[str, int]]) -> list[str]:
        """The LLM rewrite layer for a whole stage batch: one ``batch`` call on the agent's model."""
        return [m.text for m in self.llm.batch([self._rewrite_prompt(t, r) for t, r in pairs])]

    def _contexts(self, items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Stage A + inbound stage B for a batch: the audit record of what each context holds."""
        docs = self.epe.retrieve_many([(int(it["user_id"]), it["question"]) for it in items])
        audits = []
        for it, ds in zip(items, docs, strict=True):
            inbox, reports = self.epe.sanitize_inbox(it.get("inbox") or [], int(it["user_id"]))
            audits.append(
                {
                    "rag_fields": [d.metadata["field"] for d in ds],
                    "rag_text": self.epe.context_text(ds),
                    "inbox_text": render_inbox(inbox),
                    "inbound_reports": reports,
                    "system_prompt": self.role.system_prompt,
                }
            )
        return audits

    def _run_chat(self, items: Sequence[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
        audits = self._contexts(items)
        convs = [
            [
                SystemMessage(render_system(a["system_prompt"], a["rag_text"], a["inbox_text"])),
                HumanMessage(task_message(it)),
            ]
            for it, a in zip(items, audits, strict=True)
        ]
        return [m.text for m in self.llm.batch(convs)], audits

    def _run_graph(self, items: Sequence[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
        outputs, audits = [], []
        for it in items:
            ctx = EPEContext(user_id=int(it["user_id"]), inbox=list(it.get("inbox") or []))
            state = self.graph.invoke({"messages": [HumanMessage(task_message(it))]}, context=ctx)
            outputs.append(state["messages"][-1].text)
            audits.append(ctx.audit)
        return outputs, audits

    def generate_batch(self, items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Outputs + per-recipient sanitised copies + audit records, one per item."""
        run = self._run_graph if self.runtime == "graph" else self._run_chat
        outputs, audits = run(items)
        sends = [
            (i, rcp["role"], (out, int(it["user_id"]), int(rcp["agent_id"])))
            for i, (it, out) in enumerate(zip(items, outputs, strict=True))
            for rcp in it.get("recipients") or []
        ]
        cleaned = self.epe.sanitize_many([req for _, _, req in sends], rewrite=True)
        outbounds: list[dict[str, str]] = [{} for _ in items]
        out_reports: list[dict[str, Any]] = [{} for _ in items]
        for (i, role, _), (text, rep) in zip(sends, cleaned, strict=True):
            outbounds[i][role], out_reports[i][role] = text, rep.to_dict()
        replies = []
        for it, out, audit, outbound, reports in zip(items, outputs, audits, outbounds, out_reports, strict=True):
            audit = {
                **audit,
                "agent_id": self.role.agent_id,
                "role": self.role.name,
                "human": task_message(it),
                "outbound_reports": reports,
            }
            replies.append({"task_id": it["task_id"], "output": out, "outbound": outbound, "audit": audit})
        return replies

    def generate(self, item: dict[str, Any]) -> dict[str, Any]:
        """One task item -> ``{task_id, output, outbound, audit}``."""
        return self.generate_batch([item])[0]

    def handle(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Transport entry point (what a Flower ``query.<action>`` handler calls)."""
        if action == "generate":
            return {"items": self.generate_batch(payload["items"])}
        if action == "retrieve":
            return {
                "items": [
                    {"task_id": it["task_id"], "fields": [d.metadata["field"] for d in self.retrieve(it)]}
                    for it in payload["items"]
                ]
            }
        raise ConfigError(f"agent {self.role.name}: unknown action {action!r} (generate|retrieve)")
