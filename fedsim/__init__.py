"""fedsim: federated simulation on Flower + Ray for trustworthy FL and (M)LLM research.

>>> import fedsim
>>> cfg = fedsim.load_config("configs/quickstart.yaml", overrides=["rounds=2"])
>>> result = fedsim.run(cfg)   # result.summary, result.metrics, result.run_dir
"""

from fedsim.api import RunResult, resume, run
from fedsim.config import ExperimentConfig, load_config
from fedsim.errors import ConfigError, DataPathError, FedsimInputError

__all__ = ["ConfigError", "DataPathError", "ExperimentConfig", "FedsimInputError", "RunResult", "load_config",
           "resume", "run"]
__version__ = "0.1.0"
