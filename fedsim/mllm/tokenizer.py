"""A word-level tokenizer for the procedural multimodal world, built offline.

Part of fedsim's MLLM ground (LoRASculpt, arXiv 2503.16843; tuning taxonomy, arXiv 2503.04543). A
real LLaVA uses a sentencepiece/BPE tokenizer trained on web text; our world has ~80 words, so a
``tokenizers`` WordLevel model (whitespace split) is exact and tiny. It is wrapped in
``PreTrainedTokenizerFast`` so it saves/loads with ``save_pretrained`` / ``from_pretrained`` like any
Hugging Face tokenizer, and the trainer code is the same one that runs with a real checkpoint's
tokenizer loaded from a local directory.
"""

from __future__ import annotations

from collections.abc import Sequence

from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from fedsim.mllm.world import vocabulary

PAD, UNK, BOS, EOS, IMAGE = "<pad>", "<unk>", "<s>", "</s>", "<image>"
SPECIALS = (PAD, UNK, BOS, EOS, IMAGE)


def build_tokenizer(words: Sequence[str] | None = None) -> PreTrainedTokenizerFast:
    """Special tokens first (ids 0..4), then ``words`` (default: the world's vocabulary) in order."""
    vocab = {w: i for i, w in enumerate(dict.fromkeys([*SPECIALS, *(words or vocabulary())]))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, unk_token=UNK, bos_token=BOS,
                                   eos_token=EOS, extra_special_tokens={"image_token": IMAGE})
    fast.padding_side = "right"
    return fast
