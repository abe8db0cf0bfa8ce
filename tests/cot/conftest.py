"""Shared tiny fixtures for the CoT-Kinetics tests: a word-level arithmetic tokenizer and a
random-init 2-layer Llama built from config (no download, under a second to build)."""

from __future__ import annotations

import pytest

from fedsim.cot.arith import build_model, build_tokenizer
from fedsim.cot.config import ArithConfig, CoTConfig


@pytest.fixture(scope="session")
def tiny_cfg(tmp_path_factory) -> CoTConfig:
    arith = {"d_model": 32, "d_ff": 64, "n_layers": 2, "n_heads": 2, "n_train": 64, "train_steps": 4,
             "batch_size": 8, "n_eval_problems": 24, "value_max": 20, "start_max": 10, "operand_max": 5}
    return CoTConfig.from_dict({"cache_dir": str(tmp_path_factory.mktemp("cotcache")), "arith": arith})


@pytest.fixture(scope="session")
def tiny_tok(tiny_cfg):
    return build_tokenizer(tiny_cfg.arith)


@pytest.fixture(scope="session")
def tiny_model(tiny_cfg, tiny_tok):
    return build_model(tiny_cfg.arith, tiny_tok, seed=0).eval()


@pytest.fixture()
def arith_cfg() -> ArithConfig:
    return ArithConfig(value_max=20, start_max=10, operand_max=5)
