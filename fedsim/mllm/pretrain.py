"""Upstream "pretraining" of the small MLLM on the world's general task mix, cached by config hash.

Part of fedsim's MLLM ground (LoRASculpt, arXiv 2503.16843; tuning taxonomy, arXiv 2503.04543). The
papers start from an instruction-tuned LLaVA-1.5 whose general knowledge (OKVQA, GQA, ...) the
downstream tuning may erase. No such weights exist offline, so we train the random-init model on the
upstream families (all weights, vision tower included) and cache the result: the directory name is a
hash of the model, world and pretraining configs, and it is written with ``save_pretrained`` into a
temporary directory renamed into place, so concurrent runs never read a half-written checkpoint.
A configured ``model.path`` (a real local checkpoint) is used as is: it is already pretrained.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from fedsim.mllm.model import MLLM, MLLMConfig, build_mllm, load_mllm, save_mllm
from fedsim.mllm.tuning import TuningConfig, TuningTrainer
from fedsim.mllm.world import WorldConfig, build_dataset


@dataclass
class PretrainConfig:
    steps: int = 1500
    batch_size: int = 32
    lr: float = 2e-3
    warmup_ratio: float = 0.03
    n_train: int = 12000
    #: families to pretrain on (None: the world's upstream families)
    families: tuple[str, ...] | None = None
    seed: int = 0


class _Pretrainer(TuningTrainer):
    """Every weight trains (vision tower too): building the model's general skills from scratch."""

    name, taxonomy = "pretrain", "pretrain"

    def prepare(self) -> None:
        for p in self.mllm.model.parameters():
            p.requires_grad_(True)


def config_hash(*cfgs: object) -> str:
    blob = json.dumps([asdict(c) for c in cfgs], sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def default_artifacts_dir() -> Path:
    return Path(os.environ.get("FEDSIM_ARTIFACTS", "artifacts"))


def pretrain(mllm: MLLM, world: WorldConfig, cfg: PretrainConfig) -> dict[str, float]:
    data = build_dataset(world, cfg.families or world.upstream, cfg.n_train, "train", seed=cfg.seed)
    tcfg = TuningConfig(name="pretrain", lr=cfg.lr, batch_size=cfg.batch_size, steps=cfg.steps,
                        warmup_ratio=cfg.warmup_ratio)
    return _Pretrainer(tcfg, mllm, cfg.seed).fit(data)


def pretrained_mllm(model_cfg: MLLMConfig, world: WorldConfig, cfg: PretrainConfig,
                    artifacts_dir: str | Path | None = None) -> MLLM:
    """The upstream-pretrained model: loaded from the cache when present, else trained and cached."""
    if model_cfg.path:
        return load_mllm(model_cfg.path)
    root = Path(artifacts_dir) if artifacts_dir is not None else default_artifacts_dir()
    target = root / f"mllm-pretrain-{config_hash(model_cfg, world, cfg)}"
    if (target / "config.json").is_file():
        return load_mllm(target)
    mllm = build_mllm(model_cfg)
    pretrain(mllm, world, cfg)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".tmp-"))
    save_mllm(mllm, tmp)
    try:
        tmp.rename(target)
    except OSError:  # another process finished first: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
    return load_mllm(target)
