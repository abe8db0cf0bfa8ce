"""LoRASculpt: sparse LoRA updates plus a conflict-mitigation regulariser (CMR).

Paper: Liang, Huang, Wan, Yang, Ye, "LoRASculpt: Sculpting LoRA for Harmonizing General and
Specialized Knowledge in Multimodal Large Language Models", arXiv 2503.16843 (CVPR 2025). Behaviour
follows the official code (github.com/LiangJian24/LoRASculpt, ``LoRASculpt_Trainer.py``):

* **Sparse updates.** At global step ``mask_step`` (official ``STEP_THRESHOLD`` = 100), before that
  step's forward pass, every ``lora_A`` and every ``lora_B`` tensor keeps its own top
  ⌊``keep_ratio`` · numel⌋ entries by absolute value (``AB_PRESERVE_RATIO`` = 0.1) and zeros the
  rest. From then on the entries outside the kept set are reset to zero **before every step**.
  The optimiser state is not masked.
* **CMR.** For each LoRA pair on ``q_proj``/``k_proj``/``v_proj`` with frozen pretrained ``W``:
  M_pre = W / ‖W‖_F, S = |1 / ln(|M_pre| + 1e-15)|, M = tanh(ω S) (ω = 1, no gradient), and
  L_CMR = λ · mean over pairs of ‖M ⊙ (B A)‖_F with λ = 1e-3, without the α/r scale and unsquared.
  Since |M_pre| < 1, S (and M ∈ [0, 1)) grows with the *relative* magnitude of a pretrained weight,
  so updates are discouraged where general knowledge is stored. M is scale-invariant in W.

Departures / our choices (spec ``lorasculpt.md`` §4, §6, §7):

* The official loop masks at the start of each step, so the adapter saved after the final optimiser
  step carries one unmasked update. We re-apply the mask once after the last step;
  ``paper_code=True`` reproduces the official behaviour (no final re-mask).
* ``use_mask`` / ``use_cmr`` switch the two parts off for the ablation arms (LoRA + mask,
  LoRA + CMR); with both off the trainer is plain LoRA.
* Defaults follow our small CPU setting (r = 8, α = 16); the official r = 32, α = 64, lr 2e-4 and
  a fully trainable projector at lr 2e-5 are all configurable (``r``, ``alpha``, ``lr``,
  ``train_projector``, ``projector_lr``). ``mask_step`` should be set to ≈10% of the total steps of
  a short run (the benchmark does).
* The paper's connector variant (β · CMR on the projector) is not active in the released code and is
  not implemented.
* Federated (our choice): masks are computed per client at its own local step ``mask_step`` and stay
  in client state; after receiving aggregated adapters the client re-applies its own mask
  (``remask_after_aggregation``), since FedAvg of A and B destroys each client's sparsity pattern.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from peft.tuners.lora import LoraLayer

from fedsim.errors import ConfigError
from fedsim.mllm.tuning import LoRA, LoRATuningConfig
from fedsim.mllm.world import MMDataset
from fedsim.registry import TRAINERS


@dataclass
class LoRASculptConfig(LoRATuningConfig):
    name: str = "lorasculpt"
    use_mask: bool = True
    mask_step: int = 100  # official STEP_THRESHOLD
    keep_ratio: float = 0.1  # official AB_PRESERVE_RATIO
    use_cmr: bool = True
    cmr_lambda: float = 1e-3  # official CMR_LAMBDA
    omega: float = 1.0  # official OMEGA
    cmr_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj")
    #: reproduce the official code exactly: no re-mask after the last optimiser step
    paper_code: bool = False
    #: federated: re-apply the client's own mask after loading aggregated adapters (our choice)
    remask_after_aggregation: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self.cmr_targets = tuple(self.cmr_targets)
        if not 0 < self.keep_ratio <= 1:
            raise ConfigError(f"trainer.keep_ratio must be in (0, 1], got {self.keep_ratio}")
        if self.mask_step < 0 or self.cmr_lambda < 0:
            raise ConfigError("trainer.mask_step and trainer.cmr_lambda must be >= 0")


# -- sparse masks ---------------------------------------------------------------------------------
def topk_magnitude_mask(t: torch.Tensor, keep_ratio: float) -> torch.Tensor:
    """Boolean mask of the ⌊keep_ratio · numel⌋ largest-|t| entries (exactly that many)."""
    k = math.floor(keep_ratio * t.numel())
    mask = torch.zeros(t.numel(), dtype=torch.bool, device=t.device)
    if k > 0:
        mask[t.detach().abs().flatten().topk(k).indices] = True
    return mask.view_as(t)


def lora_factors(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """Every trainable ``lora_A`` / ``lora_B`` weight by parameter name."""
    return {n: p for n, p in model.named_parameters()
            if p.requires_grad and (".lora_A." in n or ".lora_B." in n)}


def compute_masks(model: torch.nn.Module, keep_ratio: float) -> dict[str, torch.Tensor]:
    return {n: topk_magnitude_mask(p, keep_ratio) for n, p in lora_factors(model).items()}


@torch.no_grad()
def apply_masks(model: torch.nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zero every LoRA entry outside its kept set (parameters only; optimiser state untouched)."""
    params = lora_factors(model)
    for n, m in masks.items():
        params[n].mul_(m)


def expected_product_density(s_a: float, s_b: float, r: int) -> float:
    """E[density of BA] for independent element densities of A and B: 1 - (1 - s_A s_B)^r."""
    return 1.0 - (1.0 - s_a * s_b) ** r


# -- conflict-mitigation regulariser ---------------------------------------------------------------
@torch.no_grad()
def cmr_weight(w: torch.Tensor, omega: float = 1.0) -> torch.Tensor:
    """M = tanh(ω · |1 / ln(|W / ‖W‖_F| + 1e-15)|), in [0, 1), larger where |W| is relatively large."""
    m_pre = w / torch.linalg.norm(w)
    s = torch.abs(1.0 / torch.log(m_pre.abs() + 1e-15))
    return torch.tanh(omega * s)


def cmr_loss(pairs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], lam: float) -> torch.Tensor:
    """λ · mean over (M, A, B) pairs of ‖M ⊙ (B A)‖_F (no α/r scale, not squared)."""
    terms = [torch.linalg.norm(m * (b @ a)) for m, a, b in pairs]
    return lam * torch.stack(terms).mean()


# -- trainer --------------------------------------------------------------------------------------
@TRAINERS.register("lorasculpt")
class LoRASculpt(LoRA):
    """LoRA + top-k magnitude masks of A and B from step T + CMR on q/k/v (arXiv 2503.16843)."""

    name, taxonomy = "lorasculpt", "reparameterisation/calibration"
    Config = LoRASculptConfig

    def prepare(self) -> None:
        super().prepare()
        self.masks: dict[str, torch.Tensor] | None = None
        self._cmr: list[tuple[torch.Tensor, LoraLayer]] = []
        if self.cfg.use_cmr:
            self._cmr = [(cmr_weight(mod.base_layer.weight, self.cfg.omega), mod)
                         for name, mod in self.mllm.model.named_modules()
                         if isinstance(mod, LoraLayer) and name.split(".")[-1] in self.cfg.cmr_targets]
            if not self._cmr:
                raise ConfigError(f"trainer.cmr_targets {self.cfg.cmr_targets} match no LoRA layer")

    def before_step(self, data: MMDataset) -> None:
        if not self.cfg.use_mask:
            return
        if self.masks is None and self.global_step >= self.cfg.mask_step:
            self.masks = compute_masks(self.mllm.model, self.cfg.keep_ratio)
        if self.masks is not None:
            apply_masks(self.mllm.model, self.masks)

    def extra_loss(self) -> torch.Tensor | None:
        if not self._cmr:
            return None
        pairs = [(m, mod.lora_A[a].weight, mod.lora_B[a].weight) for m, mod in self._cmr
                 for a in mod.active_adapters]
        return cmr_loss(pairs, self.cfg.cmr_lambda)

    def after_fit(self) -> None:
        if self.masks is not None and not self.cfg.paper_code:
            apply_masks(self.mllm.model, self.masks)

    def on_global_weights(self) -> None:
        if self.masks is not None and self.cfg.remask_after_aggregation:
            apply_masks(self.mllm.model, self.masks)

    def nonzero_fraction(self) -> float:
        """Fraction of non-zero LoRA-factor entries (1.0 before the mask step)."""
        ps = list(lora_factors(self.mllm.model).values())
        return sum(int((p != 0).sum()) for p in ps) / sum(p.numel() for p in ps)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "masks": self.masks}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.masks = state.get("masks")
