"""Value matching shared by the EPE sanitiser and the exposure metrics (EPEAgent, arXiv 2503.08175).

The paper does not publish its leakage matcher; this is the spec's "our choice" (epeagent.md section 6.1):
lower-case, whole-token matching, thousands separators stripped from numbers, full-name matching for names
(a token sequence), and list/dict values expanded to their leaf values. Sanitiser and metrics use the
*same* tokeniser so that "the sanitiser removed it" and "the metric saw no exposure" can never disagree.

Number normalisation handles the spellings a value can take in running text: ``62000``, ``62,000``,
``62 000``, ``62.000``, ``62'000`` and ``62000.00`` all become the token ``62000``; leading zeros are
dropped (``03`` = ``3``). Not handled on purpose (reported by the adversarial benchmark): numbers in words,
abbreviations such as ``62k``, letters split by spaces or hyphens.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# A number with thousands groups (separator , . space ' or thin space), a plain number, or a run of letters.
_TOKEN = re.compile(r"\d{1,3}(?:[,. '\u2009\u202f]\d{3})+(?:\.\d+)?(?!\d)|\d+(?:\.\d+)?|[^\W\d_]+")
_GROUP_SEP = re.compile(r"[,. '\u2009\u202f](?=\d{3}(?:\D|$))")


@dataclass(frozen=True)
class Token:
    """A token of a text: its canonical form and its character span in the original text."""

    norm: str
    start: int
    end: int


def _canon(raw: str) -> str:
    if raw[0].isdigit():
        digits = _GROUP_SEP.sub("", raw)
        if "." in digits:
            whole, frac = digits.split(".", 1)
            frac = frac.rstrip("0")
            digits = f"{whole}.{frac}" if frac else whole
        whole, _, frac = digits.partition(".")
        whole = whole.lstrip("0") or "0"
        return f"{whole}.{frac}" if frac else whole
    return raw.lower()


def tokenize(text: str) -> list[Token]:
    """Split text into canonical tokens with spans (so matches can be masked in the original text)."""
    return [Token(_canon(m.group()), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def norm_tokens(text: str) -> tuple[str, ...]:
    """Canonical token sequence of a value: the unit of matching."""
    return tuple(t.norm for t in tokenize(text))


def leaf_values(value: object, skip_keys: Iterable[str] = ()) -> list[str]:
    """Expand a field value to the leaf strings that identify it (lists and dicts recursively)."""
    skip = set(skip_keys)
    if isinstance(value, dict):
        return [leaf for k, v in value.items() if k not in skip for leaf in leaf_values(v, skip)]
    if isinstance(value, (list, tuple)):
        return [leaf for v in value for leaf in leaf_values(v, skip)]
    text = str(value).strip()
    return [text] if text else []


def find_spans(tokens: Sequence[Token], pattern: tuple[str, ...]) -> list[tuple[int, int]]:
    """Character spans where the token sequence ``pattern`` occurs as whole tokens."""
    n = len(pattern)
    if n == 0:
        return []
    spans = []
    for i in range(len(tokens) - n + 1):
        if tokens[i].norm == pattern[0] and all(tokens[i + j].norm == pattern[j] for j in range(1, n)):
            spans.append((tokens[i].start, tokens[i + n - 1].end))
    return spans


def contains(tokens: Sequence[Token], pattern: tuple[str, ...]) -> bool:
    """Whether ``pattern`` occurs in ``tokens`` as whole tokens."""
    n = len(pattern)
    if n == 0 or n > len(tokens):
        return False
    norms = [t.norm for t in tokens]
    first = pattern[0]
    return any(norms[i] == first and tuple(norms[i : i + n]) == pattern for i in range(len(norms) - n + 1))


def shield_spans(tokens: Sequence[Token], patterns: Iterable[tuple[str, ...]]) -> list[tuple[int, int]]:
    """Spans of values the reader may see: a forbidden value inside one of them (age ``50`` inside the
    dosage ``50 mcg``) is that allowed value, not a disclosure."""
    return [s for p in patterns for s in find_spans(tokens, p)]


def unshielded(spans: Iterable[tuple[int, int]], shields: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The spans not lying inside any shield span."""
    return [(s, e) for s, e in spans if not any(a <= s and e <= b for a, b in shields)]
