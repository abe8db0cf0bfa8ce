"""Run-dir status: a run that leaves its process early never stays 'running'."""

import json

from fedsim.config import load_config
from fedsim.results import RunRecorder, abandon_live


def _status(run_dir):
    return json.loads((run_dir / "summary.json").read_text())["status"]


def test_abandoned_runs_get_a_final_status_the_server_thread_cannot_overwrite(tmp_path):
    cfg = load_config("tests/configs/tiny.yaml")
    live, done = RunRecorder.create(tmp_path / "live", cfg), RunRecorder.create(tmp_path / "done", cfg)
    live.round_done(1)
    done.finish("completed")
    abandon_live("interrupted")  # what the CLI does on Ctrl-C, wherever the signal landed
    assert _status(tmp_path / "live") == "interrupted" and _status(tmp_path / "done") == "completed"
    live.finish("completed")  # a ServerApp thread still running afterwards writes nothing more
    summary = json.loads((tmp_path / "live" / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["rounds_completed"] == 1
    abandon_live("failed")  # nothing left to abandon
    assert _status(tmp_path / "live") == "interrupted"


def test_end_of_run_table_shows_accuracies_before_counts():
    from fedsim.cli import _headline_keys

    final = {"class0_graphs": 3.0, "train_kd_loss": 0.4, "student_acc": 0.6, "ensemble_acc": 0.7,
             "leak_union": 0.0, "failures": 0, "round_seconds": 2.0}
    assert _headline_keys(final, limit=4) == ["ensemble_acc", "leak_union", "student_acc", "class0_graphs"]
