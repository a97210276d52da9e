"""Prompt-injection detection: weighted patterns over folded views of a text.

:class:`InjectionDetector` scores a text that :func:`~chainweave.pipeline.security.normalize.
normalize_text` has already normalized. It matches each :class:`InjectionRule` against one
of two views of the text, both exactly as long as the text so every span is valid in it:

* the *text* itself, for markup, tool-call and non-English phrasings;
* the *skeleton*: lowercase, Latin diacritics dropped, Cyrillic and Greek look-alikes and
  leetspeak folded to ASCII letters, for English phrasings.

Two more passes find what the views cannot: letters spaced out to dodge word patterns
(``i g n o r e``, ``p.r.o.m.p.t``) are joined up and the skeleton rules run over them again;
base64 and hex runs are decoded, normalized and scanned in turn, and a hit inside is
reported over the encoded run as ``injection.encoded_base64`` or ``injection.encoded_hex``.

A text's score is the sum of the weights of the rules that hit (each rule once); the text
is an injection when the score reaches the threshold. Every regular expression runs in
linear time. A rule is tried only where one of its anchors occurs and when a word it
requires is present, so a clean text costs a few passes with ``str`` methods.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import unicodedata
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from itertools import accumulate, compress
from typing import NamedTuple

from chainweave.errors import InputValidationError
from chainweave.pipeline.findings import Finding
from chainweave.pipeline.security.injection_rules import DEFAULT_INJECTION_RULES, InjectionRule
from chainweave.pipeline.security.normalize import normalize_text

__all__ = [
    "DEFAULT_INJECTION_RULES",
    "InjectionAssessment",
    "InjectionDetector",
    "InjectionRule",
]

_CATEGORY = "injection"
_ALLOWED_FLAGS = re.IGNORECASE | re.MULTILINE | re.DOTALL
_RULE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
# Base64 of base64 is found; a third layer is not decoded.
_MAX_DECODE_DEPTH = 2
# Encoded runs longer than this are decoded up to this many characters.
_MAX_RUN_CHARS = 65_536


@dataclass(frozen=True)
class InjectionAssessment:
    """What :meth:`InjectionDetector.assess` found in one text.

    Attributes:
        score: Sum over the rules that hit of each rule's weight (an encoded run counts
            the score of its decoded text), rounded to 6 places.
        detected: Whether ``score`` reached the detector's threshold.
        findings: Every rule hit, even below the threshold, sorted by ``start``.
    """

    score: float
    detected: bool
    findings: list[Finding] = field(default_factory=list)


# --- the skeleton view -------------------------------------------------------------------

# Digits only: folding "@" or "$" would turn a non-word character into a letter, and the
# detector relies on folding keeping word boundaries where they are.
_LEET = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t"}
# Look-alikes NFKC leaves alone, each followed by the ASCII it folds to: Cyrillic, Greek,
# dotless i and a few other Latin oddities; curly quotes.
_LOOKALIKES = (
    "\u0430a\u0432b\u0435e\u0451e\u043ak\u043cm\u043dh\u043eo\u0440p\u0441c\u0442t\u0443y"
    "\u0445x\u0455s\u0456i\u0457i\u0458j\u0501d\u051bq\u051dw\u04bbh\u04cfl\u044cb\u0410a"
    "\u0412b\u0415e\u0401e\u041ak\u041cm\u041dh\u041eo\u0420p\u0421c\u0422t\u0423y\u0425x"
    "\u0405s\u0406i\u0407i\u0408j\u03b1a\u03b2b\u03b5e\u03b7n\u03b9i\u03bak\u03bdv\u03bfo"
    "\u03c1p\u03c4t\u03c5u\u03c7x\u03b3y\u03f2c\u0391a\u0392b\u0395e\u0396z\u0397h\u0399i"
    "\u039ak\u039cm\u039dn\u039fo\u03a1p\u03a4t\u03a5y\u03a7x\u0131i\u0585o\u057du\u0261g"
    "\u01c0l\u2019'\u2018'\u201c\"\u201d\""
)


def _skeleton_table() -> dict[int, str]:
    """A one-character-to-one-character fold, so the skeleton keeps the text's offsets."""
    table = {ord(c): c.lower() for c in map(chr, range(ord("A"), ord("Z") + 1))}
    for code in range(0xC0, 0x250):  # Latin-1 Supplement, Latin Extended-A and -B
        base = unicodedata.normalize("NFD", chr(code))[0]
        if base.isascii() and base.isalpha():
            table[code] = base.lower()
    table.update({ord(k): v for k, v in _LEET.items()})
    pairs = iter(_LOOKALIKES)
    table.update({ord(k): v for k, v in zip(pairs, pairs, strict=True)})
    assert all(len(v) == 1 for v in table.values())
    return table


_SKELETON = _skeleton_table()


def _byte_table(fold: Callable[[str], str]) -> bytes:
    """A :meth:`bytes.translate` table applying ``fold`` to each ASCII character.

    ASCII text is folded through it as bytes, which is several times faster than
    :meth:`str.translate`; the bytes above 127 never occur in such text.
    """
    return bytes(ord(fold(chr(code))) if code < 128 else code for code in range(256))


_ASCII_SKELETON = _byte_table(lambda char: _SKELETON.get(ord(char), char))


def _skeleton(text: str) -> str:
    """The folded view the ``skeleton`` rules match, exactly as long as ``text``."""
    if text.isascii():
        return text.encode("ascii").translate(_ASCII_SKELETON).decode("ascii")
    return text.translate(_SKELETON)


# --- spaced-out letters ------------------------------------------------------------------

_SEP = r"[ \t._*+~|/\\-]"
_RUN = re.compile(rf"(?<![a-z0-9])[a-z](?:{_SEP}{{1,3}}[a-z](?![a-z0-9])){{3,}}")
_RUN_GATE = re.compile(rf"{_SEP}[a-z]{_SEP}{{1,3}}[a-z]{_SEP}{{1,3}}[a-z]")
_GAP_SPLIT = re.compile(rf"({_SEP}{{1,3}})")
# ``_RUN_GATE`` on an ASCII view, spelled over the view's character classes (separator
# " ", letter "a", anything else "x"), where it starts with a literal and so skips along
# with a fast substring search instead of trying every separator.
_SEP_CLASSES = _byte_table(lambda char: " " if re.fullmatch(_SEP, char)
                           else "a" if "a" <= char <= "z" else "x")
_RUN_GATE_CLASSES = re.compile(rb" a  {0,2}a {1,3}a")


class _SpacedRun:
    """One run of single letters with separators, joined up; maps offsets back."""

    def __init__(self, start: int, run: str) -> None:
        self.start = start
        self.end = start + len(run)
        self._parts = _GAP_SPLIT.split(run)  # letters at even indexes, gaps at odd
        gaps = Counter(self._parts[1::2])
        # The commonest gap separates letters; any other gap separates words.
        self._dominant = gaps.most_common(1)[0][0]
        joined = run
        for gap in sorted(gaps, key=len, reverse=True):
            joined = joined.replace(gap, "" if gap == self._dominant else "\x00")
        self.joined = joined.replace("\x00", " ")

    @cached_property
    def _breaks(self) -> list[int]:
        return [i for i, gap in enumerate(self._parts[1::2]) if gap != self._dominant]

    @cached_property
    def _offsets(self) -> list[int]:
        return list(accumulate(map(len, self._parts), initial=0))

    def original(self, offset: int) -> int:
        """The text offset of ``offset`` in the joined view, inside this run.

        The padding after the joined letters maps to the run's last letter.
        """
        index = min(offset - self.start, len(self.joined) - 1)
        letters = range((len(self._parts) + 1) // 2)
        letter = bisect_right(letters, index, key=self._joined_index) - 1
        is_letter = self._joined_index(letter) == index
        return self.start + self._offsets[2 * letter + (0 if is_letter else 1)]

    def _joined_index(self, letter: int) -> int:
        return letter + bisect_left(self._breaks, letter)


def _may_hold_spaced_run(folded: str) -> bool:
    """Whether ``_RUN_GATE`` matches in ``folded``."""
    if folded.isascii():
        classes = folded.encode("ascii").translate(_SEP_CLASSES)
        return _RUN_GATE_CLASSES.search(classes) is not None
    return _RUN_GATE.search(folded) is not None


def _spaced_runs(folded: str) -> list[_SpacedRun]:
    if not _may_hold_spaced_run(folded):
        return []
    return [_SpacedRun(m.start(), m.group()) for m in _RUN.finditer(folded)]


def _joined_view(folded: str, runs: Sequence[_SpacedRun]) -> str:
    """``folded`` with each run replaced by its joined letters, padded to the same length."""
    pieces, position = [], 0
    for run in runs:
        pieces += [folded[position:run.start], run.joined.ljust(run.end - run.start)]
        position = run.end
    pieces.append(folded[position:])
    return "".join(pieces)


def _map_back(finding: Finding, runs: Sequence[_SpacedRun],
              starts: list[int]) -> Finding | None:
    """A finding on the joined view as a span of the text; None if it touches no run.

    ``starts`` holds each run's start, in order.
    """
    def original(offset: int) -> int:
        index = bisect_right(starts, offset) - 1
        inside = index >= 0 and offset < runs[index].end
        return runs[index].original(offset) if inside else offset

    # The runs the finding overlaps: the one it starts in (or after) and the next.
    first = bisect_right(starts, finding.start) - 1
    if not any(run.start < finding.end and finding.start < run.end
               for run in runs[max(first, 0):first + 2]):
        return None
    return Finding(finding.rule_id, finding.category, original(finding.start),
                   original(finding.end - 1) + 1, finding.score)


# --- encoded runs ------------------------------------------------------------------------

_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
_HEX_SPACED = re.compile(
    r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}[ :,]){7,}[0-9A-Fa-f]{2}(?![0-9A-Za-z])")
_HEX_ESCAPED = re.compile(r"(?:\\x[0-9A-Fa-f]{2}){6,}")
_HEX_PLAIN = re.compile(r"(?:0x)?((?:[0-9A-Fa-f]{2}){8,})")
_HEX_PAIRS = frozenset(f"{a}{b}" for a in "0123456789abcdefABCDEF"
                       for b in "0123456789abcdefABCDEF")
_BINARY = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd]")
# An ASCII text's chunks: whitespace as ``str.split`` sees it is " ", anything else "x";
# then the same with hex digits as "h". In the second, padded with a space at each end,
# eight two-digit hex chunks in a row are ``_HEX_CHUNKS``, and ``_TWO_CHAR_CHUNKS`` in
# the first is the cheap test that must pass before.
_CHUNKS = _byte_table(lambda char: " " if char.isspace() else "x")
_HEX_CLASSES = _byte_table(lambda char: " " if char.isspace()
                           else "h" if char in "0123456789abcdefABCDEF" else "x")
_LONG_CHUNK = b"x" * 16
# Spelled to start with a whole chunk (" xx "), so the engine skips to two-character ones.
_TWO_CHAR_CHUNKS = re.compile(rb" xx (?: *xx ){7}")
_HEX_CHUNKS = re.compile(rb" hh (?: *hh ){7}")


def _as_text(data: bytes) -> str | None:
    """``data`` as UTF-8 text, or None when it is not readable text."""
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if not decoded or _BINARY.search(decoded) else decoded


def _decode_base64(run: str) -> str | None:
    run = run.rstrip("=")
    urlsafe, standard = ("-" in run or "_" in run), ("+" in run or "/" in run)
    if urlsafe and standard:
        return None
    run = run[: len(run) - len(run) % 4] if len(run) % 4 == 1 else run
    padded = run + "=" * (-len(run) % 4)
    try:
        data = base64.b64decode(padded, altchars=b"-_" if urlsafe else None, validate=True)
    except (binascii.Error, ValueError):
        return None
    return _as_text(data)


def _decode_hex(run: str) -> str | None:
    digits = re.sub(r"\\x|[ :,]", "", run)
    match = _HEX_PLAIN.fullmatch(digits)
    return _as_text(bytes.fromhex(match.group(1))) if match else None


def _long_chunks(text: str, chunks: list[str], lengths: list[int]) -> list[tuple[int, int]]:
    """Where the whitespace-separated ``chunks`` of ``text`` of 16+ characters are."""
    spans = set()
    for chunk in set(compress(chunks, map((15).__lt__, lengths))):
        for start in _starts(text, chunk):
            end = start + len(chunk)
            if (start == 0 or text[start - 1].isspace()) and (
                    end == len(text) or text[end].isspace()):
                spans.add((start, end))
    return sorted(spans)


def _may_hold_encoded(text: str) -> bool:
    """Whether ``text`` has a chunk of 16+ characters between whitespace, or eight
    two-digit hex chunks in a row: the only places :func:`_encoded_runs` finds runs.

    Worked out for ASCII text with byte translations and searches that start with a
    literal (prose rarely has either); any other text is taken to have them.
    """
    if not text.isascii():
        return True
    raw = text.encode("ascii")
    chunks = b" " + raw.translate(_CHUNKS) + b" "
    if _LONG_CHUNK in chunks:
        return True
    return (_TWO_CHAR_CHUNKS.search(chunks) is not None
            and _HEX_CHUNKS.search(b" " + raw.translate(_HEX_CLASSES) + b" ") is not None)


def _encoded_runs(text: str) -> Iterable[tuple[str, int, int, str]]:
    """Each decodable run as ``(encoding, start, end, decoded text)``; there are none
    where :func:`_may_hold_encoded` is false (callers ask it first)."""
    # A run lies inside one chunk of 16+ characters between spaces, except spaced hex,
    # which is many two-digit chunks.
    chunks = text.split()
    lengths = list(map(len, chunks))
    spans = _long_chunks(text, chunks, lengths) if max(lengths, default=0) >= 16 else []
    seen = set()
    if lengths.count(2) >= 8 and b"\x01" * 8 in bytes(map(_HEX_PAIRS.__contains__, chunks)):
        spans_hex = [(0, len(text))]
    else:
        spans_hex = spans
    for pattern, where in ((_HEX_SPACED, spans_hex), (_HEX_ESCAPED, spans)):
        for start, end in where:
            for m in pattern.finditer(text, start, end):
                decoded = _decode_hex(m.group()[:_MAX_RUN_CHARS])
                if decoded is not None and m.span() not in seen:
                    seen.add(m.span())
                    yield "hex", m.start(), m.end(), decoded
    for m in (m for start, end in spans for m in _BASE64_RUN.finditer(text, start, end)):
        run = m.group()[:_MAX_RUN_CHARS]
        decoded = _decode_hex(run) if _HEX_PLAIN.fullmatch(run) else None
        if decoded is not None:
            yield "hex", m.start(), m.end(), decoded
        elif (decoded := _decode_base64(run)) is not None:
            yield "base64", m.start(), m.end(), decoded


# --- anchors -----------------------------------------------------------------------------

_NON_WORD = re.compile(r"\W")
_ASCII_NON_WORD = _byte_table(lambda char: char if char.isalnum() or char == "_" else " ")
# Scripts that do not put spaces between words: an anchor in them can sit anywhere.
_UNSPACED_SCRIPT = re.compile("[\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff"
                              "\uac00-\ud7af\uf900-\ufaff]")


class _Words(NamedTuple):
    """The words (maximal ``\\w`` runs) of a view, and the view with a space for every
    other character and one at each end, where ``" word "`` finds only whole words."""

    words: list[str]
    spaced: str


def _words(view: str) -> _Words:
    # Each non-word character becomes one space, so offsets stay as they are.
    spaced = (view.encode("ascii").translate(_ASCII_NON_WORD).decode("ascii")
              if view.isascii() else _NON_WORD.sub(" ", view))
    return _Words(spaced.split(), f" {spaced} ")


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"  # what ``\\w`` matches


def _starts(view: str, anchor: str) -> list[int]:
    """Every offset where ``anchor`` occurs in ``view``."""
    found, index = [], view.find(anchor)
    while index >= 0:
        found.append(index)
        index = view.find(anchor, index + 1)
    return found


def _spaced_starts(spaced: str, word: str) -> list[int]:
    """Every offset of ``word`` as a whole word, from the view's ``_Words.spaced``."""
    found, target, index = [], f" {word} ", spaced.find(f" {word} ")
    while index >= 0:
        found.append(index)  # the leading space stands one before the view's offset 0
        index = spaced.find(target, index + len(word) + 1)
    return found


class _AnchorIndex:
    """Finds where the anchors of a rule set occur, without a pass per anchor.

    Words are looked up in the view's set of words; identifiers with ``_`` among the words
    that hold one; everything else (symbols, CJK) through one alternation whose first
    characters are rare in prose, so the regex engine skips most of the text (and an
    ASCII view without any of those characters skips the alternation).
    """

    def __init__(self, rules: Sequence[InjectionRule]) -> None:
        # Which rules each required word or symbol lets through; rules requiring nothing.
        self._free = frozenset(i for i, r in enumerate(rules) if not r.requires)
        self._by_word: dict[str, list[int]] = {}
        self._by_symbol: dict[str, list[int]] = {}
        for index, rule in enumerate(rules):
            for need in rule.requires:
                by = self._by_word if need.isalnum() else self._by_symbol
                by.setdefault(need, []).append(index)
        self._required_words = frozenset(self._by_word)
        # A character of each required symbol, looked for first: most views lack it.
        self._markers = {s: next((c for c in s if not c.isalnum()), s[0])
                         for s in self._by_symbol}
        self.words: dict[str, list[int]] = {}
        self._word_set: frozenset[str] = frozenset()
        self.identifiers: dict[str, list[int]] = {}
        self.symbols: dict[str, list[int]] = {}
        for index, rule in enumerate(rules):
            for anchor in rule.anchors:
                self._add(index, anchor)
        self._word_set = frozenset(self.words)
        # Every anchor and required word: the only words of a view that matter.
        self._vocabulary = self._word_set | self._required_words
        ordered = sorted(self.symbols, key=len, reverse=True)
        self._symbols = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        # A symbol found at an offset implies every symbol that is a prefix of it.
        self._prefixes = {s: [p for p in ordered if s.startswith(p)] for s in ordered}
        # An ASCII view can hold an ASCII symbol only where one of these characters is.
        self._ascii_heads = sorted({s[0] for s in ordered if s.isascii()})

    def _add(self, rule: int, anchor: str) -> None:
        if anchor.isalnum() and not _UNSPACED_SCRIPT.search(anchor):
            self.words.setdefault(anchor, []).append(rule)
        elif all(map(_is_word_char, anchor)) and not _UNSPACED_SCRIPT.search(anchor):
            self.identifiers.setdefault(anchor, []).append(rule)
        else:
            self.symbols.setdefault(anchor, []).append(rule)

    def starts(self, view: str, words: _Words | None = None) -> dict[int, list[int]]:
        """For each rule with an anchor in ``view`` (lowercase), the offsets to try.

        Only rules with one of the words or symbols they require in ``view`` are listed.
        ``words`` may hold the words of a view that has the same words wherever an anchor
        could be (see :meth:`InjectionDetector._findings`); by default, ``view``'s.
        """
        found: dict[int, list[int]] = {}
        words = _words(view) if words is None else words
        # The view's words that are anchors or required words (no set of all its words).
        present = self._vocabulary.intersection(words.words)
        free, met = self._free, self._met(view, present)
        for word in self._word_set.intersection(present):
            if rules := [r for r in self.words[word] if r in free or r in met]:
                offsets = _spaced_starts(words.spaced, word)
                for rule in rules:
                    found.setdefault(rule, []).extend(offsets)
        if self.identifiers and "_" in view:
            underscored = [w for w in words.words if "_" in w]
            for name, candidates in self.identifiers.items():
                rules = [r for r in candidates if r in free or r in met]
                if rules and any(name in w for w in underscored):
                    self._note(found, rules, _starts(view, name))
        if self._symbols is not None and self._may_hold_symbol(view):
            self._symbol_starts(view, free | met, found)
        return found

    def _met(self, view: str, present: frozenset[str]) -> set[int]:
        """The rules that require words or symbols and have one of them in ``view``."""
        met: set[int] = set()
        for word in self._required_words.intersection(present):
            met.update(self._by_word[word])
        for symbol, rules in self._by_symbol.items():
            if self._markers[symbol] in view and symbol in view:
                met.update(rules)
        return met

    def _may_hold_symbol(self, view: str) -> bool:
        """Whether a symbol anchor can occur in ``view``: always, unless it is ASCII."""
        return not view.isascii() or any(map(view.__contains__, self._ascii_heads))

    def _symbol_starts(self, view: str, eligible: frozenset[int] | set[int],
                       found: dict[int, list[int]]) -> None:
        assert self._symbols is not None
        offsets: dict[str, list[int]] = {}
        for match in self._symbols.finditer(view):
            offsets.setdefault(match.group(), []).append(match.start())
            # A symbol can start inside the one just matched: try those offsets too.
            for inner in range(match.start() + 1, match.end()):
                if found_inner := self._symbols.match(view, inner):
                    offsets.setdefault(found_inner.group(), []).append(inner)
        for symbol, at in offsets.items():
            for prefix in self._prefixes[symbol]:
                if rules := [r for r in self.symbols[prefix] if r in eligible]:
                    self._note(found, rules, at)

    @staticmethod
    def _note(found: dict[int, list[int]], rules: list[int], offsets: list[int]) -> None:
        for rule in rules:
            found.setdefault(rule, []).extend(offsets)


# --- rules -------------------------------------------------------------------------------


class _RuleSet:
    """Compiled rules, each tried only where one of its anchors occurs."""

    def __init__(self, rules: Sequence[InjectionRule]) -> None:
        self._rules = [(f"{_CATEGORY}.{r.id}", r.weight, re.compile(r.pattern, r.flags),
                        r.view == "text") for r in rules]
        self._unanchored = [i for i, r in enumerate(rules) if not r.anchors]
        self._anchors = _AnchorIndex(rules)

    def scan(self, folded: str, text: str, anchor_view: str,
             words: _Words | None = None) -> list[Finding]:
        """Every match: skeleton rules in ``folded``, text rules in ``text``.

        ``anchor_view`` is the lowercase view to find anchors in; ``words`` its words.
        """
        found = []
        for index, offsets in self._anchors.starts(anchor_view, words).items():
            view = text if self._rules[index][3] else folded
            found += self._matches_at(index, view, sorted(offsets) if len(offsets) > 1
                                      else offsets)
        for index in self._unanchored:
            rule_id, weight, pattern, in_text = self._rules[index]
            found += [Finding(rule_id, _CATEGORY, m.start(), m.end(), weight)
                      for m in pattern.finditer(text if in_text else folded)
                      if m.end() > m.start()]
        return found

    def _matches_at(self, index: int, view: str, offsets: list[int]) -> list[Finding]:
        """What ``finditer`` would find, given that every match starts at an anchor."""
        rule_id, weight, pattern, _ = self._rules[index]
        found, end = [], 0
        for offset in offsets:
            if offset < end:
                continue
            match = pattern.match(view, offset)
            if match and match.end() > offset:
                found.append(Finding(rule_id, _CATEGORY, offset, match.end(), weight))
                end = match.end()
        return found


def _lowered(text: str) -> str:
    """``text`` in lowercase with the same offsets (U+0130 is the one letter that grows)."""
    return (text if "\u0130" not in text else text.replace("\u0130", "i")).lower()


def _total(findings: Sequence[Finding]) -> float:
    if not findings:
        return 0.0
    best: dict[str, float] = {}
    for finding in findings:
        best[finding.rule_id] = max(best.get(finding.rule_id, 0.0), finding.score)
    return round(math.fsum(best.values()), 6)


class InjectionDetector:
    """Scores texts for prompt injection; a :class:`~chainweave.pipeline.findings.Detector`.

    Args:
        rules: The weighted patterns to apply; :data:`DEFAULT_INJECTION_RULES` by default.
        threshold: The score at which a text counts as an injection (> 0).
        decode_encoded: Whether to decode base64 and hex runs and scan what they hold.

    Raises:
        InputValidationError: For a threshold that is not a positive number, or a rule that
            is malformed (bad id, weight, view or flags, a pattern that does not compile or
            matches the empty string) or shares its id with another. ``errors`` lists every
            problem.
    """

    def __init__(self, rules: Iterable[InjectionRule] = DEFAULT_INJECTION_RULES, *,
                 threshold: float = 1.0, decode_encoded: bool = True) -> None:
        rules = tuple(rules)
        errors = _threshold_errors(threshold) + _rules_errors(rules)
        if errors:
            message = "; ".join(e["message"] for e in errors)
            raise InputValidationError(f"Invalid InjectionDetector: {message}", errors=errors,
                                       field=errors[0]["field"])
        self.rules = rules
        self.threshold = float(threshold)
        self.decode_encoded = decode_encoded
        skeleton_rules = [r for r in rules if r.view == "skeleton"]
        text_rules = [r for r in rules if r.view == "text"]
        self._skeleton_rules = _RuleSet(skeleton_rules)
        self._main_rules = _RuleSet(skeleton_rules + [
            stable for r in text_rules if (stable := _fold_stable_part(r)) is not None])
        other = [r for r in text_rules if _fold_stable_part(r) != r]
        self._other_rules = _RuleSet(other)
        # The characters that folding changes in those rules' anchors and required words:
        # the second pass is needed only for a text that holds one of them.
        folding = {c for r in other for w in (*r.anchors, *r.requires) for c in w
                   if _skeleton(c) != c}
        self._folding_chars = (re.compile("[" + "".join(map(re.escape, sorted(folding))) + "]")
                               if folding else None)

    def __repr__(self) -> str:
        return (f"InjectionDetector(rules={len(self.rules)}, threshold={self.threshold}, "
                f"decode_encoded={self.decode_encoded})")

    def assess(self, text: str) -> InjectionAssessment:
        """Score ``text`` (already normalized) and report every rule hit."""
        findings = self._findings(text, depth=0)
        score = _total(findings)
        return InjectionAssessment(score, score >= self.threshold, findings)

    def scan(self, text: str) -> list[Finding]:
        """The rule hits in ``text`` when its score reaches the threshold, else ``[]``."""
        findings = self._findings(text, depth=0)
        return findings if findings and _total(findings) >= self.threshold else []

    def _findings(self, text: str, depth: int) -> list[Finding]:
        folded = _skeleton(text)
        # Folding maps word characters to word characters and the others to others, so
        # a text rule's anchor or required word that folding leaves unchanged is found in
        # the skeleton wherever it is in the lowercase text: one pass over the skeleton
        # tries the text rules at every such anchor (the pattern decides there). Anchors
        # and required words that fold hold non-ASCII letters; for a text with one of
        # those letters, the rules with any of them run again, whole, on the lowercase text.
        found = self._main_rules.scan(folded, text, folded, _words(folded))
        if (not text.isascii() and self._folding_chars is not None
                and self._folding_chars.search(_lowered(text))):
            found += self._other_rules.scan(folded, text, _lowered(text))
        found += self._spaced(folded)
        if self.decode_encoded and depth < _MAX_DECODE_DEPTH and _may_hold_encoded(text):
            found += self._encoded(text, depth)
        if not found:
            return found
        return sorted(set(found), key=lambda f: (f.start, f.end, f.rule_id))

    def _spaced(self, folded: str) -> list[Finding]:
        runs = _spaced_runs(folded)
        if not runs:
            return []
        joined = _joined_view(folded, runs)
        hits = self._skeleton_rules.scan(joined, joined, joined)
        starts = [run.start for run in runs]
        return [mapped for hit in hits if (mapped := _map_back(hit, runs, starts)) is not None]

    def _encoded(self, text: str, depth: int) -> list[Finding]:
        found = []
        for encoding, start, end, decoded in _encoded_runs(text):
            inner = _total(self._findings(normalize_text(decoded), depth + 1))
            if inner > 0:
                found.append(Finding(f"{_CATEGORY}.encoded_{encoding}", _CATEGORY, start, end,
                                     inner))
        return found


def _fold_stable_part(rule: InjectionRule) -> InjectionRule | None:
    """``rule`` keeping only the anchors and required words that folding leaves unchanged.

    None when that leaves no anchor, or no required word of a rule that requires some:
    the rule cannot match where only those kept could be.
    """
    anchors = tuple(a for a in rule.anchors if _skeleton(a) == a)
    requires = tuple(w for w in rule.requires if _skeleton(w) == w)
    if (rule.anchors and not anchors) or (rule.requires and not requires):
        return None
    if (anchors, requires) == (rule.anchors, rule.requires):
        return rule
    return replace(rule, anchors=anchors, requires=requires)


def _threshold_errors(threshold: object) -> list[dict[str, str]]:
    valid = (isinstance(threshold, int | float) and not isinstance(threshold, bool)
             and math.isfinite(threshold) and threshold > 0)
    return [] if valid else [{"field": "threshold", "type": "positive_number",
                              "message": f"threshold must be a number > 0, got {threshold!r}"}]


def _rules_errors(rules: Sequence[object]) -> list[dict[str, str]]:
    errors, seen = [], set()
    for index, rule in enumerate(rules):
        if not isinstance(rule, InjectionRule):
            errors.append(_error(f"rules[{index}]", "type",
                                 f"rules[{index}] is a {type(rule).__name__}, not an "
                                 "InjectionRule"))
            continue
        errors += _rule_errors(index, rule)
        if rule.id in seen:
            errors.append(_error(f"rules[{index}].id", "duplicate",
                                 f"rule id {rule.id!r} is used more than once"))
        seen.add(rule.id)
    return errors


def _rule_errors(index: int, rule: InjectionRule) -> list[dict[str, str]]:
    where, name = f"rules[{index}]", f"rule {rule.id!r}"
    problems = []
    if not isinstance(rule.id, str) or not _RULE_ID.fullmatch(rule.id):
        problems.append(("id", "id", f"{name}: id must be letters, digits, '_', '.' or '-'"))
    if (isinstance(rule.weight, bool) or not isinstance(rule.weight, int | float)
            or not math.isfinite(rule.weight) or rule.weight <= 0):
        problems.append(("weight", "positive_number", f"{name}: weight must be a number > 0"))
    if rule.view not in ("skeleton", "text"):
        problems.append(("view", "view", f"{name}: view must be 'skeleton' or 'text'"))
    for attr in ("anchors", "requires"):
        values = getattr(rule, attr)
        if not isinstance(values, tuple) or not all(
                isinstance(v, str) and v and v == v.lower() for v in values):
            problems.append((attr, attr, f"{name}: {attr} must be a tuple of non-empty "
                                         "lowercase strings"))
    if not isinstance(rule.flags, int) or rule.flags & ~_ALLOWED_FLAGS:
        problems.append(("flags", "flags",
                         f"{name}: flags may only combine IGNORECASE, MULTILINE and DOTALL"))
    else:
        problems += _pattern_problems(name, rule)
    return [_error(f"{where}.{attr}", kind, message) for attr, kind, message in problems]


def _pattern_problems(name: str, rule: InjectionRule) -> list[tuple[str, str, str]]:
    try:
        compiled = re.compile(rule.pattern, rule.flags)
    except (re.error, TypeError) as exc:
        return [("pattern", "regex", f"{name}: pattern does not compile ({exc})")]
    if compiled.match(""):
        return [("pattern", "empty_match", f"{name}: pattern matches the empty string")]
    return []


def _error(field_name: str, kind: str, message: str) -> dict[str, str]:
    return {"field": field_name, "type": kind, "message": message}
