"""The one place that talks to Flower's launcher and to Ray.

``run_simulation`` is deprecated in flwr 1.42 but is the only launcher that runs a ServerApp *object*
in-process and passes ``init_args`` verbatim to ``ray.init`` (which is how ``ray.address`` attaches to
an existing cluster). If a future Flower removes it, :func:`launch` falls back to ``flwr run`` in a
subprocess with the config passed as run-config. Either way the run directory is the result.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

from fedsim.apps import ServerOutcome, build_client_app, build_server_app
from fedsim.config import ExperimentConfig, to_yaml
from fedsim.registry import STRATEGIES

log = logging.getLogger("fedsim")

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
               "TOKENIZERS_PARALLELISM": "false"}


def backend_config(cfg: ExperimentConfig) -> dict[str, Any]:
    """Flower's Ray backend config: client resources, and ``ray.init`` arguments."""
    address = cfg.ray.address or os.environ.get("RAY_ADDRESS")
    init_args: dict[str, Any] = {"logging_level": cfg.ray.logging_level, "log_to_driver": True}
    if address:
        init_args["address"] = address  # no resource arguments when attaching (Ray rejects them)
    else:
        # "local" forces a fresh local Ray: a bare ray.init() would attach to whatever cluster `ray start`
        # last left on this host (or hang on its stale address file)
        init_args["address"] = "local"
        if cfg.ray.num_cpus is not None:
            init_args["num_cpus"] = cfg.ray.num_cpus
    return {
        "client_resources": {"num_cpus": cfg.ray.num_cpus_per_client, "num_gpus": cfg.ray.num_gpus_per_client},
        "init_args": init_args,
    }


def launch(cfg: ExperimentConfig, run_dir: Path, resume: bool = False) -> dict[str, Any]:
    """Run ``cfg`` on Flower's simulation engine (Ray); return the run's summary.

    Raises the ServerApp's exception (after the run dir was marked ``failed``/``interrupted``).
    """
    from fedsim.federation import federation_data

    for k, v in OFFLINE_ENV.items():
        os.environ.setdefault(k, v)
    # Build (and cache on disk) the federation's data here, once: bad data paths fail before any run dir
    # exists, and the Ray actors load the cached tensors instead of regenerating them each.
    if getattr(STRATEGIES.get(cfg.strategy["name"], key="strategy.name"), "image_clients", True):
        federation_data(cfg)
    outcome = ServerOutcome()
    server = build_server_app(cfg, run_dir, resume, outcome)
    client = build_client_app()
    try:
        from flwr.simulation import run_simulation
    except ImportError:  # pragma: no cover - removed in a future Flower
        return launch_flwr_run(cfg, run_dir, resume)
    quiet_flower()
    # Ray's notice about a future default; the current one (CPU-only actors see no GPU) is what we want
    warnings.filterwarnings("ignore", message="Tip: In future versions of Ray", category=FutureWarning)
    sigint = _SigintWatch()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            run_simulation(server_app=server, client_app=client, num_supernodes=cfg.num_clients,
                           backend_name="ray", backend_config=backend_config(cfg), verbose_logging=False)
    except BaseException as exc:
        # Ctrl-C, or the engine failed. A Ctrl-C sent to the process group kills Ray's own processes too, and
        # the engine can fail on their loss before the driver's KeyboardInterrupt is raised: an interrupt too.
        ctrl_c = isinstance(exc, KeyboardInterrupt)
        _close_unfinished(outcome, ctrl_c or sigint.seen, f"simulation engine: {exc}", force=ctrl_c)
        _shutdown_ray(timeout=15)
        if sigint.seen and not ctrl_c:
            raise KeyboardInterrupt from exc
        raise
    finally:
        sigint.restore()
    _shutdown_ray()
    if outcome.summary is None and outcome.recorder is not None:  # the engine returned without the ServerApp
        reason = "the simulation engine stopped before the ServerApp finished"
        _close_unfinished(outcome, sigint.seen, reason)
        raise KeyboardInterrupt() if sigint.seen else RuntimeError(f"{reason} (see Flower's log above)")
    if outcome.error is not None:
        raise outcome.error
    if outcome.summary is None:
        raise RuntimeError("the simulation ended before the ServerApp ran (see Flower's log above)")
    return outcome.summary


def _close_unfinished(outcome: ServerOutcome, interrupted: bool, reason: str, force: bool = False) -> None:
    """Give the run dir its final status when the ServerApp thread did not write one (``force``: on Ctrl-C,
    also when it did, since the thread may still be running): ``interrupted`` or ``failed``."""
    rec = outcome.recorder
    if rec is None or (outcome.summary is not None and not force):
        return
    if interrupted:
        rec.interrupt()
    else:
        rec.abandon("failed", reason)


class _SigintWatch:
    """Notes that SIGINT arrived (then raises KeyboardInterrupt as Python's default handler does), so a run
    that ends with an engine error caused by the signal is recorded as interrupted. Only installed over
    Python's default handler, in the main thread; :meth:`restore` puts the previous handler back."""

    def __init__(self) -> None:
        self.seen, self._previous = False, None
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame) -> None:
        self.seen = True
        signal.default_int_handler(signum, frame)

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


class _DropRunSimulationDeprecation(logging.Filter):
    """fedsim calls ``run_simulation`` on purpose (``flwr run`` is the other supported path); the
    deprecation notice Flower logs on every run says nothing actionable to a fedsim user."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "run_simulation" not in record.getMessage()


def quiet_flower() -> None:
    """Flower logs every simulation step at DEBUG; keep its warnings, drop the chatter."""
    flwr_log = logging.getLogger("flwr")
    if flwr_log.level < logging.INFO and not os.environ.get("FEDSIM_VERBOSE"):
        flwr_log.setLevel(logging.WARNING)
    if not any(isinstance(f, _DropRunSimulationDeprecation) for f in flwr_log.filters):
        flwr_log.addFilter(_DropRunSimulationDeprecation())


def _shutdown_ray(timeout: float | None = None) -> None:
    """Disconnect this driver from Ray (a local cluster it started stops; an attached one keeps running).

    With ``timeout`` (after an interrupt, when Ray's own processes may already be gone) the shutdown runs
    in a daemon thread and is abandoned after that many seconds.
    """
    import threading

    import ray

    def stop() -> None:
        try:
            if ray.is_initialized():
                ray.shutdown()
        except Exception:  # pragma: no cover - best effort on the way out
            pass

    if timeout is None:
        stop()
        return
    th = threading.Thread(target=stop, daemon=True)
    th.start()
    th.join(timeout)


def launch_flwr_run(cfg: ExperimentConfig, run_dir: Path, resume: bool = False) -> dict[str, Any]:
    """Fallback: ``flwr run . --stream`` with the resolved config written into the run dir."""
    import json

    run_dir.mkdir(parents=True, exist_ok=True)
    cfg_path = run_dir / "requested-config.yaml"
    cfg_path.write_text(to_yaml(cfg))
    rc = f'config="{cfg_path}" output-dir="{run_dir}"' + (f' resume="{run_dir}"' if resume else "")
    fed = (f"num-supernodes={cfg.num_clients} client-resources-num-cpus={cfg.ray.num_cpus_per_client} "
           f"client-resources-num-gpus={cfg.ray.num_gpus_per_client}")
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-m", "flwr.cli.app", "run", str(root), "--stream", "--run-config", rc,
                    "--federation-config", fed], check=True, env={**os.environ, **OFFLINE_ENV})
    return json.loads((run_dir / "summary.json").read_text())
