"""Round-0 pre-training: its knobs reach the trainer and the cache key, and old caches stay valid."""

from __future__ import annotations

from pathlib import Path

import torch

from fedsim.client import _pretrain_extra_keys, open_runtime
from fedsim.config import load_config

TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"


def _round0(tmp_path: Path, *overrides: str) -> dict[str, torch.Tensor]:
    cfg = load_config(TINY, ["pretrain_epochs=1", f"cache_dir={tmp_path / 'cache'}", *overrides])
    return open_runtime(cfg, 0, str(tmp_path / "run"), 0).model.state_dict()


def test_defaults_keep_the_old_cache_key() -> None:
    assert _pretrain_extra_keys(load_config(TINY, [])) == ()
    cfg = load_config(TINY, ["pretrain_augment=false", "pretrain_batch_size=16"])
    assert _pretrain_extra_keys(cfg) == ("pretrain_augment", "pretrain_batch_size")


def test_augmentation_switch_changes_the_pretrained_weights(tmp_path: Path) -> None:
    plain = _round0(tmp_path, "pretrain_augment=false")
    augmented = _round0(tmp_path)
    head = "head.weight"
    assert not torch.equal(plain[head], augmented[head])
    cached = sorted(p.name for p in (tmp_path / "cache" / "pretrain").glob("*.pt"))
    assert len(cached) == 2  # one cache entry per setting, not one overwriting the other
    assert torch.equal(_round0(tmp_path, "pretrain_augment=false")[head], plain[head])  # reloaded from cache


def test_public_set_does_not_enter_the_pretraining_key_but_the_flip_switch_does(tmp_path: Path) -> None:
    base = _round0(tmp_path, "pretrain_augment=true")["head.weight"]
    other_public = _round0(tmp_path, "pretrain_augment=true", "data.public.source=glyphs", "data.public.size=16")
    assert torch.equal(other_public["head.weight"], base)
    assert len(list((tmp_path / "cache" / "pretrain").glob("*.pt"))) == 1  # reused, not retrained
    no_flip = _round0(tmp_path, "pretrain_augment=true", "data.hflip=false")  # changes the augmented views
    assert not torch.equal(no_flip["head.weight"], base)
    assert len(list((tmp_path / "cache" / "pretrain").glob("*.pt"))) == 2
