"""The reasoning span is located correctly in tokenized text (fast: offsets; slow: incremental)."""

import string

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizer, PreTrainedTokenizerFast

from fedsim.cot.arith import Problem, reference_trace
from fedsim.cot.scorer import ReasoningSample, locate_spans


def test_word_level_spans_hold_exactly_the_reasoning_and_answer_words(tiny_tok):
    trace = reference_trace(0, Problem(7, (("+", 5), ("-", 2))))
    sample = trace.sample()
    spans = locate_spans(tiny_tok, sample)
    words = tiny_tok.convert_ids_to_tokens(spans.input_ids)
    assert words[0] == "<s>"
    assert words[spans.reasoning] == "R 7 + 5 = 12 ; 12 - 2 = 10".split()
    assert words[spans.answer] == ["A", "10"]
    assert spans.answer.stop == len(words)
    assert locate_spans(tiny_tok, sample, method="incremental") == spans


@pytest.fixture(scope="module")
def bpe_tok() -> PreTrainedTokenizerFast:
    core = Tokenizer(models.BPE(unk_token=None))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    corpus = ["Question: what is 12 + 30? Let me add: 12 + 30 = 42. Answer: 42"] * 20
    core.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, show_progress=False,
                                                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=core)


def test_subword_spans_follow_character_offsets(bpe_tok):
    sample = ReasoningSample("Question: what is 12 + 30?\n", "Let me add: 12 + 30 = 42.", " Answer: 42")
    spans = locate_spans(bpe_tok, sample)
    text = sample.prompt + sample.reasoning + sample.answer
    offsets = bpe_tok(text, return_offsets_mapping=True)["offset_mapping"]
    r0, a0 = len(sample.prompt), len(sample.prompt) + len(sample.reasoning)
    assert spans.reasoning.stop > spans.reasoning.start and spans.answer.stop > spans.answer.start
    assert all(r0 <= offsets[i][0] < a0 for i in range(spans.reasoning.start, spans.reasoning.stop))
    assert all(offsets[i][0] >= a0 for i in range(spans.answer.start, spans.answer.stop))
    assert offsets[spans.reasoning.start - 1][0] < r0
    assert bpe_tok.decode(spans.input_ids[spans.reasoning]) == sample.reasoning
    assert bpe_tok.decode(spans.input_ids[spans.answer]) == sample.answer
    assert locate_spans(bpe_tok, sample, method="incremental") == spans


class CharTokenizer(PreTrainedTokenizer):
    """A slow (pure Python) character tokenizer that wraps text in BOS ... EOS."""

    def __init__(self, **kwargs):
        self._vocab = {"<s>": 0, "</s>": 1, **{c: i + 2 for i, c in enumerate(string.printable)}}
        self._inv = {i: c for c, i in self._vocab.items()}
        super().__init__(bos_token="<s>", eos_token="</s>", **kwargs)

    @property
    def vocab_size(self) -> int:
        return len(self._vocab)

    def get_vocab(self) -> dict[str, int]:
        return dict(self._vocab)

    def _tokenize(self, text, **kwargs):
        return list(text)

    def _convert_token_to_id(self, token):
        return self._vocab[token]

    def _convert_id_to_token(self, index):
        return self._inv[index]

    def build_inputs_with_special_tokens(self, ids, ids_b=None):
        return [0, *ids, 1]


def test_slow_tokenizer_uses_incremental_tokenisation():
    tok = CharTokenizer()
    assert not tok.is_fast
    sample = ReasoningSample("Q: 2+3?", " 2+3=5.", " A: 5")
    spans = locate_spans(tok, sample)
    ids = spans.input_ids
    assert ids[0] == 0 and ids[-1] == 1  # BOS and the trailing EOS stay outside both spans
    assert "".join(tok.convert_ids_to_tokens(ids[spans.reasoning])) == sample.reasoning
    assert "".join(tok.convert_ids_to_tokens(ids[spans.answer])) == sample.answer
