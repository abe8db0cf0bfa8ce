"""Strategy tests run on :class:`fedsim.testing.InProcessContext`: the real client actions and on-disk
client state, served in this process instead of through Flower's engine on Ray."""

from __future__ import annotations

from pathlib import Path

import pytest

import fedsim.actions  # noqa: F401  (registers the built-in actions)
import fedsim.actions_extra  # noqa: F401  (method-specific regularisers)
from fedsim.config import ExperimentConfig, load_config
from fedsim.testing import InProcessContext

TINY = Path(__file__).parent.parent / "configs" / "tiny.yaml"


def tiny_config(tmp_path: Path, *overrides: str) -> ExperimentConfig:
    base = ["data.public.source=synthetic", "data.public.size=64", "data.public.batch_size=32",
            "num_clients=3", "local_epochs=1", f"cache_dir={tmp_path / 'cache'}"]
    return load_config(TINY, [*base, *overrides])


@pytest.fixture
def make_context(tmp_path):
    """``make_context(*overrides)`` -> InProcessContext over the tiny config plus overrides."""

    def make(*overrides: str) -> InProcessContext:
        cfg = tiny_config(tmp_path, *overrides)
        run_dir = tmp_path / f"run{len(list(tmp_path.glob('run*')))}"
        return InProcessContext.open(cfg, run_dir)

    return make
