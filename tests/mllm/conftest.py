"""Shared tiny fixtures: a ~40k-parameter LLaVA and small world sets, so the whole area runs in seconds."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from fedsim.mllm.model import MLLM, MLLMConfig, build_mllm, clone_mllm  # noqa: E402
from fedsim.mllm.world import MMDataset, WorldConfig, build_dataset  # noqa: E402

TINY = MLLMConfig(vision_hidden=32, vision_layers=1, vision_heads=2, vision_intermediate=64, text_hidden=32,
                  text_layers=2, text_heads=2, text_intermediate=64, seed=0)


@pytest.fixture(scope="session")
def world() -> WorldConfig:
    return WorldConfig(seed=3)


@pytest.fixture(scope="session")
def _base() -> MLLM:
    return build_mllm(TINY)


@pytest.fixture
def tiny(_base: MLLM) -> MLLM:
    """A fresh copy per test (trainers modify the model in place)."""
    return clone_mllm(_base)


@pytest.fixture(scope="session")
def down_data(world: WorldConfig) -> MMDataset:
    return build_dataset(world, world.downstream, 96, "train", seed=1)


@pytest.fixture(scope="session")
def up_data(world: WorldConfig) -> MMDataset:
    return build_dataset(world, world.upstream, 96, "test", seed=2)
