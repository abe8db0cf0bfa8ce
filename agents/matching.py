"""Value matching shared by the EPE sanitiser and the exposure metrics (EPEAgent, arXiv 2503.08175).

The paper does not publish its leakage matcher; this is the spec's "our choice" (epeagent.md section 6.1):
lower-case, whole-token matching, thousands separators stripped from numbers, full-name matching for names
(a token sequence), and list/dict values expanded to their leaf values. Sanitiser and metrics use the
*same* tokeniser so that "the sanitiser removed it" and "the metric saw no exposure" can never disagree.

Number normalisation handles the spellings a value can take in running text: ``62000``, ``62,000``,
``62 000``, ``62.000``, ``62'000`` and ``62000.00`` all become the token ``62000``; leading zeros are
dropped (``03`` = ``3``).

:class:`TextIndex` with ``spelled=True`` adds a second, *spelled* view of the text for values an upstream
agent respells to slip past a verbatim matcher (our extension, reported by the adversarial benchmark):
number words become digits (``sixty-two thousand`` = ``62000``, ``two thousand twenty-four-three-five`` =
``2024 3 5``, ``six two zero zero zero`` = ``62000``), and runs of single letters or digits joined by short
separators (``A-m-e-l-i-a``, ``6 2 0 0 0``, ``U.S.A``) are collapsed and searched for the value's letters and
digits in order. Matches of both views are unioned, so the plain matcher never loses a match. Still not
handled: abbreviations (``62k``), words between number parts (``120 over 80``), paraphrases, encodings
(base64, ROT13), and values split across sentences -- those need a semantic layer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

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


# ---------------------------------------------------------------- spelled view (adversarial respellings)
_UNITS = {w: i for i, w in enumerate("zero one two three four five six seven eight nine".split())}
_TEENS = {
    w: 10 + i
    for i, w in enumerate("ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split())
}
_TENS = {w: 20 + 10 * i for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())}
_SCALES = {"thousand": 1000, "million": 10**6, "billion": 10**9}
_NUMBER_GAP = re.compile(r"[ \t-]{1,3}")  # between the words of one written number
_SPELL_GAP = re.compile(r"[ \t\-_.*|/\u00b7]{1,3}")  # between spelled-out letters / digits


_NUMBER_WORDS: dict[str, tuple[str, int]] = {
    **{w: ("unit", v) for w, v in _UNITS.items()},
    **{w: ("teen", v) for w, v in _TEENS.items()},
    **{w: ("tens", v) for w, v in _TENS.items()},
    **{w: ("scale", v) for w, v in _SCALES.items()},
    "hundred": ("hundred", 100),
}


def _word_kind(word: str) -> tuple[str, int] | None:
    return _NUMBER_WORDS.get(word)


# kind of the previous word -> kinds that cannot continue the same number (they start a new one)
_BREAKS = {
    "unit": {"unit", "teen", "tens"},
    "teen": {"unit", "teen", "tens"},
    "tens": {"teen", "tens"},
    "hundred": {"hundred"},
    "scale": {"scale"},
}


def words_to_numbers(words: Sequence[str]) -> list[tuple[str, int, int]]:
    """Segment a run of number words into numbers: ``(digits, first word, last word)`` triples.

    A run of two or more single digits is read digit by digit (``four two`` = ``42``); otherwise words
    combine as English numbers and a word that cannot continue the current number starts a new one
    (``twenty-four three five`` = 24, 3, 5).
    """
    kinds = [_word_kind(w) for w in words]
    if any(k is None for k in kinds):
        raise ValueError(f"not number words: {words}")
    if len(words) >= 2 and all(k[0] == "unit" for k in kinds):  # type: ignore[index]
        return [(str(int("".join(str(k[1]) for k in kinds))), 0, len(words) - 1)]  # type: ignore[index]
    out: list[tuple[str, int, int]] = []
    total = current = start = 0
    last: str | None = None
    for i, (kind, val) in enumerate(kinds):  # type: ignore[misc]
        if last is not None and kind in _BREAKS[last]:
            out.append((str(total + current), start, i - 1))
            total = current = 0
            start = i
        if kind == "hundred":
            current = (current or 1) * 100
        elif kind == "scale":
            total, current = total + (current or 1) * val, 0
        else:
            current += val
        last = kind
    out.append((str(total + current), start, len(words) - 1))
    return out


def _gap(text: str, a: Token, b: Token, pattern: re.Pattern[str]) -> bool:
    return bool(pattern.fullmatch(text[a.end : b.start]))


def _groups(text: str, tokens: Sequence[Token], member, gap: re.Pattern[str]) -> list[list[int]]:
    """Maximal runs of consecutive token indices satisfying ``member`` and joined by ``gap``."""
    runs: list[list[int]] = []
    for i, tok in enumerate(tokens):
        if not member(text, tok):
            continue
        if runs and runs[-1][-1] == i - 1 and _gap(text, tokens[i - 1], tok, gap):
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def _is_number_word(text: str, tok: Token) -> bool:
    return _word_kind(tok.norm) is not None or tok.norm == "and"


def number_word_view(text: str, tokens: Sequence[Token]) -> list[Token]:
    """``tokens`` with every written-out number replaced by one digit token spanning its words."""
    out: list[Token] = []
    pos = 0
    for run in _groups(text, tokens, _is_number_word, _NUMBER_GAP):
        # "and" only joins number words ("one hundred and five"); at the edges it is a plain word
        while run and tokens[run[0]].norm == "and":
            run = run[1:]
        while run and tokens[run[-1]].norm == "and":
            run = run[:-1]
        if not run:
            continue
        words = [tokens[i] for i in run if tokens[i].norm != "and"]
        out.extend(tokens[pos : run[0]])
        for digits, a, b in words_to_numbers([w.norm for w in words]):
            out.append(Token(digits, words[a].start, words[b].end))
        pos = run[-1] + 1
    out.extend(tokens[pos:])
    return out


def _single_char(text: str, tok: Token) -> bool:
    return tok.end - tok.start == 1


@lru_cache(maxsize=8192)
def collapsed_regex(pattern: tuple[str, ...]) -> re.Pattern[str] | None:
    """The value's letters and digits in order, numbers allowing leading zeros (``2024 3 5`` finds
    ``20240305``); None for values too short (< 2 characters) to search for safely."""
    parts = ["".join(ch for ch in p if ch.isalnum()) for p in pattern]
    if sum(len(p) for p in parts) < 2:
        return None
    return re.compile("".join(("0*" if p[:1].isdigit() else "") + re.escape(p) for p in parts if p))


@dataclass(frozen=True)
class _SpelledRun:
    """A run of single letters / digits: its collapsed lower-case string and each character's span."""

    chars: str
    spans: tuple[tuple[int, int], ...]


class TextIndex:
    """A text tokenised once for value search; ``spelled=True`` adds the spelled view (module doc)."""

    def __init__(self, text: str, spelled: bool = False):
        self.text = text
        self.views: list[list[Token]] = [tokenize(text)]
        self.runs: list[_SpelledRun] = []
        if spelled:
            words = number_word_view(text, self.views[0])
            view, pos = [], 0
            for run in _groups(text, words, _single_char, _SPELL_GAP):
                if len(run) < 2:
                    continue
                toks = [words[i] for i in run]
                chars = "".join(text[t.start].lower() for t in toks)
                self.runs.append(_SpelledRun(chars, tuple((t.start, t.end) for t in toks)))
                # the run as one word, so a value spelled in part ("Amelia A-b-e-r-n-a-t-h-y") matches
                view += [*words[pos : run[0]], Token(_canon(chars), toks[0].start, toks[-1].end)]
                pos = run[-1] + 1
            view += words[pos:]
            if view != self.views[0]:
                self.views.append(view)
        self._starts: list[dict[str, list[int]]] = []
        for view in self.views:  # token positions by canonical form: a pattern is tried only where it starts
            starts: dict[str, list[int]] = {}
            for i, tok in enumerate(view):
                starts.setdefault(tok.norm, []).append(i)
            self._starts.append(starts)

    def _find(self, v: int, pattern: tuple[str, ...]) -> list[tuple[int, int]]:
        view, n = self.views[v], len(pattern)
        return [
            (view[i].start, view[i + n - 1].end)
            for i in self._starts[v].get(pattern[0], ())
            if i + n <= len(view) and all(view[i + j].norm == pattern[j] for j in range(1, n))
        ]

    def spans(self, pattern: tuple[str, ...]) -> list[tuple[int, int]]:
        """Character spans where ``pattern`` occurs in any view."""
        if not pattern:
            return []
        found = {s for v in range(len(self.views)) for s in self._find(v, pattern)}
        regex = collapsed_regex(pattern) if self.runs else None
        if regex is not None:
            for run in self.runs:
                for m in regex.finditer(run.chars):
                    if m.end() > m.start():
                        found.add((run.spans[m.start()][0], run.spans[m.end() - 1][1]))
        return sorted(found)

    def contains(self, pattern: tuple[str, ...]) -> bool:
        return bool(self.spans(pattern))

    def shields(self, patterns: Iterable[tuple[str, ...]]) -> list[tuple[int, int]]:
        """Spans of allowed values (see :func:`shield_spans`)."""
        return [s for p in patterns for s in self.spans(p)]
