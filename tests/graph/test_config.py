"""configs/acgkd/*.yaml validate into dataclasses; bad keys name themselves; a tiny run completes."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedsim.errors import ConfigError, DataPathError
from fedsim.graph.config import load_experiment, run_experiment

# federated.yaml is a fedsim (Flower) experiment: tests/graph/test_flower_run.py covers it
CONFIGS = sorted(p for p in (Path(__file__).parents[2] / "configs" / "acgkd").glob("*.yaml")
                 if p.name != "federated.yaml")


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_validate(path):
    exp = load_experiment(str(path))
    assert exp.task == "acgkd" and exp.trainer.name == "acgkd"
    assert exp.trainer.xi >= 0 and exp.teacher.layers >= 1


def test_unknown_and_mistyped_keys_name_the_dotted_key():
    path = str(CONFIGS[0])
    with pytest.raises(ConfigError, match="trainer.xii"):
        load_experiment(path, ["trainer.xii=3"])
    with pytest.raises(ConfigError, match="trainer.reuse_classifier"):
        load_experiment(path, ["trainer.reuse_classifier=3"])
    with pytest.raises(ConfigError, match="federation.mode"):
        load_experiment(path, ["federation.mode=gossip"])
    with pytest.raises(DataPathError, match="nope.yaml"):
        load_experiment("nope.yaml")


def test_tiny_federated_run_end_to_end():
    root = Path(__file__).parents[2] / "configs" / "acgkd" / "synthetic.yaml"
    exp = load_experiment(str(root), [
        "data.num_graphs=36", "data.min_nodes=12", "data.max_nodes=14", "teacher.hidden=8",
        "teacher.layers=2", "teacher.epochs=2", "trainer.graphs_per_class=3", "trainer.gen_steps=3",
        "trainer.kd_epochs=2", "trainer.min_nodes=8", "trainer.max_nodes=10", "trainer.student_hidden=8",
        "federation.num_clients=2", "federation.alpha=5.0"])
    out = run_experiment(exp)
    assert set(out) >= {"teacher0_acc", "teacher1_acc", "student_acc", "gen_seconds"}
    assert all(0.0 <= out[k] <= 1.0 for k in ("teacher0_acc", "teacher1_acc", "student_acc"))
