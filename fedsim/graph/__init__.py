"""Graph classification and data-free graph KD (ACGKD, arXiv 2504.00540).

Modules: ``config`` (the light config dataclasses and the configs/acgkd YAML runner), ``data``
(synthetic networkx families, local TU loader), ``gnn`` (dense GIN/GCN), ``acgkd`` (the method;
importing it registers the ``acgkd`` trainer), ``implicit`` (blockwise low-rank adjacency),
``baselines`` (GFKD, DFAD-GNN), ``federated`` (server ensemble distillation, client compression,
model (de)serialisation), ``flower`` (the client node action of the ``acgkd`` Flower strategy).

Nothing is imported here: ``fedsim.graph.config`` and ``fedsim.graph.flower`` are imported by every
fedsim run (through ``strategies/acgkd.py``) and must not pull in torch_geometric.
"""
