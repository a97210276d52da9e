"""Find PII (e-mail, phone, IP, cards, IBAN, SSN) and secrets (API keys, tokens, keys).

:class:`PIIDetector` is a :class:`~chainweave.pipeline.findings.Detector`: pure,
synchronous, and it reports spans and rule ids, never the matched text. Numbers are
checked, not just shaped: cards pass Luhn and a known issuer prefix, IBANs mod 97 and
their country's length, SSNs the SSA's area rules, IP addresses :mod:`ipaddress`, JWTs
a header that decodes to JSON with ``alg``. Every pattern runs in linear time; see
:mod:`chainweave.pipeline.security.pii_patterns`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from chainweave.errors import InputValidationError
from chainweave.pipeline.findings import Finding
from chainweave.pipeline.security.pii_patterns import (
    BUILTIN_RULES,
    PEM_MARKER_MAX,
    Rule,
    TextIndex,
    may_hold_builtin,
    search_finder,
)

__all__ = ["KINDS", "CustomPattern", "PIIDetector"]

KINDS: Final[frozenset[str]] = frozenset(BUILTIN_RULES)
"""Every built-in rule id: ``pii.email`` ... ``secret.private_key``."""

_PEM = "secret.private_key"


@dataclass(frozen=True)
class CustomPattern:
    """A user rule: a regular expression, optionally confirmed by a function.

    Attributes:
        id: The rule id its findings carry, as given (``"custom.employee_id"``).
        pattern: A :mod:`re` pattern. It runs on every scanned text, so keep it linear:
            bounded repeats, no nested quantifiers.
        category: The findings' category, which a security policy acts on.
        validate: Called with the matched text; the match counts only if it returns
            true (a checksum, say).
    """

    id: str
    pattern: str
    category: str = "custom"
    validate: Callable[[str], bool] | None = None


class PIIDetector:
    """Scan text for PII and secrets.

    Args:
        kinds: The built-in rule ids to run (see :data:`KINDS`); ``None`` runs them all.
        custom: Extra rules, reported under their own ids and categories.
        allow: Exact values never reported (a company's support address, say).
        allow_patterns: Regular expressions; a match they fully match is not reported.

    Raises:
        InputValidationError: An unknown kind, a duplicate rule id, or a pattern that
            does not compile; every problem is listed.

    Attributes:
        window: The longest text a chosen built-in rule other than the PEM block can
            match (at least a PEM ``BEGIN`` line, when that rule is on): 1794, set by
            the JWT bounds, with every rule. A stream that holds back this many
            characters sees each such value whole. Custom patterns are not counted.
    """

    def __init__(self, kinds: Iterable[str] | None = None, *,
                 custom: Sequence[CustomPattern] = (), allow: Iterable[str] = (),
                 allow_patterns: Iterable[str] = ()) -> None:
        problems: list[dict[str, Any]] = []
        chosen = _chosen_kinds(kinds, problems)
        rules = [BUILTIN_RULES[kind] for kind in sorted(chosen)]
        rules += _custom_rules(custom, chosen, problems)
        allowed = _compile_all(allow_patterns, "allow_patterns", problems)
        if problems:
            raise InputValidationError(
                "PIIDetector: " + "; ".join(p["message"] for p in problems),
                errors=problems, field=problems[0]["field"])
        self._rules: tuple[Rule, ...] = tuple(rules)
        # With built-in rules only, a text none of them can match is skipped at once.
        self._builtin_only = all(rule is BUILTIN_RULES.get(rule.rule_id) for rule in rules)
        self._allow = frozenset(allow)
        self._allow_patterns = tuple(allowed)
        self.window: int = _window(chosen)

    def __repr__(self) -> str:
        # Allowed values may themselves be personal data: count them, never show them.
        ids = [rule.rule_id for rule in self._rules]
        return (f"PIIDetector(rules={ids!r}, allow={len(self._allow)} values, "
                f"allow_patterns={len(self._allow_patterns)})")

    def scan(self, text: str) -> list[Finding]:
        """Every finding in ``text``: sorted by start and never overlapping.

        Where two values overlap, the overlap goes to the more specific one: a secret
        over PII, then the longer, then the rule that ranks higher. What the other one
        covers beyond it is still reported, under its own rule, so that no part of a
        value is left in the clear (and redacting twice changes nothing).
        """
        if not text:
            return []
        index = TextIndex(text)
        if self._builtin_only and not may_hold_builtin(index):
            return []
        candidates = [(start, end, rule) for rule in self._rules
                      for start, end in rule.find(index)]
        if candidates and (self._allow or self._allow_patterns):
            candidates = [c for c in candidates if not self._allowed(text[c[0]:c[1]])]
        return _resolve(candidates) if candidates else []

    def _allowed(self, value: str) -> bool:
        if value in self._allow:
            return True
        return any(pattern.fullmatch(value) for pattern in self._allow_patterns)


def _chosen_kinds(kinds: Iterable[str] | None, problems: list[dict[str, Any]]) -> set[str]:
    if kinds is None:
        return set(KINDS)
    if isinstance(kinds, str):
        problems.append(_problem("kinds", "kinds must be a collection of rule ids, "
                                 f"not the single string {kinds!r}", "type_error"))
        return set()
    chosen = set(kinds)
    for unknown in sorted(chosen - KINDS):
        problems.append(_problem("kinds", f"unknown kind {unknown!r} (known: "
                                 f"{', '.join(sorted(KINDS))})", "unknown_kind"))
    return chosen & KINDS


def _custom_rules(custom: Sequence[CustomPattern], builtin: set[str],
                  problems: list[dict[str, Any]]) -> list[Rule]:
    rules: list[Rule] = []
    seen = set(builtin)
    for position, item in enumerate(custom):
        field = f"custom.{position}"
        if not item.id or item.id in seen:
            what = "an empty id" if not item.id else f"duplicate id {item.id!r}"
            problems.append(_problem(field, f"custom pattern with {what}", "duplicate_id"))
            continue
        seen.add(item.id)
        compiled = _compile(item.pattern, f"custom pattern {item.id!r}", field, problems)
        if compiled is not None:
            rules.append(Rule(item.id, item.category,
                              search_finder(compiled, accept=_validator(item.validate)),
                              None, -1, (compiled,)))
    return rules


def _validator(validate: Callable[[str], bool] | None) -> Callable[[str, int, int], int] | None:
    if validate is None:
        return None

    def accept(text: str, start: int, end: int) -> int:
        return end if validate(text[start:end]) else -1

    return accept


def _compile_all(patterns: Iterable[str], field: str,
                 problems: list[dict[str, Any]]) -> list[re.Pattern[str]]:
    compiled = [_compile(p, f"{field}[{i}]", field, problems) for i, p in enumerate(patterns)]
    return [p for p in compiled if p is not None]


def _compile(pattern: str, what: str, field: str,
             problems: list[dict[str, Any]]) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except (re.error, TypeError) as exc:
        problems.append(_problem(field, f"{what} does not compile: {exc}", "pattern_error"))
        return None


def _problem(field: str, message: str, kind: str) -> dict[str, Any]:
    return {"field": field, "message": message, "type": kind}


def _window(kinds: set[str]) -> int:
    bounds = [BUILTIN_RULES[kind].max_len for kind in kinds]
    window = max((bound for bound in bounds if bound is not None), default=0)
    return max(window, PEM_MARKER_MAX) if _PEM in kinds else window


# --- overlaps -------------------------------------------------------------------------


def _resolve(candidates: list[tuple[int, int, Rule]]) -> list[Finding]:
    """Findings from candidates: each group of overlapping ones is settled by ``_pick``."""
    candidates.sort(key=lambda c: (c[0], -c[1]))
    findings: list[Finding] = []
    group: list[tuple[int, int, Rule]] = []
    group_end = -1
    for candidate in candidates:
        if group and candidate[0] >= group_end:
            findings += _pick(group)
            group = []
        group.append(candidate)
        group_end = max(group_end, candidate[1]) if len(group) > 1 else candidate[1]
    if group:
        findings += _pick(group)
    return findings


def _pick(group: list[tuple[int, int, Rule]]) -> list[Finding]:
    """Give each overlap to the more specific candidate; what a less specific one
    covers beyond it stays reported under its own rule, so no part of a value is left
    in the clear (and redacting twice changes nothing)."""
    if len(group) == 1:
        start, end, rule = group[0]
        return [Finding(rule.rule_id, rule.category, start, end)]
    ordered = sorted(group, key=lambda c: (c[2].category == "secret", c[1] - c[0],
                                           c[2].rank, -c[0]), reverse=True)
    # One byte per character of the group's span: linear in what the values cover,
    # however many candidates overlap (a crafted text can chain thousands).
    base = group[0][0]
    taken = bytearray(max(end for _, end, _ in group) - base)
    kept: list[tuple[int, int, Rule]] = []
    for start, end, rule in ordered:
        for low, high in _free(taken, start - base, end - base):
            taken[low:high] = b"\x01" * (high - low)
            kept.append((low + base, high + base, rule))
    kept.sort(key=lambda c: c[0])
    return [Finding(rule.rule_id, rule.category, start, end) for start, end, rule in kept]


def _free(taken: bytearray, start: int, end: int) -> list[tuple[int, int]]:
    """The runs of ``taken[start:end]`` not taken yet."""
    if taken.find(1, start, end) == -1:
        return [(start, end)]
    runs: list[tuple[int, int]] = []
    while start < end:
        low = taken.find(0, start, end)
        if low == -1:
            break
        high = taken.find(1, low, end)
        high = end if high == -1 else high
        runs.append((low, high))
        start = high
    return runs
