"""Client partitioners: which training indices each client holds.

``iid`` and ``dirichlet`` are flwr-datasets' ``IidPartitioner`` and ``DirichletPartitioner`` run over
a one-column (label) Hugging Face dataset, so fedsim partitions exactly as Flower's own examples do.
``overlap`` is RAHFL's sampling (official code ``Dataset/sampling.py``): every client independently
takes a random permutation of the whole set and keeps the first ``samples_per_client`` indices, so
clients may share images.
"""

from __future__ import annotations

import numpy as np
import torch

from fedsim.errors import ConfigError
from fedsim.registry import PARTITIONERS


def _label_dataset(labels: torch.Tensor):
    from datasets import Dataset

    return Dataset.from_dict({"label": labels.tolist()})


def _indexed(labels: torch.Tensor):
    ds = _label_dataset(labels)
    return ds.add_column("__index__", list(range(len(labels))))


@PARTITIONERS.register("iid")
def iid(labels: torch.Tensor, num_clients: int, seed: int, **_: object) -> list[torch.Tensor]:
    """Disjoint equal-size random shards (flwr-datasets IidPartitioner over a shuffled set)."""
    from flwr_datasets.partitioner import IidPartitioner

    if num_clients > len(labels):
        raise ConfigError(f"num_clients: {num_clients} clients but only {len(labels)} training samples")
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    p = IidPartitioner(num_partitions=num_clients)
    p.dataset = _indexed(labels[perm])
    return [perm[torch.as_tensor(p.load_partition(i)["__index__"], dtype=torch.long)] for i in range(num_clients)]


@PARTITIONERS.register("dirichlet")
def dirichlet(labels: torch.Tensor, num_clients: int, seed: int, alpha: float = 0.5,
              **_: object) -> list[torch.Tensor]:
    """Label skew: class proportions per client ~ Dir(alpha) (flwr-datasets DirichletPartitioner)."""
    from flwr_datasets.partitioner import DirichletPartitioner

    min_size = max(1, min(10, len(labels) // (4 * num_clients)))
    p = DirichletPartitioner(num_partitions=num_clients, partition_by="label", alpha=alpha,
                             min_partition_size=min_size, self_balancing=False, shuffle=True, seed=seed)
    p.dataset = _indexed(labels)
    return [torch.as_tensor(p.load_partition(i)["__index__"], dtype=torch.long) for i in range(num_clients)]


@PARTITIONERS.register("overlap")
def overlap(labels: torch.Tensor, num_clients: int, seed: int, samples_per_client: int = 1000,
            **_: object) -> list[torch.Tensor]:
    """RAHFL: each client keeps the first ``samples_per_client`` of its own random permutation."""
    n = len(labels)
    if samples_per_client > n:
        raise ConfigError(
            f"data.partition.samples_per_client: {samples_per_client} exceeds the {n} training samples available"
        )
    rng = np.random.default_rng(seed)
    return [torch.from_numpy(rng.permutation(n)[:samples_per_client]).long() for _ in range(num_clients)]


def partition(name: str, labels: torch.Tensor, num_clients: int, seed: int, **kwargs: object) -> list[torch.Tensor]:
    return PARTITIONERS.get(name, key="data.partition.name")(labels, num_clients, seed, **kwargs)
