"""Configuration of a Federated MAS run with EPEAgent (arXiv 2503.08175): every knob, with defaults.

The lead's ``fedsim.config`` owns the final experiment schema; this dataclass is what the ``agents``
package consumes, and :meth:`MASConfig.from_dict` validates a plain mapping (e.g. the ``mas:`` block of a
YAML config) with errors that name the bad key.

``epe`` variants (the benchmark's columns):
- ``off``: every agent retrieves the user's full profile, forwarded messages pass unchanged (the paper's
  EPE-off baseline);
- ``label``: stage A label filter + stage B rule sanitiser (the paper's EPE, placed in each client);
- ``label+relevance``: as ``label`` plus an embedding top-k / threshold filter in stage A;
- ``pii``: a generic PII-redaction baseline: full profile retrieved, then PII detectors (langchain
  ``PIIMiddleware`` detectors plus our regexes, or Presidio) applied to context and messages; no labels.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from fedsim.errors import ConfigError

EPE_MODES = ("off", "label", "label+relevance", "pii")
LLM_BACKENDS = ("context", "smollm2", "transformers", "openai")
EMBEDDERS = ("minilm", "fake")
PII_BACKENDS = ("regex", "presidio")


@dataclass
class LLMConfig:
    """Which chat model backs every agent (one model object per process)."""

    backend: str = "context"
    model_path: str | None = None  # transformers: a local folder; smollm2: defaults to the packaged one
    gguf_file: str | None = None
    base_url: str | None = None  # openai: e.g. http://127.0.0.1:8000/v1
    model: str | None = None  # openai: model name served at base_url
    api_key: str | None = None
    max_new_tokens: int = 48
    timeout_s: float = 60.0


@dataclass
class EPEConfig:
    """EPEAgent stages. ``mode`` picks the variant; the other knobs refine it."""

    mode: str = "label"
    top_k: int | None = 4  # relevance filter: keep at most k allowed fields (None = no cap)
    threshold: float | None = None  # relevance filter: keep fields with cosine >= threshold
    sanitize: str = "mask"  # stage B rule layer: "mask" -> [field], "drop" -> drop the sentence
    pii_layer: bool = False  # add the PII layer after the rule layer (implied by mode "pii")
    pii_backend: str = "regex"
    llm_rewrite: bool = False  # rewrite forwarded text with the agent's LLM, then apply the rule layer again
    inbound: bool = True  # also sanitise what an agent receives (defence against a non-compliant sender)
    spelled: bool = True  # rule layer also matches number words and letter-by-letter spellings

    @property
    def label_filter(self) -> bool:
        return self.mode in ("label", "label+relevance")

    @property
    def relevance(self) -> bool:
        return self.mode == "label+relevance"

    @property
    def use_pii(self) -> bool:
        return self.mode == "pii" or (self.pii_layer and self.mode != "off")


@dataclass
class MASConfig:
    """A whole MAS experiment: domain data, role DAG, EPE variant, models and questions."""

    domain: str = "financial"
    num_users: int = 25
    seed: int = 0
    epe: EPEConfig = field(default_factory=EPEConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    embedder: str = "minilm"
    dag: dict[str, Any] | None = None  # None = the paper's DAG for ``domain``; else RoleDAG.from_dict input
    questions: tuple[str, ...] = ("utility", "privacy")
    max_tasks: int | None = None  # cap on the number of tasks (SmolLM2 runs on CPU)
    batch_size: int = 64  # tasks per protocol batch (one query message per agent per DAG stage)
    runtime: str = "chat"  # "chat": chat-model layer with batched calls; "graph": langchain create_agent
    policy_overrides: dict[str, list[int]] = field(default_factory=dict)  # field -> agent ids

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, prefix: str = "mas") -> MASConfig:
        """Build and validate from a mapping; unknown keys and bad values raise ConfigError."""
        data = dict(data or {})
        sub = {"epe": EPEConfig, "llm": LLMConfig}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key in sub:
                if isinstance(value, str) and key == "epe":
                    value = {"mode": value}
                kwargs[key] = _build(sub[key], value, f"{prefix}.{key}")
            else:
                kwargs[key] = value
        cfg = _build(cls, kwargs, prefix)
        cfg.questions = tuple(cfg.questions)
        cfg.validate(prefix)
        return cfg

    def validate(self, prefix: str = "mas") -> None:
        checks = [
            (self.domain in ("financial", "medical"), "domain", "financial|medical"),
            (isinstance(self.num_users, int) and self.num_users >= 1, "num_users", "an int >= 1"),
            (self.epe.mode in EPE_MODES, "epe.mode", "|".join(EPE_MODES)),
            (self.epe.sanitize in ("mask", "drop"), "epe.sanitize", "mask|drop"),
            (self.epe.pii_backend in PII_BACKENDS, "epe.pii_backend", "|".join(PII_BACKENDS)),
            (self.epe.top_k is None or self.epe.top_k >= 1, "epe.top_k", "null or an int >= 1"),
            (self.llm.backend in LLM_BACKENDS, "llm.backend", "|".join(LLM_BACKENDS)),
            (
                self.llm.backend != "openai" or bool(self.llm.base_url and self.llm.model),
                "llm.base_url",
                "set (with llm.model) for the openai backend",
            ),
            (self.embedder in EMBEDDERS, "embedder", "|".join(EMBEDDERS)),
            (
                set(self.questions) <= {"utility", "privacy"} and bool(self.questions),
                "questions",
                "a non-empty subset of [utility, privacy]",
            ),
            (self.batch_size >= 1, "batch_size", "an int >= 1"),
            (self.runtime in ("chat", "graph"), "runtime", "chat|graph"),
        ]
        for ok, key, expected in checks:
            if not ok:
                raise ConfigError(f"{prefix}.{key}: expected {expected}")


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            raise ConfigError(f"{where}.{key}: unknown key; valid keys are {sorted(names)}")
    return cls(**data)
