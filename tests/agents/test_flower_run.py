"""A Ray-backed Flower simulation of the financial MAS config (deterministic model) writes the metrics."""

from __future__ import annotations

import json
import os

import pytest

pytestmark = pytest.mark.ray


def test_financial_config_runs_on_ray_and_writes_metrics(tmp_path):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION", "1")
    import fedsim

    cfg = fedsim.load_config("configs/mas/financial.yaml", ["strategy.num_users=2", "strategy.embedder=fake"])
    result = fedsim.run(cfg, output_dir=tmp_path / "run")
    assert result.summary["status"] == "completed"
    final = result.summary["final"]
    assert final["leak_rag_macro"] == 0.0 and final["flow_fields_per_query"] == 17.0
    assert final["utility_allowed_field"] == 1.0 and final["n_failures"] == 0
    assert sorted(result.summary["per_client"]) == ["0", "1", "2"]
    messages = [json.loads(x) for x in (result.run_dir / "mas_messages.jsonl").read_text().splitlines()]
    n_tasks = int(final["n_tasks"])
    assert sum(m["kind"] == "query" for m in messages) == 3 * n_tasks
    assert sum(m["kind"] == "handoff" for m in messages) == 2 * n_tasks
    assert (result.run_dir / "metrics.jsonl").is_file()
