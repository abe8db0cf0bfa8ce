"""Client-local tuning methods for the small MLLM, one trainer per family of the tuning taxonomy.

Taxonomy and metrics: Huang et al., "Keeping Yourself is Important in Downstream Tuning Multimodal
Large Language Model", arXiv 2503.04543 (families from github.com/WenkeHuang/Awesome-MLLM-Tuning).
Each trainer declares ``taxonomy`` ("family/subfamily") so reports can group them:

=====================  ==============================  ==================================================
name                   taxonomy                        what trains
=====================  ==============================  ==================================================
``full_ft``            full                            LLM + projector (vision tower frozen, LLaVA stage 2)
``bias_norm``          selective/static                biases and norm weights of LLM + projector (BitFit+LN)
``last_k``             selective/static                the last ``k`` LLM decoder layers, final norm, head
``topk_grad``          selective/iterative             top ``ratio`` of LLM weights by |grad| (GPS-like)
``bottleneck_adapter`` additive/adapter                a Pfeiffer bottleneck after each LLM MLP
``prompt_tuning``      additive/prompt                 ``num_virtual_tokens`` soft prompts (peft)
``lora``               reparameterisation/structure    LoRA on all LLM linear layers (peft)
``dora``               reparameterisation/calibration  DoRA on the same layers (peft ``use_dora``)
``lorasculpt``         reparameterisation/calibration  see :mod:`fedsim.mllm.lorasculpt`
=====================  ==============================  ==================================================

Our choices (the survey publishes no recipe): AdamW, weight decay 0, cosine schedule with 3% warm-up
and gradient clipping at 1.0 (the LoRASculpt recipe, arXiv 2503.16843) for every method so they
differ only in *what* trains; the vision tower is frozen everywhere; the projector trains only when
``train_projector`` (default off, so "LLM-only" methods really touch only the LLM). ``topk_grad``
scores |grad| summed over ``score_batches`` batches of the first ``fit`` call's data (GPS scores once
before training) and keeps a global top-``ratio`` over LLM weights; it needs weight decay 0 because
AdamW's decoupled decay would move the frozen entries. Bottleneck adapters are Pfeiffer-style (after
the FFN only, ReLU, zero-initialised up-projection so tuning starts at the pretrained function). In
federated use the cosine schedule restarts in every round (each ``fit`` call is one schedule).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from peft import LoraConfig, PromptTuningConfig, TaskType, get_peft_model
from torch import nn
from transformers import get_cosine_schedule_with_warmup

from fedsim.errors import ConfigError
from fedsim.mllm.model import MLLM
from fedsim.mllm.world import MMDataset
from fedsim.registry import TRAINERS
from fedsim.trainers.base import Trainer, TrainerConfig, seeded_generator

#: LLM linear layers of a LLaVA (transformers >= 5 naming): LoRA/DoRA targets.
LLM_LINEAR = r".*language_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"
PROJECTOR = "multi_modal_projector"


def is_llm_param(name: str) -> bool:
    """LLM = the language model and its head (not the vision tower, not the projector)."""
    return "language_model" in name or name.endswith("lm_head.weight")


@dataclass
class TuningConfig(TrainerConfig):
    """Knobs shared by every tuning method (method configs subclass this)."""

    name: str = "full_ft"
    lr: float = 1e-3
    batch_size: int = 32
    optimizer: str = "adamw"
    weight_decay: float = 0.0
    #: > 0: exactly this many optimiser steps per ``fit`` call (otherwise ``epochs`` passes)
    steps: int = 0
    schedule: str = "cosine"  # cosine | constant
    warmup_ratio: float = 0.03
    grad_clip: float = 1.0
    train_projector: bool = False
    #: learning rate of the projector when it trains (None: ``lr``)
    projector_lr: float | None = None

    def __post_init__(self) -> None:
        if self.schedule not in ("cosine", "constant"):
            raise ConfigError(f"trainer.schedule: {self.schedule!r}; choose cosine or constant")
        if self.optimizer != "adamw":
            raise ConfigError(f"trainer.optimizer: MLLM tuning uses adamw, got {self.optimizer!r}")
        if self.lr <= 0 or self.batch_size < 1:
            raise ConfigError("trainer.lr must be > 0 and trainer.batch_size >= 1")


class TuningTrainer(Trainer):
    """The shared step loop; a method overrides :meth:`prepare` and optionally the step hooks."""

    name = "tuning"
    taxonomy = "abstract"
    Config: ClassVar[type[TuningConfig]] = TuningConfig

    def __init__(self, cfg: TuningConfig, model: MLLM, seed: int) -> None:
        super().__init__(cfg, model.model, seed)
        self.mllm = model
        self.global_step = 0
        self.prepare()
        self.model = self.mllm.model  # a peft method replaced it

    # -- hooks ----------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Choose (or add) the trainable parameters; may wrap ``self.mllm.model``."""
        raise NotImplementedError

    def before_step(self, data: MMDataset) -> None:
        """Called before every forward pass (LoRASculpt masks here)."""

    def extra_loss(self) -> torch.Tensor | None:
        """A regulariser added to the task loss (LoRASculpt's CMR)."""
        return None

    def after_fit(self) -> None:
        """Called once after the last optimiser step of a ``fit`` call."""

    def on_global_weights(self) -> None:
        """Called after a federated client loaded aggregated weights (re-apply client-local masks)."""

    # -- parameters -----------------------------------------------------------------------------
    def trainable(self) -> list[tuple[str, nn.Parameter]]:
        return [(n, p) for n, p in self.mllm.model.named_parameters() if p.requires_grad]

    def trainable_count(self) -> int:
        """Number of scalar weights this method can change."""
        return sum(p.numel() for _, p in self.trainable())

    def _freeze_all(self) -> None:
        for p in self.mllm.model.parameters():
            p.requires_grad_(False)

    def _unfreeze_projector(self) -> None:
        if self.cfg.train_projector:
            for n, p in self.mllm.model.named_parameters():
                if PROJECTOR in n:
                    p.requires_grad_(True)

    def param_groups(self) -> list[dict[str, Any]]:
        proj = [p for n, p in self.trainable() if PROJECTOR in n]
        rest = [p for n, p in self.trainable() if PROJECTOR not in n]
        groups = [{"params": rest, "lr": self.cfg.lr}] if rest else []
        if proj:
            groups.append({"params": proj, "lr": self.cfg.projector_lr or self.cfg.lr})
        if not groups:
            raise ConfigError(f"trainer.name={self.name}: this configuration trains no parameters")
        return groups

    def optimizer(self) -> torch.optim.Optimizer:
        if self._opt is None or not self.cfg.persistent_optimizer:
            self._opt = torch.optim.AdamW(self.param_groups(), weight_decay=self.cfg.weight_decay)
        return self._opt

    # -- loop -----------------------------------------------------------------------------------
    def num_steps(self, n: int, epochs: int) -> int:
        if self.cfg.steps > 0:
            return self.cfg.steps
        return epochs * max(1, n // self.cfg.batch_size)

    def fit(self, data: MMDataset, epochs: int = 1, round_idx: int = 0,
            regularizer: Any | None = None) -> dict[str, float]:
        """Train on ``data``; returns mean task loss, mean extra loss and ``num-examples``."""
        steps = self.num_steps(len(data), epochs)
        self.mllm.model.train()
        opt = self.optimizer()
        sched = make_schedule(opt, self.cfg, steps)
        enc = self.mllm.encode(data)
        g = seeded_generator(self.seed, round_idx, self.global_step)
        params = [p for _, p in self.trainable()]
        task_sum, extra_sum = 0.0, 0.0
        for idx in cycle_batches(len(data), self.cfg.batch_size, steps, g):
            self.before_step(data)
            task = self.mllm.loss(self.mllm.batch(enc, idx))
            extra = self.extra_loss()
            loss = task if extra is None else task + extra
            if regularizer is not None:
                loss = loss + regularizer(self.mllm)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if self.cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
            opt.step()
            sched.step()
            self.global_step += 1
            task_sum += float(task.detach())
            extra_sum += 0.0 if extra is None else float(extra.detach())
        self.after_fit()
        return {"train_loss": task_sum / max(steps, 1), "extra_loss": extra_sum / max(steps, 1),
                "num-examples": float(len(data))}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "global_step": self.global_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.global_step = int(state.get("global_step", 0))


def cycle_batches(n: int, batch_size: int, steps: int, g: torch.Generator):
    """``steps`` index batches, reshuffling at every pass over the ``n`` samples."""
    bs = min(batch_size, n)
    done = 0
    while done < steps:
        perm = torch.randperm(n, generator=g)
        for i in range(0, n - bs + 1, bs):
            if done == steps:
                return
            yield perm[i : i + bs]
            done += 1


def make_schedule(opt: torch.optim.Optimizer, cfg: TuningConfig, steps: int):
    if cfg.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    return get_cosine_schedule_with_warmup(opt, math.ceil(cfg.warmup_ratio * steps), max(steps, 1))


# -- full fine-tuning ------------------------------------------------------------------------------
@TRAINERS.register("full_ft")
class FullFT(TuningTrainer):
    """Full fine-tuning of the LLM and projector (vision tower frozen, as in LLaVA's stage 2)."""

    name, taxonomy = "full_ft", "full"

    def prepare(self) -> None:
        for n, p in self.mllm.model.named_parameters():
            p.requires_grad_("vision_tower" not in n)


# -- selective -----------------------------------------------------------------------------------
@TRAINERS.register("bias_norm")
class BiasNorm(TuningTrainer):
    """Only biases and normalisation weights of the LLM and projector (BitFit + LayerNorm tuning)."""

    name, taxonomy = "bias_norm", "selective/static"

    def prepare(self) -> None:
        self._freeze_all()
        for n, p in self.mllm.model.named_parameters():
            if (is_llm_param(n) or PROJECTOR in n) and (n.endswith(".bias") or "norm" in n.split(".")[-2]):
                p.requires_grad_(True)
        self._unfreeze_projector()


@dataclass
class LastKConfig(TuningConfig):
    name: str = "last_k"
    k: int = 1
    include_head: bool = True


@TRAINERS.register("last_k")
class LastK(TuningTrainer):
    """The last ``k`` decoder layers of the LLM, its final norm and (optionally) the LM head."""

    name, taxonomy = "last_k", "selective/static"
    Config = LastKConfig

    def prepare(self) -> None:
        n_layers = self.mllm.base().config.text_config.num_hidden_layers
        if not 1 <= self.cfg.k <= n_layers:
            raise ConfigError(f"trainer.k must be in [1, {n_layers}], got {self.cfg.k}")
        keep = {f"language_model.layers.{i}." for i in range(n_layers - self.cfg.k, n_layers)}
        self._freeze_all()
        for n, p in self.mllm.model.named_parameters():
            final = "language_model.norm." in n or (self.cfg.include_head and n.endswith("lm_head.weight"))
            if final or any(k in n for k in keep):
                p.requires_grad_(True)
        self._unfreeze_projector()


@dataclass
class TopKGradConfig(TuningConfig):
    name: str = "topk_grad"
    #: fraction of LLM weights kept trainable (0.1 ~ the LoRA r=8 budget of the default model)
    ratio: float = 0.1
    score_batches: int = 4


@TRAINERS.register("topk_grad")
class TopKGrad(TuningTrainer):
    """Top-``ratio`` LLM weights by accumulated |gradient| (GPS-style selection, then masked updates)."""

    name, taxonomy = "topk_grad", "selective/iterative"
    Config = TopKGradConfig

    def prepare(self) -> None:
        if not 0 < self.cfg.ratio <= 1:
            raise ConfigError(f"trainer.ratio must be in (0, 1], got {self.cfg.ratio}")
        if self.cfg.weight_decay != 0:
            raise ConfigError("trainer.weight_decay must be 0 for topk_grad (decay moves frozen weights)")
        self._freeze_all()
        for n, p in self.mllm.model.named_parameters():
            p.requires_grad_(is_llm_param(n))
        self._unfreeze_projector()
        self.masks: dict[str, torch.Tensor] | None = None
        self._hooks: list[Any] = []

    def trainable_count(self) -> int:
        if self.masks is None:
            return sum(math.floor(self.cfg.ratio * p.numel()) for n, p in self.trainable() if is_llm_param(n))
        proj = sum(p.numel() for n, p in self.trainable() if PROJECTOR in n)
        return int(sum(int(m.sum()) for m in self.masks.values())) + proj

    def score(self, data: MMDataset) -> None:
        """Sum |grad| over a few batches, keep the global top-``ratio`` entries of LLM weights."""
        enc = self.mllm.encode(data)
        named = [(n, p) for n, p in self.trainable() if is_llm_param(n)]
        acc = {n: torch.zeros_like(p) for n, p in named}
        g = seeded_generator(self.seed, "score")
        for idx in cycle_batches(len(data), self.cfg.batch_size, self.cfg.score_batches, g):
            self.mllm.model.zero_grad(set_to_none=True)
            self.mllm.loss(self.mllm.batch(enc, idx)).backward()
            for n, p in named:
                if p.grad is not None:
                    acc[n] += p.grad.abs()
        self.mllm.model.zero_grad(set_to_none=True)
        flat = torch.cat([a.flatten() for a in acc.values()])
        k = max(1, math.floor(self.cfg.ratio * flat.numel()))
        thresh = flat.topk(k).values.min()
        self.masks = {n: (a >= thresh) for n, a in acc.items()}
        params = dict(named)
        self._hooks = [params[n].register_hook(lambda grad, m=m: grad * m) for n, m in self.masks.items()]

    def before_step(self, data: MMDataset) -> None:
        if self.masks is None:
            self.score(data)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "masks": self.masks}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if state.get("masks") is not None:
            for h in self._hooks:
                h.remove()
            self.masks = state["masks"]
            params = dict(self.trainable())
            self._hooks = [params[n].register_hook(lambda grad, m=m: grad * m) for n, m in self.masks.items()]


# -- additive --------------------------------------------------------------------------------------
class Bottleneck(nn.Module):
    """h + up(relu(down(h))), up zero-initialised: the adapter starts as the identity."""

    def __init__(self, dim: int, width: int, g: torch.Generator) -> None:
        super().__init__()
        self.down = nn.Linear(dim, width)
        self.up = nn.Linear(width, dim)
        with torch.no_grad():
            self.down.weight.normal_(0.0, dim ** -0.5, generator=g)
            self.down.bias.zero_()
            self.up.weight.zero_()
            self.up.bias.zero_()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.up(torch.relu(self.down(h)))


def _adapter_hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
    return module.adapter(output)


@dataclass
class AdapterConfig(TuningConfig):
    name: str = "bottleneck_adapter"
    width: int = 32


@TRAINERS.register("bottleneck_adapter")
class BottleneckAdapter(TuningTrainer):
    """A bottleneck adapter after every LLM MLP (Pfeiffer placement), registered as ``mlp.adapter``."""

    name, taxonomy = "bottleneck_adapter", "additive/adapter"
    Config = AdapterConfig

    def prepare(self) -> None:
        self._freeze_all()
        dim = self.mllm.base().config.text_config.hidden_size
        g = seeded_generator(self.seed, "adapter")
        for name, mod in self.mllm.model.named_modules():
            if re.fullmatch(r".*language_model\.layers\.\d+\.mlp", name) and not hasattr(mod, "adapter"):
                mod.adapter = Bottleneck(dim, self.cfg.width, g)
                mod.register_forward_hook(_adapter_hook)
        self._unfreeze_projector()


@dataclass
class PromptConfig(TuningConfig):
    name: str = "prompt_tuning"
    lr: float = 1e-2
    num_virtual_tokens: int = 8


@TRAINERS.register("prompt_tuning")
class PromptTuning(TuningTrainer):
    """Soft prompt vectors prepended to the LLM input (peft ``PromptTuningConfig``)."""

    name, taxonomy = "prompt_tuning", "additive/prompt"
    Config = PromptConfig

    def prepare(self) -> None:
        pc = PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=self.cfg.num_virtual_tokens)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.mllm.model = get_peft_model(self.mllm.model, pc)
        self._unfreeze_projector()


# -- reparameterisation ----------------------------------------------------------------------------
@dataclass
class LoRATuningConfig(TuningConfig):
    name: str = "lora"
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: str = LLM_LINEAR
    use_dora: bool = False


@TRAINERS.register("lora")
class LoRA(TuningTrainer):
    """LoRA on every linear layer of the LLM (peft); projector optional, vision tower and head frozen."""

    name, taxonomy = "lora", "reparameterisation/structure"
    Config = LoRATuningConfig

    def prepare(self) -> None:
        lc = LoraConfig(r=self.cfg.r, lora_alpha=self.cfg.alpha, lora_dropout=self.cfg.dropout,
                        target_modules=self.cfg.target_modules, use_dora=self.cfg.use_dora)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.mllm.model = get_peft_model(self.mllm.model, lc)
        self._unfreeze_projector()


@dataclass
class DoRATuningConfig(LoRATuningConfig):
    name: str = "dora"
    use_dora: bool = True


@TRAINERS.register("dora")
class DoRA(LoRA):
    """DoRA (weight-decomposed LoRA, peft ``use_dora=True``) on the LLM linear layers."""

    name, taxonomy = "dora", "reparameterisation/calibration"
    Config = DoRATuningConfig


def build_trainer(cfg: TuningConfig, mllm: MLLM, seed: int) -> TuningTrainer:
    """The trainer named by ``cfg.name`` around ``mllm`` (which it modifies in place)."""
    cls = TRAINERS.get(cfg.name, "trainer.name")
    if not issubclass(cls, TuningTrainer):
        raise ConfigError(f"trainer.name: {cfg.name!r} is not an MLLM tuning method")
    if not isinstance(cfg, cls.Config):
        raise ConfigError(f"trainer: config {type(cfg).__name__} does not fit {cfg.name!r} "
                          f"(expects {cls.Config.__name__})")
    return cls(cfg, mllm, seed)
