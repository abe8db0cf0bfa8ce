"""Federated multi-agent systems with EPEAgent privacy middleware (Shi et al., arXiv 2503.08175).

Modules: ``profiles`` (seeded users, MCQs, probes), ``store`` (per-agent FAISS), ``embeddings``
(packaged MiniLM), ``epe`` (stage A/B filters, retriever and langchain middleware), ``llm`` (chat-model
backends), ``agent`` (one agent client), ``protocol`` (role-DAG engine, pluggable transport),
``metrics`` (leakage, utility, data flow), ``mas`` (assembly from :class:`agents.config.MASConfig`),
``flower`` (agent nodes, Flower transport and the ``mas`` strategy; registered on import).
"""

from agents import flower  # noqa: F401  (registers the `mas` strategy and the query.generate action)
