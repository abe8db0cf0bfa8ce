"""Federation builder: from one config, each client's data, model and trainer.

Data are built once per process and cached on disk under ``cache_dir`` (keyed by a hash of the data
config and seed), so Ray actors and repeated runs of a benchmark table do not regenerate or re-corrupt
images. The pipeline follows RAHFL's official generator (spec rahfl.md §2, §7.1):

1. load the source's train/test split;
2. reserve ``val_size`` training images before client sampling, corrupted at the *test* rate (the
   selection split of RAHFL's quality query);
3. corrupt the remaining training images per image at rate xi (clients differ only in the draws);
4. partition the training indices (iid / dirichlet / overlap);
5. the clean test set, the same test set corrupted at the test rate, and the unlabelled public set.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from fedsim.config import ExperimentConfig, config_hash
from fedsim.data.base import ClientData, ImageSet
from fedsim.data.partition import partition
from fedsim.data.sources import load_public, load_source
from fedsim.models.zoo import build_model
from fedsim.registry import TRAINERS
from fedsim.trainers.base import Trainer, seeded_generator


@dataclass
class FederationData:
    """The data of the whole federation; :meth:`client` cuts one client's view out of it."""

    train: ImageSet
    parts: list[torch.Tensor]
    val: ImageSet | None
    test_clean: ImageSet
    test_corrupt: ImageSet
    public: ImageSet | None

    def client(self, pid: int) -> ClientData:
        return ClientData(self.train.subset(self.parts[pid]), self.val, self.test_clean, self.test_corrupt,
                          self.public)


def cache_root(cfg: ExperimentConfig) -> Path:
    return Path(cfg.cache_dir or os.environ.get("FEDSIM_CACHE") or Path(cfg.output_dir) / ".cache")


def atomic_torch_save(obj: object, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _corrupt(images: ImageSet, spec, seed: int) -> ImageSet:
    from fedsim.data.corruptions import CorruptionConfig, corrupt_set

    if spec.rate <= 0:
        return images
    cc = CorruptionConfig(rate=spec.rate, severities=(spec.severity_min, spec.severity_max),
                          types=tuple(spec.types) or None, seed=seed)
    return corrupt_set(images, cc)


def _build(cfg: ExperimentConfig) -> FederationData:
    d = cfg.data
    train, test = load_source(d.source, root=d.root, image_size=d.image_size, seed=cfg.seed,
                              num_classes=d.num_classes, num_train=d.synthetic_train, num_test=d.synthetic_test)
    if d.test_size:
        test = test.subset(torch.arange(min(d.test_size, len(test))))
    perm = torch.randperm(len(train), generator=seeded_generator(cfg.seed, "val-split"))
    val = train.subset(perm[: d.val_size]) if d.val_size else None
    train = train.subset(perm[d.val_size :])
    train = _corrupt(train, d.corruption, cfg.seed)
    if val is not None:
        val = _corrupt(val, d.test_corruption, cfg.seed + 1)
    test_corrupt = _corrupt(test, d.test_corruption, cfg.seed + 2)
    extra = {"alpha": d.partition.alpha, "samples_per_client": d.partition.samples_per_client}
    parts = partition(d.partition.name, train.y, cfg.num_clients, cfg.seed, **extra)
    public = None
    if d.public.source != "none":
        public = load_public(d.public.source, root=d.public.root, size=d.public.size, image_size=d.image_size,
                             seed=cfg.seed)
    for images in (train, public):  # the augmentations read the flip switch from the set they augment
        if images is not None:
            images.meta["hflip"] = d.hflip
    return FederationData(train, parts, val, test, test_corrupt, public)


_DATA: dict[str, FederationData] = {}


def federation_data(cfg: ExperimentConfig) -> FederationData:
    """The federation's data, from the process cache, the disk cache, or built (then cached)."""
    key = config_hash(cfg, "data", "seed", "num_clients")
    if key in _DATA:
        return _DATA[key]
    path = cache_root(cfg) / "data" / f"{key}.pt"
    fed = None
    if path.is_file():
        try:
            fed = FederationData(**torch.load(path, weights_only=False))
        except Exception:  # a stale or foreign cache file: rebuild it
            fed = None
    if fed is None:
        fed = _build(cfg)
        atomic_torch_save(fed.__dict__, path)
    _DATA.clear()  # one federation per process at a time keeps actor memory flat
    _DATA[key] = fed
    return fed


def build_client_model(cfg: ExperimentConfig, pid: int, num_classes: int):
    """The client's architecture (``model.archs`` by partition id), initialised from (seed, pid)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seeded_generator(cfg.seed, "init", pid).initial_seed())
        return build_model(cfg.model.arch_for(pid), num_classes, cfg.model.width)


def build_trainer(cfg: ExperimentConfig, model, pid: int) -> Trainer:
    tcfg = cfg.trainer_config()
    cls = TRAINERS.get(tcfg.name, key="trainer.name")
    return cls(tcfg, model, seed=cfg.seed * 1000 + pid)
