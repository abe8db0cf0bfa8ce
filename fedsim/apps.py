"""The Flower ServerApp and ClientApp that every fedsim run uses.

The same two objects serve ``fedsim run`` / the Python API (through :mod:`fedsim.launch`) and
``flwr run .`` (``[tool.flwr.app.components]`` in pyproject.toml points at :data:`server_app` and
:data:`client_app`). The experiment config travels inside every message as YAML, so a client on any Ray
worker or node can rebuild its data, model and trainer from it.
"""

from __future__ import annotations

import logging
import os
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from fedsim.config import ExperimentConfig, from_yaml, load_config
from fedsim.errors import FedsimInputError
from fedsim.progress import RoundProgress
from fedsim.registry import STRATEGIES, load_plugins
from fedsim.results import RunRecorder, default_run_dir
from fedsim.server import ServerContext, load_server_checkpoint, prune_client_states, run_rounds

log = logging.getLogger("fedsim")

# ---------------------------------------------------------------------------------------------- client

_CONFIGS: dict[str, ExperimentConfig] = {}


def _config_of(text: str) -> ExperimentConfig:
    if text not in _CONFIGS:
        if len(_CONFIGS) > 8:
            _CONFIGS.clear()
        _CONFIGS[text] = from_yaml(text)
    return _CONFIGS[text]


def _handler(name: str):
    def handle(msg: Message, context: Context) -> Message:
        from fedsim.client import run_action

        conf = dict(msg.content["config"])
        cfg = _config_of(conf.pop("fedsim-config"))
        pid = int(context.node_config["partition-id"])
        reply = run_action(name, cfg, pid, conf, dict(msg.content.array_records))
        content = RecordDict({"metrics": MetricRecord({**reply.metrics, "partition-id": pid}), **reply.arrays})
        if reply.config:
            content["config"] = ConfigRecord(reply.config)
        return Message(content=content, reply_to=msg)

    handle.__name__ = f"handle_{name.replace('.', '_')}"
    return handle


def build_client_app() -> ClientApp:
    """A ClientApp with one Flower handler per registered client action."""
    import fedsim.actions  # noqa: F401  (registers the built-in actions)
    import fedsim.actions_extra  # noqa: F401  (method-specific regularisers, e.g. FCCL's)
    from fedsim.client import ACTIONS

    load_plugins()
    app = ClientApp()
    for name in sorted(ACTIONS):
        category, _, act = name.partition(".")
        register = getattr(app, category)
        register(act)(_handler(name)) if act else register()(_handler(name))
    return app


# ---------------------------------------------------------------------------------------------- server


@dataclass
class ServerOutcome:
    """Filled by the ServerApp's main (it runs in a thread or another process): the launcher reads it."""

    summary: dict[str, Any] | None = None
    error: BaseException | None = None
    recorder: RunRecorder | None = None


def serve(grid: Grid, cfg: ExperimentConfig, run_dir: Path, resume: bool, outcome: ServerOutcome) -> None:
    """Run the experiment over ``grid``, writing the run dir; never lets an exception escape silently."""
    start = 1
    if resume:
        completed, server_state = load_server_checkpoint(run_dir)
        prune_client_states(run_dir, completed)
        recorder = RunRecorder.reopen(run_dir, cfg, completed)
        start = completed + 1
    else:
        recorder, server_state = RunRecorder.create(run_dir, cfg), {}
    outcome.recorder = recorder
    ctx = ServerContext(grid, cfg, run_dir, recorder)
    progress = RoundProgress(cfg, start)
    status, error = "failed", None
    try:
        scfg = cfg.strategy_config()
        strategy = STRATEGIES.get(scfg.name, key="strategy.name")(scfg, ctx)
        ctx.connect()
        if server_state:
            strategy.load_state_dict(server_state)
        strategy.setup()
        with progress:
            run_rounds(strategy, ctx, start, progress.update)
        status = "completed"
    except KeyboardInterrupt as exc:
        status, outcome.error = "interrupted", exc
    except BaseException as exc:  # recorded, then re-raised by the launcher
        error = "".join(traceback.format_exception_only(exc)).strip()
        log.error("run failed:\n%s", traceback.format_exc())
        outcome.error = exc
    finally:
        outcome.summary = recorder.finish(status, error)


def build_server_app(cfg: ExperimentConfig, run_dir: Path, resume: bool = False,
                     outcome: ServerOutcome | None = None) -> ServerApp:
    """A ServerApp bound to one experiment (the Python API / ``fedsim run`` path)."""
    app = ServerApp()
    result = outcome if outcome is not None else ServerOutcome()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        serve(grid, cfg, run_dir, resume, result)

    return app


def _from_run_config(run_config: dict[str, Any]) -> tuple[ExperimentConfig, Path, bool]:
    """``flwr run .``: the experiment comes from ``[tool.flwr.app.config]`` / ``--run-config``."""
    resume = str(run_config.get("resume", "") or "")
    if resume:
        cfg = load_config(Path(resume) / "config.yaml")
        return cfg, Path(resume), True
    path = str(run_config.get("config", "") or "") or None
    overrides = str(run_config.get("overrides", "") or "").split()
    cfg = load_config(path, overrides)
    out = str(run_config.get("output-dir", "") or "")
    return cfg, Path(out) if out else default_run_dir(cfg), False


server_app = ServerApp()


@server_app.main()
def _flwr_main(grid: Grid, context: Context) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        cfg, run_dir, resume = _from_run_config(dict(context.run_config))
    except FedsimInputError as exc:
        log.error("%s", exc)
        raise
    outcome = ServerOutcome()
    serve(grid, cfg, run_dir.resolve(), resume, outcome)
    log.warning("fedsim run dir: %s (status %s)", run_dir, (outcome.summary or {}).get("status"))
    if outcome.error is not None:
        raise outcome.error


client_app = build_client_app()
