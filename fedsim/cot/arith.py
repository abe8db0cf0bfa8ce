"""Setting (1) of our CoT-Kinetics (arXiv 2505.13408) study: a small decoder trained here on synthetic
multi-step arithmetic with an explicit chain of thought.

No large reasoning model runs offline on CPU, so (spec section 5, our choice) a tiny random-init
``LlamaForCausalLM`` learns word-level traces such as::

    Q 7 + 5 - 2 =  |  R 7 + 5 = 12 ; 12 - 2 = 10  |  A 10
    prompt            reasoning                       answer

Every number 0..value_max is one token, so the model has to learn addition/subtraction facts; a
briefly trained model sampled at temperature 1 makes real mistakes. From its own samples we build:

* ``sampled`` traces, labelled by answer correctness and step soundness (every step arithmetically
  right and chained on the problem's operands);
* ``unsound_right``: a sound trace whose intermediate result k is off by delta while step k+1 still
  writes the true result, so the error cancels and the final answer stays right;
* ``wrong_answer``: a sound trace whose final answer token is off by delta;
* ``wrong_step`` (federated client data only): one result off by delta, carried on consistently to a
  wrong final answer.

The tokenizer is a ``tokenizers`` WordLevel model wrapped in ``PreTrainedTokenizerFast`` so that
character offsets (and thus span location) work exactly as for a real model. Trained models are
cached under ``CoTConfig.cache_dir`` keyed by the training knobs, so benchmark re-runs reuse them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from fedsim.cot.config import ArithConfig, CoTConfig
from fedsim.cot.scorer import ReasoningSample
from fedsim.errors import DataPathError

SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
SYMBOLS = ("Q", "R", "A", "+", "-", "=", ";")
FORMAT_VERSION = 1  # bump when the text format or the training recipe changes (invalidates caches)


# --------------------------------------------------------------------------------------------
# Problems and traces
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Problem:
    start: int
    ops: tuple[tuple[str, int], ...]

    def results(self) -> list[int]:
        """Partial results after each step."""
        out, value = [], self.start
        for op, x in self.ops:
            value = value + x if op == "+" else value - x
            out.append(value)
        return out

    @property
    def truth(self) -> int:
        return self.results()[-1]

    def prompt(self) -> str:
        return "Q " + " ".join([str(self.start)] + [f"{op} {x}" for op, x in self.ops]) + " ="


Step = tuple[int, str, int, int]  # left, op, operand, written result


@dataclass(frozen=True)
class Trace:
    """A reasoning trace about ``problem`` with its labels; ``kind`` says where it came from."""

    problem_id: int
    problem: Problem
    steps: tuple[Step, ...]
    answer: int
    kind: str  # sampled | unsound_right | wrong_answer | reference

    @property
    def answer_ok(self) -> bool:
        return self.answer == self.problem.truth

    @property
    def sound(self) -> bool:
        """Every step is on the problem's operands, chained, and arithmetically right."""
        if len(self.steps) != len(self.problem.ops):
            return False
        left = self.problem.start
        for (l_, op, x, r), (p_op, p_x) in zip(self.steps, self.problem.ops):
            if (l_, op, x) != (left, p_op, p_x) or r != (l_ + x if op == "+" else l_ - x):
                return False
            left = r
        return True

    def sample(self) -> ReasoningSample:
        body = " ; ".join(f"{a} {op} {b} = {r}" for a, op, b, r in self.steps)
        return ReasoningSample(self.problem.prompt(), " R " + body, f" A {self.answer}")


def make_problems(n: int, cfg: ArithConfig, seed: int) -> list[Problem]:
    """``n`` seeded problems whose partial results all stay in 0..value_max."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        value = int(rng.integers(1, cfg.start_max + 1))
        start, ops = value, []
        for _ in range(int(rng.integers(cfg.steps_min, cfg.steps_max + 1))):
            x = int(rng.integers(1, cfg.operand_max + 1))
            op = "+" if rng.random() < 0.5 else "-"
            if op == "+" and value + x > cfg.value_max or op == "-" and value - x < 0:
                op = "-" if op == "+" else "+"
            value = value + x if op == "+" else value - x
            ops.append((op, x))
        out.append(Problem(start, tuple(ops)))
    return out


def reference_trace(pid: int, problem: Problem) -> Trace:
    lefts = [problem.start, *problem.results()[:-1]]
    steps = tuple((left, op, x, r) for left, (op, x), r in zip(lefts, problem.ops, problem.results()))
    return Trace(pid, problem, steps, problem.truth, "reference")


def _shift(value: int, rng: np.random.Generator, cfg: ArithConfig) -> int:
    """value +/- delta (1..perturb_max), kept inside the vocabulary."""
    deltas = [d for d in range(-cfg.perturb_max, cfg.perturb_max + 1)
              if d != 0 and 0 <= value + d <= cfg.value_max]
    return value + int(rng.choice(deltas))


def unsound_right_variant(trace: Trace, rng: np.random.Generator, cfg: ArithConfig) -> Trace | None:
    """Corrupt an intermediate result; the next step still writes the true value (error cancels)."""
    if len(trace.steps) < 2:
        return None
    k = int(rng.integers(0, len(trace.steps) - 1))
    steps = list(trace.steps)
    left, op, x, r = steps[k]
    bad = _shift(r, rng, cfg)
    steps[k] = (left, op, x, bad)
    _, op2, x2, r2 = steps[k + 1]
    steps[k + 1] = (bad, op2, x2, r2)
    return dataclasses.replace(trace, steps=tuple(steps), kind="unsound_right")


def _carried(steps: list[Step], k: int, value: int) -> list[Step]:
    """Steps after writing ``value`` at step k, each right given its (wrong) left operand."""
    out = steps[:k] + [(*steps[k][:3], value)]
    for _, op, x, _ in steps[k + 1:]:
        new = value + x if op == "+" else value - x
        out.append((value, op, x, new))
        value = new
    return out


def wrong_step_variant(trace: Trace, rng: np.random.Generator, cfg: ArithConfig) -> Trace:
    """Corrupt one result and carry the error on consistently: later steps are right given the wrong
    value, so the final answer is wrong (the typical flawed trace of a model that slipped once).
    Only corruptions whose carried values stay in the vocabulary are drawn; if none exists the
    final answer alone is changed."""
    steps = list(trace.steps)
    options = [(k, d) for k in range(len(steps)) for d in range(-cfg.perturb_max, cfg.perturb_max + 1)
               if d != 0 and all(0 <= s[3] <= cfg.value_max for s in _carried(steps, k, steps[k][3] + d))]
    if not options:
        return dataclasses.replace(wrong_answer_variant(trace, rng, cfg), kind="wrong_step")
    k, d = options[int(rng.integers(0, len(options)))]
    new = _carried(steps, k, steps[k][3] + d)
    return dataclasses.replace(trace, steps=tuple(new), answer=new[-1][3], kind="wrong_step")


def wrong_answer_variant(trace: Trace, rng: np.random.Generator, cfg: ArithConfig) -> Trace:
    return dataclasses.replace(trace, answer=_shift(trace.answer, rng, cfg), kind="wrong_answer")


# --------------------------------------------------------------------------------------------
# Tokenizer and model
# --------------------------------------------------------------------------------------------

def build_tokenizer(cfg: ArithConfig) -> PreTrainedTokenizerFast:
    """Word-level tokenizer: specials, symbols and one token per number 0..value_max."""
    vocab = {w: i for i, w in enumerate([*SPECIALS, *SYMBOLS, *map(str, range(cfg.value_max + 1))])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", pad_token="<pad>")


def build_model(cfg: ArithConfig, tok: PreTrainedTokenizerFast, seed: int) -> LlamaForCausalLM:
    config = LlamaConfig(vocab_size=len(tok), hidden_size=cfg.d_model, intermediate_size=cfg.d_ff,
                         num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
                         num_key_value_heads=cfg.n_heads, max_position_embeddings=128,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, tie_word_embeddings=True)
    with torch.random.fork_rng():  # HF initialises weights from the global generator; leave it as it was
        torch.manual_seed(seed)
        return LlamaForCausalLM(config)


def encode_training(tok: PreTrainedTokenizerFast, traces: list[Trace]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and labels; prompt tokens are masked so loss covers reasoning + answer + EOS."""
    rows, prompt_lens = [], []
    for t in traces:
        s = t.sample()
        rows.append(tok(s.prompt + s.reasoning + s.answer)["input_ids"] + [tok.eos_token_id])
        prompt_lens.append(len(tok(s.prompt)["input_ids"]))
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), tok.pad_token_id)
    labels = torch.full((len(rows), width), -100)
    for i, (row, p) in enumerate(zip(rows, prompt_lens)):
        ids[i, : len(row)] = torch.tensor(row)
        labels[i, p: len(row)] = torch.tensor(row[p:])
    return ids, labels


def train_decoder(cfg: CoTConfig, log: Callable[[str], None] = print) -> tuple[LlamaForCausalLM,
                                                                                PreTrainedTokenizerFast]:
    """Train the tiny decoder on sound reference traces for ``arith.train_steps`` AdamW steps."""
    a = cfg.arith
    tok = build_tokenizer(a)
    model = build_model(a, tok, cfg.seed)
    problems = make_problems(a.n_train, a, seed=cfg.seed * 1000 + 1)
    ids, labels = encode_training(tok, [reference_trace(i, p) for i, p in enumerate(problems)])
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 50) * (1 - s / a.train_steps))
    model.train()
    t0 = time.perf_counter()
    for step in range(a.train_steps):
        idx = torch.randint(0, len(ids), (a.batch_size,), generator=gen)
        batch, lab = ids[idx], labels[idx]
        loss = model(input_ids=batch, attention_mask=batch.ne(tok.pad_token_id), labels=lab).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % max(1, a.train_steps // 5) == 0 or step == a.train_steps - 1:
            log(f"  arith decoder step {step:5d} loss {loss.item():.4f} ({time.perf_counter() - t0:.0f}s)")
    model.eval()
    return model, tok


#: ArithConfig fields that only affect evaluation, not the trained model (left out of the cache key).
EVAL_ONLY = ("n_eval_problems", "sample_temperature", "val_fraction", "perturb_max")


def cache_key(cfg: CoTConfig) -> str:
    train = {k: v for k, v in dataclasses.asdict(cfg.arith).items() if k not in EVAL_ONLY}
    blob = json.dumps({"v": FORMAT_VERSION, "seed": cfg.seed, "arith": train}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_decoder(path: str | Path) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """Load a decoder + tokenizer saved by :func:`load_or_train` from a local folder."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise DataPathError(f"{path}: no saved CoT decoder (config.json missing)")
    model = LlamaForCausalLM.from_pretrained(path)
    model.eval()
    return model, PreTrainedTokenizerFast.from_pretrained(path)


Decoder = tuple[LlamaForCausalLM, PreTrainedTokenizerFast, dict]


def load_or_train(cfg: CoTConfig, log: Callable[[str], None] = print) -> Decoder:
    """The cached decoder for these knobs, training (and saving) it first if absent.

    Returns (model, tokenizer, info) where info has ``cached`` and the original ``train_seconds``.
    """
    folder = cfg.cache_path / f"arith-{cache_key(cfg)}"
    if (folder / "config.json").is_file():
        info = json.loads((folder / "fedsim_train.json").read_text())
        return (*load_decoder(folder), {**info, "cached": True, "path": str(folder)})
    t0 = time.perf_counter()
    model, tok = train_decoder(cfg, log)
    info = {"train_seconds": time.perf_counter() - t0, "train_steps": cfg.arith.train_steps,
            "n_params": sum(p.numel() for p in model.parameters())}
    tmp = folder.with_name(folder.name + ".tmp")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / "fedsim_train.json").write_text(json.dumps(info))
    tmp.rename(folder)  # atomic: a half-written cache is never picked up
    return model, tok, {**info, "cached": False, "path": str(folder)}


# --------------------------------------------------------------------------------------------
# Sampling the model's own traces
# --------------------------------------------------------------------------------------------

def _cache_kwargs(out) -> dict:
    """transformers >= 5.2x renamed ``past_key_values`` to ``cache``; support both spellings."""
    cache = getattr(out, "cache", None)
    return {"cache": cache} if cache is not None else {"past_key_values": out.past_key_values}


@torch.no_grad()
def sample_ids(model, prompt_ids: torch.Tensor, max_new: int, temperature: float, eos_id: int,
               gen: torch.Generator) -> torch.Tensor:
    """Ancestral sampling (greedy at temperature 0) with a KV cache for equal-length prompts [N, P]."""
    out = model(input_ids=prompt_ids, use_cache=True)
    new, done = [], torch.zeros(len(prompt_ids), dtype=torch.bool)
    for _ in range(max_new):
        if temperature == 0:  # greedy decoding
            nxt = out.logits[:, -1].argmax(-1)
        else:
            probs = torch.softmax(out.logits[:, -1].float() / temperature, dim=-1)
            nxt = torch.multinomial(probs, 1, generator=gen).squeeze(1)
        nxt = torch.where(done, torch.full_like(nxt, eos_id), nxt)
        new.append(nxt)
        done |= nxt.eq(eos_id)
        if bool(done.all()):
            break
        out = model(input_ids=nxt[:, None], use_cache=True, **_cache_kwargs(out))
    return torch.stack(new, 1)


def parse_trace(pid: int, problem: Problem, words: list[str]) -> Trace | None:
    """Read generated words ``R a op b = r ; ... A n`` back into a Trace; None if malformed."""
    if not words or "A" not in words or words[0] != "R":
        return None
    a_idx = words.index("A")
    if a_idx + 1 >= len(words) or not words[a_idx + 1].isdigit():
        return None
    steps = []
    for group in " ".join(words[1:a_idx]).split(";"):
        g = group.split()
        if len(g) != 5 or g[1] not in ("+", "-") or g[3] != "=" or not all(w.isdigit() for w in g[::2]):
            return None
        steps.append((int(g[0]), g[1], int(g[2]), int(g[4])))
    return Trace(pid, problem, tuple(steps), int(words[a_idx + 1]), "sampled")


def sample_traces(model, tok, problems: list[Problem], temperature: float, seed: int,
                  max_new: int = 48) -> tuple[list[Trace], int]:
    """The model's own traces for ``problems`` (grouped by prompt length, no padding); n malformed."""
    gen = torch.Generator().manual_seed(seed)
    prompts = [tok(p.prompt())["input_ids"] for p in problems]
    traces, malformed = [], 0
    for length in sorted({len(p) for p in prompts}):
        pids = [i for i, p in enumerate(prompts) if len(p) == length]
        new = sample_ids(model, torch.tensor([prompts[i] for i in pids]), max_new, temperature,
                         tok.eos_token_id, gen)
        for pid, row in zip(pids, new.tolist()):
            words = tok.convert_ids_to_tokens(row[: row.index(tok.eos_token_id)] if tok.eos_token_id in row
                                              else row)
            trace = parse_trace(pid, problems[pid], words)
            malformed += trace is None
            if trace is not None:
                traces.append(trace)
    return sorted(traces, key=lambda t: t.problem_id), malformed


@dataclass
class ArithEvalSet:
    """Sampled traces plus constructed variants, and the problem ids used for orientation fitting."""

    traces: list[Trace]
    val_problems: set[int]
    malformed: int
    answer_accuracy: float
    sound_rate: float


def build_eval_set(model, tok, cfg: CoTConfig) -> ArithEvalSet:
    """Sample the model's own traces on fresh problems and derive the perturbed variants."""
    a = cfg.arith
    problems = make_problems(a.n_eval_problems, a, seed=cfg.seed * 1000 + 2)
    sampled, malformed = sample_traces(model, tok, problems, a.sample_temperature, cfg.seed)
    rng = np.random.default_rng(cfg.seed + 7)
    variants: list[Trace] = []
    for t in sampled:
        if t.sound and t.answer_ok:
            v = unsound_right_variant(t, rng, a)
            variants += [v] if v is not None else []
            variants.append(wrong_answer_variant(t, rng, a))
    order = np.random.default_rng(cfg.seed + 11).permutation(len(problems))
    val = {int(i) for i in order[: int(round(a.val_fraction * len(problems)))]}
    n = max(1, len(sampled))
    return ArithEvalSet(sampled + variants, val, malformed, sum(t.answer_ok for t in sampled) / n,
                        sum(t.sound for t in sampled) / n)
