"""The built-in PII and secret rules: their patterns, bounds, anchors and validators.

Every pattern runs in linear time: repeats are bounded and mostly possessive, and no
pattern can start in the middle of a word or a run of digits. Rather than sweep the
whole text with each pattern, rules start only at cheap anchors found once per scan: in
a run of digits and separators (numbers), a ``+`` or ``(`` (phones), an ``@``
(e-mail), a colon pair (IPv6), or a literal prefix the regex engine finds with its fast
search (``sk-``, ``eyJ``, ...).

Boundaries are what keep redaction idempotent: once a value is replaced by ``[...]``
or ``***``, its neighbours must not read differently. So a value never ends before a
letter, digit or ``_``, nor starts after one or after ``-`` (phones starting ``+`` or
``(``, IPv6 starting ``::`` and PEM blocks excepted: they accept anything before them);
where a rule refuses a separator and a digit after a value (``1.2.3.4.5``), the rules
starting with a digit refuse that separator before them; and an IPv6 address ending in
``::`` gives back whatever belongs to the value after it. The redaction and stream
tests glue values and look-alike fragments together to check this.

Overlapping candidates are settled by the detector (:mod:`.pii`); numbers are tried at
every anchor, even inside another match ("01 020 7946 0958"), and left to that.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from chainweave.pipeline.security.checksums import (
    IBAN_LENGTHS,
    iban_valid,
    luhn_valid,
    ssn_valid,
)

__all__ = ["BUILTIN_RULES", "PEM_MARKER_MAX", "Rule", "TextIndex", "may_hold_builtin"]

Span = tuple[int, int]
"""``(start, end)`` offsets in a text."""
Finder = Callable[["TextIndex"], Iterable[Span]]
"""The span of each value a rule finds in an indexed text. Finders answer a text
without a place to start from with an empty tuple, not a generator: most texts have
none, and a scan asks every rule."""
Accept = Callable[[str, int, int], int]
"""``(text, start, end)`` to the end of the accepted value, or -1 to reject."""

_A = re.ASCII
_END = r"(?![A-Za-z0-9_])"
_WORD: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
_DIGITS: Final = frozenset("0123456789")
_HEX: Final = frozenset("0123456789abcdefABCDEF")
_DIGIT = re.compile(r"[0-9]", _A)
_DIGIT_RUN = re.compile(r"[0-9]+", _A)
_END_OK = re.compile(_END, _A)


def _shape_table() -> bytes:
    table = bytearray(range(256))
    for char in b"0123456789 .-()/+":
        table[char] = ord("0")
    for char in range(ord("A"), ord("Z") + 1):
        table[char] = ord("A")
    return bytes(table)


# The text's shape, one byte per character: digits and the separators numbers are
# written with become "0", capitals "A". Every card, phone, SSN and IPv4 address is a
# run of seven or more "0"s; every IBAN starts "AA00". Both are fast literal searches.
_SHAPE: Final = _shape_table()
_CLUSTER = re.compile(rb"0000000+")
_IBAN_START = re.compile(rb"AA00")
# Inside a cluster: where a number may start (a digit not glued to a word, a decimal
# or a range) and, before a digit, a "+" or "(" where a phone may start. The character
# class comes first so that the regex engine skips to candidates quickly.
_ANCHOR = re.compile(
    r"[0-9+(](?:(?<=[+(])(?=[0-9])|(?<=[0-9])(?<![A-Za-z0-9_\-.,/+][0-9]))", _A)


class TextIndex:
    """One text and the anchors its rules start from, each computed once, when needed."""

    __slots__ = ("_anchors", "_shape", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._shape: bytes | None = None
        self._anchors: tuple[list[Span], list[Span], list[Span]] | None = None

    def shape(self) -> bytes:
        """The text's shape (see ``_SHAPE``); ``?`` stands for any non-ASCII character."""
        if self._shape is None:
            self._shape = self.text.encode("ascii", "replace").translate(_SHAPE)
        return self._shape

    def anchors(self) -> tuple[list[Span], list[Span], list[Span]]:
        """Where number rules, ``+``/``(`` phone rules and IBANs may start, each with
        how far a match there could reach (the end of its cluster, or of the text)."""
        if self._anchors is None:
            numbers, symbols = _number_anchors(self.text, self.shape())
            self._anchors = numbers, symbols, _iban_anchors(self.text, self.shape())
        return self._anchors


def _number_anchors(text: str, shape: bytes) -> tuple[list[Span], list[Span]]:
    numbers: list[Span] = []
    symbols: list[Span] = []
    for cluster in _CLUSTER.finditer(shape):
        end = cluster.end()
        for anchor in _ANCHOR.finditer(text, cluster.start(), end):
            start = anchor.start()
            (symbols if text[start] in "+(" else numbers).append((start, end))
    return numbers, symbols


def _iban_anchors(text: str, shape: bytes) -> list[Span]:
    starts: list[Span] = []
    for found in _IBAN_START.finditer(shape):
        start = found.start()
        if (text[start + 2] in _DIGITS and text[start + 3] in _DIGITS
                and (start == 0 or text[start - 1] not in _WORD)):
            starts.append((start, len(text)))
    return starts


@dataclass(frozen=True, slots=True)
class Rule:
    """One way a built-in or custom rule finds values.

    Attributes:
        rule_id: The finding's rule id (``pii.email``).
        category: The finding's category (``pii``, ``secret``, or a custom one).
        find: Yields the ``(start, end)`` of each value in an indexed text.
        max_len: The longest text a match (with the context it reads) can span, or
            ``None`` when unbounded (PEM blocks, custom patterns).
        rank: Breaks ties between overlapping findings of equal category and length.
        patterns: The regular expressions whose widest match bounds ``max_len``.
    """

    rule_id: str
    category: str
    find: Finder
    max_len: int | None
    rank: int = 0
    patterns: tuple[re.Pattern[str], ...] = ()


# --- finders --------------------------------------------------------------------------


def _accepted(text: str, match: re.Match[str], accept: Accept | None) -> Span:
    start, end = match.span()
    if accept is not None:
        end = accept(text, start, end)
    return start, end


def search_finder(pattern: re.Pattern[str], needs: tuple[str, ...] = (),
                  accept: Accept | None = None, shape: bytes = b"") -> Finder:
    """A finder that runs ``pattern`` over the whole text, but only when the text's
    shape holds ``shape`` and the text one of ``needs`` (cheap literal searches)."""

    def find(index: TextIndex) -> Iterable[Span]:
        text = index.text
        if shape and shape not in index.shape():
            return ()
        # map, not a generator: most texts hold none, and every scan asks every rule.
        if needs and not any(map(text.__contains__, needs)):
            return ()
        return search(text)

    def search(text: str) -> Iterator[Span]:
        for match in pattern.finditer(text):
            start, end = _accepted(text, match, accept)
            if end > start:
                yield start, end

    return find


def _anchored_finder(pattern: re.Pattern[str], which: int, shortest: int, *,
                     accept: Accept | None = None) -> Finder:
    """A finder that tries ``pattern`` at each anchor of one kind with room for
    ``shortest`` characters. Every anchor is tried on its own, even inside an earlier
    match: in "01 020 7946 0958" or "qty 4 4111 1111 1111 1111" the real value starts
    inside a look-alike. Overlaps are settled afterwards, the longer value winning."""

    def find(index: TextIndex) -> Iterable[Span]:
        anchors = index.anchors()[which]
        return matches(index.text, anchors) if anchors else ()

    def matches(text: str, anchors: list[Span]) -> Iterator[Span]:
        for position, reach in anchors:
            if reach - position < shortest:
                continue
            match = pattern.match(text, position)
            if match is not None:
                start, end = _accepted(text, match, accept)
                if end > start:
                    yield start, end

    return find


# --- validators -----------------------------------------------------------------------

# (prefix length, lowest prefix, highest prefix, allowed lengths): the issuers whose
# numbers a payment form accepts: Visa, Mastercard, Amex, Discover, JCB, Diners,
# UnionPay, Maestro, Mir.
_ANY_LONG = frozenset(range(16, 20))
_IIN_RANGES: Final = (
    (1, 4, 4, frozenset({13, 16, 19})),
    (2, 51, 55, frozenset({16})), (4, 2221, 2720, frozenset({16})),
    (2, 34, 34, frozenset({15})), (2, 37, 37, frozenset({15})),
    (4, 6011, 6011, _ANY_LONG), (3, 644, 649, _ANY_LONG), (2, 65, 65, _ANY_LONG),
    (4, 3528, 3589, _ANY_LONG), (2, 62, 62, _ANY_LONG), (4, 2200, 2204, _ANY_LONG),
    (3, 300, 305, frozenset(range(14, 20))), (2, 36, 36, frozenset(range(14, 20))),
    (2, 38, 39, frozenset(range(14, 20))),
    (2, 50, 50, frozenset(range(13, 20))), (2, 56, 58, frozenset(range(13, 20))),
    (2, 63, 63, frozenset(range(13, 20))), (2, 67, 67, frozenset(range(13, 20))),
)


_SCALE: Final = {1: 1000, 2: 100, 3: 10, 4: 1}


def known_iin(digits: str) -> bool:
    """Whether a card number's prefix and length belong to a known issuer."""
    prefix = int(digits[:4])
    length = len(digits)
    for size, low, high, lengths in _IIN_RANGES:
        if low <= prefix // _SCALE[size] <= high and length in lengths:
            return True
    return False


def _accept_card(text: str, start: int, end: int) -> int:
    digits = text[start:end].replace(" ", "").replace("-", "")
    if known_iin(digits) and luhn_valid(digits):
        return end
    if len(digits) == 19 and end - start == 23:
        # "4111 1111 1111 1111 123": a 16-digit card and some other number.
        return _accept_card(text, start, end - 4)
    return -1


def _accept_ipv4(text: str, start: int, end: int) -> int:
    try:
        ipaddress.IPv4Address(text[start:end])
    except ValueError:
        return -1
    return end


def _accept_ipv6(text: str, start: int, end: int) -> int:
    candidate = text[start:end]
    # "dead::beef" and "add::bad" are valid addresses but, in text, rarely meant as one.
    if _DIGIT.search(candidate) is None:
        return -1
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return -1
    return end


def _accept_phone(text: str, start: int, end: int) -> int:
    # International numbers have at most 15 digits (E.164), national ones with a trunk
    # 0 at most 12; more digits after a space are another number ("020 7946 0958 12").
    if text[start] == "+":
        most = 15
    elif text[start] == "0" or text.startswith("(0", start):
        most = 12
    else:
        return end
    digits = len(_DIGIT.findall(text, start, end))
    while digits > most:
        end = text.rfind(" ", start, end)
        if end == -1:
            return -1
        digits = len(_DIGIT.findall(text, start, end))
    return end if digits >= 9 else -1


def _accept_iban(text: str, start: int, end: int) -> int:
    length = IBAN_LENGTHS.get(text[start:start + 2])
    if length is None:
        return -1
    position, seen = start, 0
    while position < end and seen < length:
        seen += text[position] != " "
        position += 1
    if seen < length or not _END_OK.match(text, position):
        return -1
    return position if iban_valid(text[start:position]) else -1


def _accept_ssn(text: str, start: int, end: int) -> int:
    # Nine bare digits are an SSN only right after words that say so ("SSN: ...").
    if (end - start == 9
            and _SSN_CONTEXT.search(text, max(0, start - _SSN_CONTEXT_REACH), start) is None):
        return -1
    return end if ssn_valid(text[start:end]) else -1


_RANDOM_RUN = re.compile(r"[A-Za-z0-9]{16}", _A)
_LETTER = re.compile(r"[A-Za-z]", _A)


def _accept_key(prefix: int) -> Accept:
    """Key bodies are random: a run of 16 letters and digits, with both in the key.
    That keeps out prose such as ``sk-learn-pipeline-2024-model-eval``."""

    def accept(text: str, start: int, end: int) -> int:
        body = text[start + prefix:end]
        if _RANDOM_RUN.search(body) is None or _DIGIT.search(body) is None:
            return -1
        return end if _LETTER.search(body) is not None else -1

    return accept


def _accept_jwt(text: str, start: int, end: int) -> int:
    header = text[start:text.index(".", start)]
    try:
        decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (binascii.Error, ValueError):
        return -1
    return end if isinstance(decoded, dict) and isinstance(decoded.get("alg"), str) else -1


# --- patterns -------------------------------------------------------------------------

_LOCAL_AT = re.compile(r"(?<![A-Za-z0-9_.,/%+\-])[A-Za-z0-9_][A-Za-z0-9._%+\-]{0,63}+@", _A)
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9_.,/%+\-])[A-Za-z0-9_][A-Za-z0-9._%+\-]{0,63}+@"
    r"(?:[A-Za-z0-9\-]{1,40}+\.){1,4}[A-Za-z]{2,24}+"
    r"(?![A-Za-z0-9_@]|-[A-Za-z0-9])", _A)

_PHONE_END = r"(?![A-Za-z0-9_]|[.,/\-][0-9])"
# Digit groups are possessive, but how many groups is not: a number followed by
# " 0A" gives back its last group instead of failing whole.
_TRUNK_TAIL = r"[0-9]{2,8}+(?:[ \-][0-9]{2,6}+){0,2}"
_PHONE_NUMBER = re.compile(
    r"(?:1[ .\-]?\([2-9][0-9]{2}\)[ ]?[0-9]{3}[ .\-][0-9]{4}"
    r"|(?:1[ .\-])?[2-9][0-9]{2}(?P<s>[ .\-])[0-9]{3}(?P=s)[0-9]{4}"
    r"|0[1-9](?P<f>[ .\-])[0-9]{2}(?:(?P=f)[0-9]{2}){3}"
    r"|0[1-9][0-9]{0,3}[ /\-]" + _TRUNK_TAIL + ")" + _PHONE_END, _A)
_PHONE_SYMBOL = re.compile(
    r"(?:\+[1-9][0-9]{0,2}+(?:[ .\-]?(?:\([0-9]{1,4}\)|[0-9]{1,5}+)){1,8}"
    r"|\([2-9][0-9]{2}\)[ ]?[0-9]{3}[ .\-][0-9]{4}"
    r"|\(0[1-9][0-9]{0,3}\)[ ]?" + _TRUNK_TAIL + ")" + _PHONE_END, _A)
_IPV4 = re.compile(r"(?:[0-9]{1,3}+\.){3}[0-9]{1,3}+(?![A-Za-z0-9_]|[.\-][0-9])", _A)
# An address ending in "::" may run straight into what follows ("fe80::sk-...",
# "2001:db8::1g@x.com"): the groups give back what belongs to the next value, so that
# value's redaction cannot later turn the rest into an address. One that does not end
# in "::" may be followed by "::" (another address), never by a single ":".
_IPV6 = re.compile(
    r"(?:(?:(?<![A-Za-z0-9_\-.,/:])|(?<=::))(?=[0-9A-Fa-f])|(?<![:.])(?=::))"
    r"(?:[0-9A-Fa-f]{0,4}+:){2,7}"
    r"(?:[0-9]{1,3}+\.[0-9]{1,3}+\.[0-9]{1,3}+\.[0-9]{1,3}+|[0-9A-Fa-f]{0,4})"
    r"(?:(?<=::)(?![:_]|[.\-][0-9])|(?<!::)(?![A-Za-z0-9_]|:(?!:)|[.\-][0-9]))", _A)
_V6_COLON = re.compile(r":(?<!::)(?=[0-9A-Fa-f]{0,4}+:)", _A)
# A card is written whole or in its issuer's groups: 4-4-4-4 (-3), Amex 4-6-5, Diners
# 4-6-4. A stray number before it ("qty 4 4111 ...") then cannot swallow its first group.
_CARD = re.compile(
    r"(?:[0-9]{13,19}+"
    r"|[0-9]{4}(?P<g>[ \-])[0-9]{4}(?P=g)[0-9]{4}(?P=g)[0-9]{4}(?:(?P=g)[0-9]{3}(?![0-9]))?"
    r"|[0-9]{4}(?P<a>[ \-])[0-9]{6}(?P=a)[0-9]{4,5})"
    r"(?![A-Za-z0-9_]|[.,][0-9])", _A)
_IBAN = re.compile(r"(?<![A-Za-z0-9_\-])[A-Z]{2}[0-9]{2}(?:[ ]?[A-Z0-9]){11,30}+", _A)
_SSN = re.compile(r"(?:[0-9]{3}-[0-9]{2}-[0-9]{4}|[0-9]{9})(?![A-Za-z0-9_]|[.,\-][0-9])", _A)
# The words that make nine bare digits an SSN, then only filler up to the number. (The
# redaction label is US_SSN, which does not count: "_" is a word character.)
_SSN_CONTEXT = re.compile(
    r"(?<![A-Za-z0-9_\-])(?i:ssns?|social[ \-]?security(?:[ ](?:number|num|no))?)"
    r"[.]?(?:[ \t]{0,3}(?i:[:#=\-]|is|was|no\.?|number)){0,2}[ \t]{0,3}\Z", _A)
_SSN_CONTEXT_REACH: Final = 60

_ANTHROPIC_KEY = re.compile(
    r"sk-ant-(?<![A-Za-z0-9_\-]sk-ant-)[A-Za-z0-9_\-]{20,240}+" + _END, _A)
_OPENAI_KEY = re.compile(r"sk-(?<![A-Za-z0-9_\-]sk-)(?!ant-)[A-Za-z0-9_\-]{20,240}+" + _END, _A)
_AWS_ACCESS_KEY = re.compile(r"A(?<![A-Za-z0-9_\-]A)(?:KIA|SIA)[A-Z0-9]{16}" + _END, _A)
_GITHUB_TOKEN = re.compile(
    r"g(?<![A-Za-z0-9_\-]g)(?:h[pousr]_[A-Za-z0-9]{36,240}+|ithub_pat_[A-Za-z0-9_]{36,240}+)"
    + _END, _A)
# Bounded segments keep the stream window finite. A token longer than the bounds is
# still caught: the match stops at the bound (header and most of the payload redacted,
# which makes the token useless) instead of not matching at all.
_JWT = re.compile(
    r"eyJ(?<![A-Za-z0-9_\-]eyJ)[A-Za-z0-9_\-]{7,253}+\.[A-Za-z0-9_\-]{2,1024}+"
    r"(?:\.[A-Za-z0-9_\-]{1,512}+)?", _A)
_PEM_LABEL = r"[ ](?:[A-Z0-9]{1,20}[ ]){0,3}PRIVATE[ ]KEY(?:[ ]BLOCK)?-----"
_PEM_BEGIN = re.compile(r"-----BEGIN" + _PEM_LABEL, _A)
_PEM_END = re.compile(r"-----END" + _PEM_LABEL + _END, _A)
PEM_MARKER_MAX: Final = 96
"""The longest PEM ``BEGIN`` line: a stream must hold this much to see one start."""


def _find_email(index: TextIndex) -> Iterable[Span]:
    return _emails(index.text) if "@" in index.text else ()


def _emails(text: str) -> Iterator[Span]:
    at = text.find("@")
    floor = 0  # a local part never reaches back over an earlier "@" or match
    while at != -1:
        head = _LOCAL_AT.search(text, max(floor, at - 64), at + 1)
        match = _EMAIL.match(text, head.start()) if head is not None else None
        if match is not None:
            yield match.span()
            floor = match.end()
        floor = max(floor, at + 1)
        at = text.find("@", floor)


def _find_ipv6(index: TextIndex) -> Iterable[Span]:
    return _ipv6_addresses(index.text) if ":" in index.text else ()


def _ipv6_addresses(text: str) -> Iterator[Span]:
    resume = 0
    for colon in _V6_COLON.finditer(text):
        position = colon.start()
        if position < resume:
            continue
        back = 0
        while back < 5 and position - back > 0 and text[position - back - 1] in _HEX:
            back += 1
        match = _IPV6.match(text, position - back) if back < 5 else None
        if match is None and text.startswith("::", position):
            match = _IPV6.match(text, position)
        if match is None:
            continue
        resume = match.end()
        if _accept_ipv6(text, *match.span()) > 0:
            yield match.span()


def _find_pem(index: TextIndex) -> Iterable[Span]:
    return _pem_blocks(index.text) if "-----BEGIN" in index.text else ()


def _pem_blocks(text: str) -> Iterator[Span]:
    position = 0
    while (begin := _PEM_BEGIN.search(text, position)) is not None:
        # Fail closed: a block without its END line runs to the end of the text.
        end = _PEM_END.search(text, begin.end())
        position = len(text) if end is None else end.end()
        yield begin.start(), position


def _chain(*finders: Finder) -> Finder:
    def find(index: TextIndex) -> Iterable[Span]:
        found = [spans for finder in finders if (spans := finder(index)) != ()]
        return found[0] if len(found) == 1 else itertools.chain.from_iterable(found)

    return find


def _pii(name: str, find: Finder, max_len: int, rank: int,
         *patterns: re.Pattern[str]) -> Rule:
    return Rule(f"pii.{name}", "pii", find, max_len, rank, patterns)


def _secret(name: str, find: Finder, max_len: int | None, rank: int,
            *patterns: re.Pattern[str]) -> Rule:
    return Rule(f"secret.{name}", "secret", find, max_len, rank, patterns)


# max_len is each pattern's widest match (tests check it against the regex parser);
# for a bare SSN it includes the words before it that the rule reads.
BUILTIN_RULES: Final[dict[str, Rule]] = {rule.rule_id: rule for rule in (
    _pii("email", _find_email, 253, 3, _EMAIL),
    _pii("phone", _chain(_anchored_finder(_PHONE_NUMBER, 0, 10, accept=_accept_phone),
                         _anchored_finder(_PHONE_SYMBOL, 1, 10, accept=_accept_phone)),
         60, 1, _PHONE_NUMBER, _PHONE_SYMBOL),
    _pii("ipv4", _anchored_finder(_IPV4, 0, 7, accept=_accept_ipv4), 15, 0, _IPV4),
    _pii("ipv6", _find_ipv6, 50, 2, _IPV6),
    _pii("credit_card", _anchored_finder(_CARD, 0, 13, accept=_accept_card), 23, 5, _CARD),
    _pii("iban", _anchored_finder(_IBAN, 2, 15, accept=_accept_iban), 64, 6, _IBAN),
    _pii("ssn", _anchored_finder(_SSN, 0, 9, accept=_accept_ssn), 9 + _SSN_CONTEXT_REACH, 4,
         _SSN, _SSN_CONTEXT),
    _secret("openai_key", search_finder(_OPENAI_KEY, ("sk-",), _accept_key(3)), 243, 5,
            _OPENAI_KEY),
    _secret("anthropic_key", search_finder(_ANTHROPIC_KEY, ("sk-ant-",), _accept_key(7)),
            247, 6, _ANTHROPIC_KEY),
    _secret("aws_access_key",
            search_finder(_AWS_ACCESS_KEY, ("AKIA", "ASIA"), shape=b"AAAA"), 20, 2,
            _AWS_ACCESS_KEY),
    _secret("github_token", search_finder(_GITHUB_TOKEN, ("_",)), 251, 3,
            _GITHUB_TOKEN),
    _secret("jwt", search_finder(_JWT, ("eyJ",), _accept_jwt), 1794, 4, _JWT),
    _secret("private_key", _find_pem, None, 7, _PEM_BEGIN, _PEM_END),
)}
"""Every built-in rule by id."""


# --- the prefilter ----------------------------------------------------------------------

# Every built-in rule needs one of these before it can find anything: "@" (e-mail), ":"
# (IPv6), "_" (GitHub tokens), a literal its search asks for (the other keys and tokens,
# PEM), or, for numbers, IBANs and phones, an anchor (each starts at a digit, or at a
# "+" or "(" before one).
_TRIGGER_LITERALS = ("sk-", "AKIA", "ASIA", "eyJ", "-----BEGIN")
_TRIGGER = re.compile("[@:_]|" + "|".join(map(re.escape, _TRIGGER_LITERALS)))
# For ASCII text: the literals by a character each holds that is rare in prose (a text
# without it cannot hold them), and one bytes.translate keeping the characters that
# matter, which for most prose leaves a few bytes or none.
_LITERALS_BY_MARKER = ((ord("-"), ("sk-", "-----BEGIN")), (ord("K"), ("AKIA",)),
                       (ord("S"), ("ASIA",)), (ord("J"), ("eyJ",)))
_SIGN_CODES = tuple(b"@:_")
_DIGIT_CODES = tuple(b"0123456789")
_ALL_BUT_KEPT = bytes(sorted(set(range(128)) - {*_SIGN_CODES, *_DIGIT_CODES,
                                                  *dict(_LITERALS_BY_MARKER)}))


def may_hold_builtin(index: TextIndex) -> bool:
    """False only when no built-in rule can find a value in the indexed text: it has no
    ``@``, ``:`` or ``_``, none of the literals keys and tokens start with, and no
    anchor for a number (often no digit at all).

    Prose is often like that, and then this answers for every rule at once.
    """
    text = index.text
    if not text.isascii():
        if _TRIGGER.search(text) is not None:
            return True
        return _DIGIT.search(text) is not None and any(index.anchors())
    kept = text.encode("ascii").translate(None, _ALL_BUT_KEPT)
    if any(map(kept.__contains__, _SIGN_CODES)):
        return True
    for marker, literals in _LITERALS_BY_MARKER:
        if marker in kept and any(map(text.__contains__, literals)):
            return True
    return any(map(kept.__contains__, _DIGIT_CODES)) and any(index.anchors())
