"""Graph classification and data-free graph KD (ACGKD, arXiv 2504.00540).

Importing this package registers the ``acgkd`` trainer in :data:`fedsim.registry.TRAINERS`.
Modules: ``data`` (synthetic networkx families, local TU loader), ``gnn`` (dense GIN/GCN),
``acgkd`` (the method), ``implicit`` (blockwise low-rank adjacency), ``baselines`` (GFKD, DFAD-GNN),
``federated`` (server ensemble distillation, client compression, model (de)serialisation),
``config`` (the configs/acgkd YAML schema and a plain runner).
"""

from fedsim.graph import acgkd as acgkd  # noqa: F401  (registers the trainer)
