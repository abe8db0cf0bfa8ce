"""Config validation: every bad input names its key and exits 2 from the CLI."""

import subprocess
import sys
from pathlib import Path

import pytest

import fedsim
from fedsim.config import QUICKSTART, from_yaml, load_config, to_yaml
from fedsim.errors import ConfigError

TINY = Path(__file__).parent.parent / "configs" / "tiny.yaml"


def test_quickstart_loads_and_roundtrips():
    cfg = load_config()
    assert cfg.experiment == "quickstart"
    again = from_yaml(to_yaml(cfg))
    assert again == cfg  # the saved config is enough to rerun exactly


def test_overrides_apply_and_resolve_sections():
    cfg = load_config(TINY, ["rounds=7", "data.corruption.rate=0.25", "trainer.lr=0.01"])
    assert cfg.rounds == 7 and cfg.data.corruption.rate == 0.25
    assert cfg.trainer["lr"] == 0.01 and cfg.trainer["optimizer"] == "adam"  # defaults filled in


@pytest.mark.parametrize(
    "override, key",
    [
        ("roundz=3", "roundz"),
        ("rounds=abc", "rounds"),
        ("rounds=0", "rounds"),
        ("data.corruption.rate=1.5", "data.corruption.rate"),
        ("data.partition.name=zipf", "data.partition.name"),
        ("data.bogus=1", "data.bogus"),
        ("trainer.name=nope", "trainer.name"),
        ("trainer.jsd=3", "trainer.jsd"),
        ("trainer.lr=fast", "trainer.lr"),
        ("strategy.name=fedfoo", "strategy.name"),
        ("model.arch=vgg99", "model.arch"),
        ("clients_per_round=9", "clients_per_round"),
        ("data.source=cifar10", "data.root"),
    ],
)
def test_bad_values_name_their_key(override, key):
    with pytest.raises(ConfigError) as info:
        load_config(TINY, [override])
    assert str(info.value).startswith(key), str(info.value)


def test_missing_file_and_malformed_override():
    with pytest.raises(ConfigError, match="not found"):
        load_config("nope.yaml")
    with pytest.raises(ConfigError, match="key=value"):
        load_config(TINY, ["rounds"])


def test_cli_bad_config_exits_2_without_run_dir(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "fedsim.cli", "run", str(TINY), "data.corruption.rate=2",
                           "--output-dir", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "data.corruption.rate" in proc.stderr and "out of range" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_api_refuses_to_overwrite_a_run(tmp_path):
    (tmp_path / "summary.json").write_text("{}")
    with pytest.raises(ConfigError, match="--output-dir"):
        fedsim.run(load_config(TINY), tmp_path)


def test_quickstart_file_exists():
    assert QUICKSTART.is_file()
