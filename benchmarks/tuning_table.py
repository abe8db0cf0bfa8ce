"""MLLM tuning table: E / F / O for every tuning family and the LoRASculpt ablation.

Papers: Huang et al., arXiv 2503.04543 (taxonomy, E/F/O) and Liang et al., arXiv 2503.16843
(LoRASculpt). A tiny LLaVA (CLIP + Llama from configs) is pretrained on the procedural world's
upstream families (cached under ``$FEDSIM_ARTIFACTS``, default ``artifacts/``), then tuned on the
shifted downstream digit-reading families by each method, centralized and with 4 federated clients
(non-IID over question types, aggregation of the trainable tensors). For each method: downstream and
upstream accuracy after tuning, E, F, O (points), Avg = ½(down + up), the number of trainable scalars
and wall time. The federated row reports the *global* (server-aggregated) model; LoRASculpt clients keep
their own masks, so the global adapter is the union of sparse client adapters.

Federated rows run through Flower + Ray by default (``federated_engine: flower``: one ``fedsim.run`` of
the ``fedadapter`` strategy per arm, run dirs under ``runs/tuning_table/``; wall time then includes Ray's
start and the workers' imports, ~1 min per arm) or through the in-process reference loop
(``--engine loop``, :func:`fedsim.mllm.federated.run_federated`); both compute the same global adapter. A
method entry with ``aggregation: masked`` is a federated-only arm with mask-aware averaging.

    python benchmarks/tuning_table.py [--config configs/tuning/table.yaml] [--settings centralized,federated]
    # rerun one setting and keep the other's rows from the stored raw results (writes the whole table):
    python benchmarks/tuning_table.py --settings federated --reuse benchmarks/results/tuning_table.json
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
from fedsim.mllm.flower import downstream_train_set, efo_metric
from fedsim.mllm.model import MLLM, MLLMConfig, clone_mllm
from fedsim.mllm.pretrain import PretrainConfig, default_artifacts_dir, pretrained_mllm
from fedsim.mllm.tuning import TuningConfig, build_trainer
from fedsim.mllm.world import WorldConfig
from fedsim.registry import TRAINERS

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "tuning_table.md"
#: hand-written reading of the results, appended to the table when present
NOTES = OUT.with_suffix(".notes.md")
ENGINES = ("flower", "loop")


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
    #: ``flower`` (fedsim.run of the fedadapter strategy on Ray) or ``loop`` (in-process reference)
    federated_engine: str = "flower"
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
    spec.pop("aggregation", None)
    cls = TRAINERS.get(spec.get("name", ""), "methods[].name")
    if "mask_step" in {f.name for f in dataclasses.fields(cls.Config)} and "mask_step" not in spec:
        spec["mask_step"] = max(1, round(frac * total_steps))
    try:
        return label, cls.Config(**spec)
    except TypeError as exc:
        raise ConfigError(f"methods[{label}]: {exc}") from exc


def run_arm(base: MLLM, cfg: TuningConfig, setting: str, table: TableConfig, train, metric, before,
            aggregation: str = "fedavg"):
    t0 = time.time()
    if setting == "centralized":
        trainer = build_trainer(dataclasses.replace(cfg, steps=table.central_steps), clone_mllm(base), table.seed)
        trainer.fit(train)
        r = metric.compute(before, metric.evaluate(trainer.mllm))
        scores = {"down": r.downstream_after, "up": r.upstream_after, "E": r.E, "F": r.F, "O": r.O, "avg": r.avg}
    elif table.federated_engine == "loop":
        fed = dataclasses.replace(table.federated, aggregation=aggregation)
        trainer, _ = run_federated(base, cfg, train, fed)
        r = metric.compute(before, metric.evaluate(trainer.mllm))
        scores = {"down": r.downstream_after, "up": r.upstream_after, "E": r.E, "F": r.F, "O": r.O, "avg": r.avg}
    else:
        trainer = build_trainer(cfg, clone_mllm(base), table.seed)  # for the name and parameter count
        scores = run_flower(table, cfg, aggregation)
    return {"taxonomy": trainer.taxonomy, **scores, "params": trainer.trainable_count(), "wall": time.time() - t0}


def flower_config(table: TableConfig, cfg: TuningConfig, aggregation: str):
    """The ExperimentConfig of one federated arm: the fedadapter strategy with this table's settings."""
    from fedsim.config import build_config

    fed = table.federated
    method = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "steps"}
    strategy = {"name": "fedadapter", "aggregation": aggregation, "local_steps": fed.local_steps,
                "alpha": fed.alpha, "n_train": table.data.n_downstream_train,
                "n_test_per_family": table.data.n_test_per_family, "client_eval": False,
                "artifacts_dir": str(default_artifacts_dir().resolve()), "method": method,
                "world": dataclasses.asdict(table.world), "mllm": dataclasses.asdict(table.model),
                "pretrain": dataclasses.asdict(table.pretrain)}
    raw = {"experiment": "tuning-table", "seed": fed.seed, "rounds": fed.rounds, "num_clients": fed.num_clients,
           "eval_every": fed.rounds, "data": {"source": "digits", "val_size": 0, "partition": {"name": "iid"}},
           "model": {"arch": "cnn", "width": 0.25}, "strategy": strategy, "ray": {"num_cpus_per_client": 1}}
    return build_config(OmegaConf.create(raw), [])


def run_flower(table: TableConfig, cfg: TuningConfig, aggregation: str) -> dict[str, float]:
    """One Flower + Ray run of the arm; the scores of the global adapter after the last round."""
    import fedsim

    if table.seed != table.federated.seed:
        raise ConfigError("federated.seed: the Flower engine cuts client shards from the pool of seed; "
                          "set federated.seed equal to seed")
    out = ROOT / "runs" / "tuning_table" / time.strftime("%Y%m%d-%H%M%S")
    result = fedsim.run(flower_config(table, cfg, aggregation), output_dir=out)
    if result.summary["status"] != "completed":
        raise RuntimeError(f"federated arm failed: {result.summary.get('error')}")
    f = result.summary["final"]
    print(f"  run dir {result.run_dir}", flush=True)
    return {"down": f["down_acc"], "up": f["up_acc"], "E": f["E"], "F": f["F"], "O": f["O"], "avg": f["avg"]}


def run(table: TableConfig, settings: list[str]) -> dict[str, Any]:
    torch.set_num_threads(1)  # tiny models: extra threads only spin on a shared CPU
    t0 = time.time()
    base = pretrained_mllm(table.model, table.world, table.pretrain)
    print(f"pretrained model ready in {time.time() - t0:.0f}s", flush=True)
    train = downstream_train_set(table.world, table.data.n_downstream_train, table.seed)
    metric = efo_metric(table.world, table.data.n_test_per_family)  # the sets the fedadapter strategy uses
    before = metric.evaluate(base)
    base_row = {"up": 100 * sum(before[0].values()) / len(before[0]),
                "down": 100 * sum(before[1].values()) / len(before[1])}
    rows = []
    for setting in settings:
        total = table.central_steps if setting == "centralized" else table.federated.rounds * \
            table.federated.local_steps
        for spec in table.methods:
            if setting == "centralized" and "aggregation" in spec:
                continue  # an aggregation variant is a federated-only arm
            label, cfg = method_config(spec, total, table.mask_step_fraction)
            agg = spec.get("aggregation", table.federated.aggregation)
            row = {"method": label, "setting": setting,
                   **run_arm(base, cfg, setting, table, train, metric, before, agg)}
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
    lines += ["", f"Total benchmark time (sum over the merged runs): {elapsed:.0f} s.", ""]
    if NOTES.is_file():
        lines += [NOTES.read_text().rstrip(), ""]
    lines += ["Config:", "", "```yaml", result["config"].rstrip(), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "tuning" / "table.yaml")
    ap.add_argument("--settings", default="centralized,federated")
    ap.add_argument("--engine", choices=ENGINES, help="federated engine (default: the config's federated_engine)")
    ap.add_argument("--json", type=Path, help="also write raw results here (for --merge / --reuse)")
    ap.add_argument("--merge", type=Path, nargs="+", help="merge --json files into the table (no run)")
    ap.add_argument("--reuse", type=Path, help="raw results whose rows of settings not rerun are kept; "
                    "rewritten with the new rows")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    t0 = time.time()
    if args.merge:
        result = merge([json.loads(p.read_text()) for p in args.merge])
    else:
        settings = [s.strip() for s in args.settings.split(",")]
        bad = [s for s in settings if s not in ("centralized", "federated")]
        if bad:
            raise ConfigError(f"--settings: unknown {bad}; choose centralized and/or federated")
        table = load_table_config(args.config)
        if args.engine:
            table.federated_engine = args.engine
        if table.federated_engine not in ENGINES:
            raise ConfigError(f"federated_engine: {table.federated_engine!r}; choose one of {list(ENGINES)}")
        result = run(table, settings)
        result["elapsed"] = time.time() - t0
        if args.reuse:
            old = json.loads(args.reuse.read_text())
            kept = {**old, "rows": [r for r in old["rows"] if r["setting"] not in settings]}
            result = merge([kept, result])
            args.json = args.json or args.reuse
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    text = render(result, result.get("elapsed", time.time() - t0))
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from several runs: rows in order, one YAML document per distinct config."""
    configs = list(dict.fromkeys(c for p in parts for c in p["config"].split("---\n")))
    return {**parts[0], "rows": [r for p in parts for r in p["rows"]], "config": "---\n".join(configs),
            "elapsed": sum(p.get("elapsed", 0.0) for p in parts)}


if __name__ == "__main__":
    sys.exit(main())
