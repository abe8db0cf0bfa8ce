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
