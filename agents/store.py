"""Per-agent private knowledge store: a langchain FAISS index over user-profile records (arXiv 2503.08175).

One document per (user, field), text ``"<field>: <value>. <description>"`` and metadata
``{user_id, field, labels, value}`` (spec section 4, stage A step 3). The index uses inner-product search
over unit-norm embeddings (= cosine similarity). The label filter needs no embedding at all, so the
store also keeps the documents per user in schema order; the relevance filter ranks with FAISS.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from langchain_community.vectorstores import FAISS
from langchain_community.vectorstores.utils import DistanceStrategy
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from agents.profiles import UserProfile, render_value, schema_map


def profile_documents(profile: UserProfile) -> list[Document]:
    """The records of one user, one document per field."""
    schema = schema_map(profile.domain)
    docs = []
    for name, value in profile.fields.items():
        spec = schema[name]
        docs.append(
            Document(
                page_content=f"{name}: {render_value(value)}. {spec.description}",
                metadata={
                    "user_id": profile.user_id,
                    "field": name,
                    "labels": list(spec.labels),
                    "value": json.dumps(value),
                },
            )
        )
    return docs


class KnowledgeStore:
    """FAISS over all records an agent holds, plus a per-user view for exact (label) filtering."""

    def __init__(self, index: FAISS, docs_by_user: dict[int, list[Document]]):
        self.index = index
        self._by_user = docs_by_user

    @classmethod
    def from_profiles(cls, profiles: Sequence[UserProfile], embeddings: Embeddings) -> KnowledgeStore:
        docs = [d for p in profiles for d in profile_documents(p)]
        ids = [f"{d.metadata['user_id']}:{d.metadata['field']}" for d in docs]
        index = FAISS.from_documents(docs, embeddings, ids=ids, distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT)
        by_user: dict[int, list[Document]] = {}
        for d in docs:
            by_user.setdefault(d.metadata["user_id"], []).append(d)
        return cls(index, by_user)

    @property
    def embeddings(self) -> Embeddings:
        return self.index.embedding_function  # type: ignore[return-value]

    def records(self, user_id: int) -> list[Document]:
        """All documents of one user (empty when the store does not hold that user)."""
        return list(self._by_user.get(user_id, []))

    def values(self, user_id: int) -> dict[str, Any]:
        """The user's raw field values (what stage B needs to know what to mask)."""
        return {d.metadata["field"]: json.loads(d.metadata["value"]) for d in self.records(user_id)}

    def search(
        self, query_vector: list[float], user_id: int, keep: Callable[[dict[str, Any]], bool], k: int
    ) -> list[tuple[Document, float]]:
        """Top-k documents of ``user_id`` passing ``keep``, by cosine similarity (exact: fetch_k = all)."""

        def predicate(meta: dict[str, Any]) -> bool:
            return meta["user_id"] == user_id and keep(meta)

        total = self.index.index.ntotal
        return self.index.similarity_search_with_score_by_vector(query_vector, k=k, filter=predicate, fetch_k=total)
