"""CoT-Kinetics (Bi et al., arXiv 2505.13408): scoring the soundness of reasoning from hidden-state dynamics.

``scorer`` computes the energy and the MaxProb / PPL / Entropy / CoE baselines from one forward of
any transformers causal LM; ``metrics`` has AUROC / AUPR / FPR@95; ``arith`` and ``smollm`` are the
two evaluation settings; ``selection`` is the client-side keep/weight step and ``flower`` the client
node action of the federated use (strategy ``cot_select``). Names are imported on first use, so the
strategy registry (imported by every run) only pays for ``fedsim.cot.config``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CoTConfig": "config", "ScorerConfig": "config", "SelectionConfig": "config", "FederatedConfig": "config",
    "ENERGIES": "scorer", "ReasoningSample": "scorer", "fit_orientations": "scorer", "score_sample": "scorer",
    "score_samples": "scorer", "score_and_select": "selection",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'fedsim.cot' has no attribute {name!r}")
    return getattr(importlib.import_module(f"fedsim.cot.{_EXPORTS[name]}"), name)
