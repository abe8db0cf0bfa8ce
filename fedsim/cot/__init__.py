"""CoT-Kinetics (Bi et al., arXiv 2505.13408): scoring the soundness of reasoning from hidden-state dynamics.

``scorer`` computes the energy and the MaxProb / PPL / Entropy / CoE baselines from one forward of
any transformers causal LM; ``metrics`` has AUROC / AUPR / FPR@95; ``arith`` and ``smollm`` are the
two evaluation settings; ``selection`` is the client-side keep/weight step for federated training.
Heavy modules (``arith``, ``smollm``) are imported on demand.
"""

from fedsim.cot.config import CoTConfig, ScorerConfig, SelectionConfig
from fedsim.cot.scorer import ENERGIES, ReasoningSample, fit_orientations, score_sample, score_samples
from fedsim.cot.selection import score_and_select

__all__ = ["ENERGIES", "CoTConfig", "ReasoningSample", "ScorerConfig", "SelectionConfig", "fit_orientations",
           "score_and_select", "score_sample", "score_samples"]
