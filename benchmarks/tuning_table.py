"""MLLM tuning table: E / F / O for every tuning family and the LoRASculpt ablation.

Papers: Huang et al., arXiv 2503.04543 (taxonomy, E/F/O) and Liang et al., arXiv 2503.16843
(LoRASculpt). A tiny LLaVA (CLIP + Llama from configs) is pretrained on the procedural world's
upstream families (cached under ``$FEDSIM_ARTIFACTS``, default ``artifacts/``), then tuned on the
shifted downstream digit-reading families by each method, centralized and with 4 federated clients
(non-IID over question types, FedAvg of the trainable tensors, :mod:`fedsim.mllm.federated`). For each
method: downstream and upstream accuracy after tuning, E, F, O (points), Avg = ½(down + up), the
number of trainable scalars and wall time. The federated row reports the *global* (server-averaged)
model; LoRASculpt clients keep their own masks, so the global adapter is the dense average of sparse
client adapters.

    python benchmarks/tuning_table.py [--config configs/tuning/table.yaml] [--settings centralized,federated]
    # split across processes and merge:
    python benchmarks/tuning_table.py --settings centralized --json /tmp/c.json
    python benchmarks/tuning_table.py --merge /tmp/c.json /tmp/f.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from fedsim.errors import ConfigError
from fedsim.mllm import lorasculpt  # noqa: F401 - registers the lorasculpt trainer
from fedsim.mllm.federated import FederatedConfig, run_federated
from fedsim.mllm.metrics import EFOMetric
from fedsim.mllm.model import MLLM, MLLMConfig, clone_mllm
from fedsim.mllm.pretrain import PretrainConfig, pretrained_mllm
from fedsim.mllm.tuning import TuningConfig, build_trainer
from fedsim.mllm.world import WorldConfig, build_dataset
from fedsim.registry import TRAINERS

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "tuning_table.md"


@dataclass
class DataSizes:
    n_downstream_train: int = 2000
    n_test_per_family: int = 80


@dataclass
class TableConfig:
    seed: int = 0
    world: WorldConfig = field(default_factory=WorldConfig)
    model: MLLMConfig = field(default_factory=MLLMConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    data: DataSizes = field(default_factory=DataSizes)
    central_steps: int = 150
    mask_step_fraction: float = 0.1
    federated: FederatedConfig = field(default_factory=FederatedConfig)
    methods: list[dict[str, Any]] = field(default_factory=list)


def load_table_config(path: Path) -> TableConfig:
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    sections = {"world": WorldConfig, "model": MLLMConfig, "pretrain": PretrainConfig, "data": DataSizes,
                "federated": FederatedConfig}
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            kwargs[key] = sections[key](**value) if key in sections else value
        except TypeError as exc:
            raise ConfigError(f"{key}: {exc}") from exc
    try:
        return TableConfig(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def method_config(spec: dict[str, Any], total_steps: int, frac: float) -> tuple[str, TuningConfig]:
    spec = dict(spec)
    label = spec.pop("label", spec.get("name"))
    cls = TRAINERS.get(spec.get("name", ""), "methods[].name")
    if "mask_step" in {f.name for f in dataclasses.fields(cls.Config)} and "mask_step" not in spec:
        spec["mask_step"] = max(1, round(frac * total_steps))
    try:
        return label, cls.Config(**spec)
    except TypeError as exc:
        raise ConfigError(f"methods[{label}]: {exc}") from exc


def run_arm(base: MLLM, cfg: TuningConfig, setting: str, table: TableConfig, train, metric, before):
    t0 = time.time()
    if setting == "centralized":
        central = dataclasses.replace(cfg, steps=table.central_steps)
        trainer = build_trainer(central, clone_mllm(base), table.seed)
        trainer.fit(train)
    else:
        trainer, _ = run_federated(base, cfg, train, table.federated)
    wall = time.time() - t0
    r = metric.compute(before, metric.evaluate(trainer.mllm))
    return {"taxonomy": trainer.taxonomy, "down": r.downstream_after, "up": r.upstream_after, "E": r.E,
            "F": r.F, "O": r.O, "avg": r.avg, "params": trainer.trainable_count(), "wall": wall}


def run(table: TableConfig, settings: list[str]) -> dict[str, Any]:
    torch.set_num_threads(1)  # tiny models: extra threads only spin on a shared CPU
    t0 = time.time()
    base = pretrained_mllm(table.model, table.world, table.pretrain)
    print(f"pretrained model ready in {time.time() - t0:.0f}s", flush=True)
    w = table.world
    train = build_dataset(w, w.downstream, table.data.n_downstream_train, "train", seed=table.seed + 11)
    n_test = table.data.n_test_per_family
    up_test = build_dataset(w, w.upstream, n_test * len(w.upstream), "test", seed=1)
    metric = EFOMetric.from_families(up_test, build_dataset(w, w.downstream, n_test * len(w.downstream),
                                                            "test", seed=2))
    before = metric.evaluate(base)
    base_row = {"up": 100 * sum(before[0].values()) / len(before[0]),
                "down": 100 * sum(before[1].values()) / len(before[1])}
    rows = []
    for setting in settings:
        total = table.central_steps if setting == "centralized" else table.federated.rounds * \
            table.federated.local_steps
        for spec in table.methods:
            label, cfg = method_config(spec, total, table.mask_step_fraction)
            row = {"method": label, "setting": setting,
                   **run_arm(base, cfg, setting, table, train, metric, before)}
            rows.append(row)
            print(fmt_row(row), flush=True)
    return {"base": base_row, "rows": rows, "config": OmegaConf.to_yaml(OmegaConf.structured(table))}


HEADER = ("| setting | method | taxonomy | downstream acc | upstream acc | E | F | O | Avg | trainable "
          "| wall s |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|")


def fmt_row(r: dict[str, Any]) -> str:
    return (f"| {r['setting']} | {r['method']} | {r['taxonomy']} | {r['down']:.1f} | {r['up']:.1f} | "
            f"{r['E']:+.1f} | {r['F']:+.1f} | {r['O']:+.1f} | {r['avg']:.1f} | {r['params']:,} "
            f"| {r['wall']:.0f} |")


def render(result: dict[str, Any], elapsed: float) -> str:
    b = result["base"]
    lines = ["# MLLM tuning table (E / F / O)", "",
             f"Pretrained (zero-shot) model: downstream {b['down']:.1f}, upstream {b['up']:.1f} "
             "(accuracy points).",
             "E = downstream gain, F = upstream change, O = E + F, Avg = ½(downstream + upstream); "
             "means over question families. `python benchmarks/tuning_table.py`", "", HEADER]
    lines += [fmt_row(r) for r in result["rows"]]
    lines += ["", f"Total benchmark time: {elapsed:.0f} s.", "", "Config:", "", "```yaml",
              result["config"].rstrip(), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "tuning" / "table.yaml")
    ap.add_argument("--settings", default="centralized,federated")
    ap.add_argument("--json", type=Path, help="also write raw results here (for --merge)")
    ap.add_argument("--merge", type=Path, nargs="+", help="merge --json files into the table (no run)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    t0 = time.time()
    if args.merge:
        parts = [json.loads(p.read_text()) for p in args.merge]
        configs = list(dict.fromkeys(p["config"] for p in parts))  # one YAML document per distinct run
        result = {**parts[0], "rows": [r for p in parts for r in p["rows"]], "config": "---\n".join(configs)}
        elapsed = max(p.get("elapsed", 0.0) for p in parts)
    else:
        settings = [s.strip() for s in args.settings.split(",")]
        bad = [s for s in settings if s not in ("centralized", "federated")]
        if bad:
            raise ConfigError(f"--settings: unknown {bad}; choose centralized and/or federated")
        result = run(load_table_config(args.config), settings)
        elapsed = time.time() - t0
        result["elapsed"] = elapsed
        if args.json:
            args.json.write_text(json.dumps(result))
    text = render(result, elapsed)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
