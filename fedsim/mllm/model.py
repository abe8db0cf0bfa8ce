"""A small multimodal LLM from a real transformers architecture, plus batching, loss and accuracy.

Part of fedsim's MLLM ground (LoRASculpt, arXiv 2503.16843; tuning taxonomy, arXiv 2503.04543). The
papers tune LLaVA-1.5-7B (CLIP ViT-L/14 + Vicuna). We keep the architecture class and shrink it:
``LlavaForConditionalGeneration`` with a 2-layer CLIP vision tower (16-pixel patches: one image token
per scene cell) and a 2-layer Llama language model (d = 128), about 0.5M parameters, built from
configs with random weights (no weights can be downloaded here) and "pretrained" on the world's
upstream mix by :mod:`fedsim.mllm.pretrain`. The same :class:`MLLM` wrapper loads a real checkpoint
from a local directory (``model.path=...``) through the same class, so every trainer runs
unchanged on it.

Prompt format (our choice, LLaVA-like without a chat template): ``<s> <image>*K question answer </s>``,
where K is the number of vision features the projector emits. The loss is next-token cross-entropy on
the answer and ``</s>`` only. Accuracy is exact match of the answer under teacher forcing (every answer
token is the arg-max), which equals greedy decoding of the answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from fedsim.errors import DataPathError
from fedsim.mllm.tokenizer import build_tokenizer
from fedsim.mllm.world import MMDataset

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IGNORE = -100


@dataclass
class MLLMConfig:
    """Architecture of the random-init model, or ``path`` to a local checkpoint (which wins)."""

    path: str | None = None
    image_size: int = 32
    patch_size: int = 16
    vision_hidden: int = 64
    vision_layers: int = 2
    vision_heads: int = 2
    vision_intermediate: int = 128
    text_hidden: int = 128
    text_layers: int = 2
    text_heads: int = 4
    text_intermediate: int = 256
    max_positions: int = 128
    seed: int = 0


@dataclass
class MLLM:
    """A LLaVA-style model with the tokenizer and image preprocessing it needs.

    ``model`` may be replaced by a peft wrapper during tuning; :meth:`base` always returns the
    underlying ``LlavaForConditionalGeneration``.
    """

    model: nn.Module
    tokenizer: PreTrainedTokenizerBase
    image_size: int
    image_mean: tuple[float, ...] = CLIP_MEAN
    image_std: tuple[float, ...] = CLIP_STD
    cache: dict = field(default_factory=dict, repr=False)

    # -- structure ------------------------------------------------------------------------------
    def base(self) -> LlavaForConditionalGeneration:
        return next(m for m in self.model.modules() if isinstance(m, LlavaForConditionalGeneration))

    @property
    def image_token_id(self) -> int:
        return int(self.base().config.image_token_id)

    @property
    def num_image_tokens(self) -> int:
        cfg = self.base().config
        vc = cfg.vision_config
        n = (vc.image_size // vc.patch_size) ** 2
        return n + 1 if cfg.vision_feature_select_strategy == "full" else n

    # -- data -----------------------------------------------------------------------------------
    def encode(self, data: MMDataset) -> dict[str, torch.Tensor]:
        """Token ids (right-padded), answer labels and uint8 images for the whole set, cached per set."""
        key = id(data)
        hit = self.cache.get(key)
        if hit is not None and hit[0] is data:
            return hit[1]
        tok = self.tokenizer
        q = tok(data.questions, add_special_tokens=False)["input_ids"]
        a = tok(data.answers, add_special_tokens=False)["input_ids"]
        prefix = ([tok.bos_token_id] if tok.bos_token_id is not None else []) + [self.image_token_id] * \
            self.num_image_tokens
        eos = [tok.eos_token_id] if tok.eos_token_id is not None else []
        seqs = [prefix + qi + ai + eos for qi, ai in zip(q, a)]
        length = max(map(len, seqs))
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        ids = torch.full((len(seqs), length), pad, dtype=torch.long)
        labels = torch.full((len(seqs), length), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(seqs), length), dtype=torch.long)
        for i, (s, qi) in enumerate(zip(seqs, q)):
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
            start = len(prefix) + len(qi)
            labels[i, start : len(s)] = ids[i, start : len(s)]
        enc = {"input_ids": ids, "attention_mask": mask, "labels": labels, "images": data.images}
        self.cache = {key: (data, enc)}  # one set at a time: no unbounded growth
        return enc

    def batch(self, enc: dict[str, torch.Tensor], idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """Rows ``idx`` of an encoded set, trimmed to their longest sequence, images preprocessed."""
        mask = enc["attention_mask"][idx]
        length = int(mask.sum(1).max())
        return {"input_ids": enc["input_ids"][idx, :length], "attention_mask": mask[:, :length],
                "labels": enc["labels"][idx, :length], "pixel_values": self.pixels(enc["images"][idx])}

    def pixels(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255.0
        if x.shape[-1] != self.image_size:
            size = (self.image_size, self.image_size)
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        mean = torch.tensor(self.image_mean).view(1, -1, 1, 1)
        std = torch.tensor(self.image_std).view(1, -1, 1, 1)
        return ((x - mean) / std).to(next(self.model.parameters()).dtype)

    # -- forward --------------------------------------------------------------------------------
    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits aligned with ``batch['labels']`` (a prompt-tuning prefix, if any, is cut off)."""
        out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         pixel_values=batch["pixel_values"])
        return out.logits[:, -batch["labels"].shape[1]:]

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return answer_loss(self.logits(batch), batch["labels"])

    @torch.no_grad()
    def correct(self, data: MMDataset, batch_size: int = 256) -> torch.Tensor:
        """Per-sample exact match of the answer (bool tensor of length ``len(data)``)."""
        was_training = self.model.training
        self.model.eval()
        enc = self.encode(data)
        out = torch.empty(len(data), dtype=torch.bool)
        for s in range(0, len(data), batch_size):
            idx = torch.arange(s, min(s + batch_size, len(data)))
            b = self.batch(enc, idx)
            out[idx] = answer_correct(self.logits(b), b["labels"])
        self.model.train(was_training)
        return out

    def accuracy(self, data: MMDataset, batch_size: int = 256) -> dict[str, float]:
        """Exact-match answer accuracy per question family (fractions in [0, 1])."""
        correct = self.correct(data, batch_size)
        fams = sorted(set(data.families))
        fam = torch.tensor([fams.index(f) for f in data.families])
        return {f: float(correct[fam == i].float().mean()) for i, f in enumerate(fams)}

    def overall_accuracy(self, data: MMDataset, batch_size: int = 256) -> float:
        return float(self.correct(data, batch_size).float().mean())


def answer_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy on the labelled (answer) positions."""
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=IGNORE)


def answer_correct(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per row: every labelled token is the arg-max of the preceding position's logits."""
    pred, tgt = logits[:, :-1].argmax(-1), labels[:, 1:]
    return ((pred == tgt) | (tgt == IGNORE)).all(1)


# -- construction ---------------------------------------------------------------------------------
def llava_config(cfg: MLLMConfig, tokenizer: PreTrainedTokenizerBase) -> LlavaConfig:
    vision = CLIPVisionConfig(hidden_size=cfg.vision_hidden, intermediate_size=cfg.vision_intermediate,
                              num_hidden_layers=cfg.vision_layers, num_attention_heads=cfg.vision_heads,
                              image_size=cfg.image_size, patch_size=cfg.patch_size, num_channels=3)
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=cfg.text_hidden,
                       intermediate_size=cfg.text_intermediate, num_hidden_layers=cfg.text_layers,
                       num_attention_heads=cfg.text_heads, num_key_value_heads=cfg.text_heads,
                       max_position_embeddings=cfg.max_positions, pad_token_id=tokenizer.pad_token_id,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                       tie_word_embeddings=False)
    return LlavaConfig(vision_config=vision, text_config=text,
                       image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
                       vision_feature_layer=-1, vision_feature_select_strategy="default",
                       tie_word_embeddings=False)


def build_mllm(cfg: MLLMConfig) -> MLLM:
    """A random-init tiny LLaVA for the world's vocabulary, or a local checkpoint when ``cfg.path``."""
    if cfg.path:
        return load_mllm(cfg.path)
    tok = build_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = LlavaForConditionalGeneration(llava_config(cfg, tok))
    return MLLM(model, tok, cfg.image_size)


def save_mllm(mllm: MLLM, path: str | Path) -> None:
    """Model, tokenizer and image normalisation in Hugging Face's layout."""
    path = Path(path)
    mllm.base().save_pretrained(path)
    mllm.tokenizer.save_pretrained(path)
    pre = {"image_mean": list(mllm.image_mean), "image_std": list(mllm.image_std),
           "size": {"height": mllm.image_size, "width": mllm.image_size},
           "image_processor_type": "CLIPImageProcessor"}
    (path / "preprocessor_config.json").write_text(json.dumps(pre, indent=2))


def load_mllm(path: str | Path) -> MLLM:
    """Load a LLaVA checkpoint and its tokenizer from a local directory (never from the Hub).

    Image mean/std come from ``preprocessor_config.json`` when present (CLIP's otherwise); the image
    size from the vision config, so any LLaVA-architecture checkpoint works with the world's images.
    """
    path = Path(path)
    if not (path / "config.json").is_file():
        raise DataPathError(f"model.path: {str(path)!r} is not a checkpoint directory (no config.json)")
    model = LlavaForConditionalGeneration.from_pretrained(path, local_files_only=True)
    try:
        tok = PreTrainedTokenizerFast.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise DataPathError(f"model.path: no tokenizer in {str(path)!r}: {exc}") from exc
    mean, std = CLIP_MEAN, CLIP_STD
    pre = path / "preprocessor_config.json"
    if pre.is_file():
        meta = json.loads(pre.read_text())
        mean, std = tuple(meta.get("image_mean", mean)), tuple(meta.get("image_std", std))
    return MLLM(model, tok, int(model.config.vision_config.image_size), mean, std)


def clone_mllm(mllm: MLLM) -> MLLM:
    """An independent copy (deep-copied weights, shared immutable tokenizer)."""
    import copy

    return MLLM(copy.deepcopy(mllm.model), mllm.tokenizer, mllm.image_size, mllm.image_mean, mllm.image_std)
