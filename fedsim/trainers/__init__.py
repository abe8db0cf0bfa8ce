"""Client-local trainers, registered by name in :data:`fedsim.registry.TRAINERS`."""

import importlib

from fedsim.trainers.base import Trainer, TrainerConfig
from fedsim.trainers.supervised import SupervisedTrainer

# Method trainers register themselves on import; optional ones may be absent while being built.
for _mod in ("fedsim.trainers.dcl", "fedsim.trainers.sce"):
    try:
        importlib.import_module(_mod)
    except ModuleNotFoundError as exc:
        if exc.name != _mod:
            raise

__all__ = ["SupervisedTrainer", "Trainer", "TrainerConfig"]
