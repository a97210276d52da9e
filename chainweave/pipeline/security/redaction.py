"""Replace what a detector found: a placeholder, a same-length mask, or a keyed hash.

Replacements are built so that scanning and redacting again changes nothing: they are
bracketed or made of ``*``, any digit in a label follows a letter (``IPV4``), and a hash
is spelled in letters that are neither hex digits nor able to spell a context word such
as ``ssn``. The SSN label is ``US_SSN`` for the same reason.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from typing import Final, Literal

from chainweave.errors import InputValidationError
from chainweave.pipeline.findings import Finding

__all__ = ["RedactionMode", "redact_findings", "redaction_label"]

RedactionMode = Literal["mask", "hash", "placeholder"]
"""``placeholder``: ``[REDACTED:EMAIL]``; ``mask``: ``*`` for every character;
``hash``: ``[EMAIL:kqzvhtmxwy]``, equal for equal values under one salt."""

# Sixteen letters for the sixteen nibble values: no hex digits (a token must not look
# like an IPv6 group) and no "s" (it must not spell "ssn").
_HASH_ALPHABET: Final = "ghjkmnpqrtuvwxyz"
_HASH_BYTES: Final = 5
_LABEL_JUNK = re.compile(r"[^A-Z0-9_]+")


def redaction_label(rule_id: str) -> str:
    """The upper-case label a rule's replacements carry: ``pii.email`` -> ``EMAIL``,
    ``pii.ssn`` -> ``US_SSN``."""
    label = _LABEL_JUNK.sub("_", rule_id.rsplit(".", 1)[-1].upper()).strip("_")
    if label == "SSN":
        return "US_SSN"  # a bare "SSN" before nine digits would make them an SSN
    # A digit right after the ":" could start a number a detector reads.
    return ("X" + label if label[:1].isdigit() else label) or "VALUE"


def redact_findings(text: str, findings: Sequence[Finding],
                    mode: RedactionMode = "placeholder", *, salt: bytes = b"") -> str:
    """``text`` with the span of every finding replaced.

    Overlapping findings are merged into one replacement, labelled by the longest of
    them. Spans outside the text are clipped.

    Args:
        text: The text the findings were reported on.
        findings: What to replace, in any order.
        mode: ``placeholder`` (``[REDACTED:EMAIL]``), ``mask`` (``*`` for each
            character, so the length stays) or ``hash`` (``[EMAIL:kqzvhtmxwy]``, an
            HMAC-SHA256 of the value keyed with ``salt``: equal values, equal tokens).
        salt: The HMAC key for ``hash``; keep it secret, or short values can be guessed.

    Raises:
        InputValidationError: ``mode`` is not one of the three.
    """
    if mode not in ("mask", "hash", "placeholder"):
        raise InputValidationError(
            f"redaction mode must be mask, hash or placeholder, got {mode!r}", field="mode")
    parts: list[str] = []
    position = 0
    for start, end, rule_id in _merged(findings, len(text)):
        parts.append(text[position:start])
        parts.append(_replacement(text[start:end], rule_id, mode, salt))
        position = end
    parts.append(text[position:])
    return "".join(parts)


def _merged(findings: Sequence[Finding], length: int) -> list[tuple[int, int, str]]:
    spans = sorted((max(0, f.start), min(length, f.end), f.rule_id) for f in findings)
    merged: list[tuple[int, int, str]] = []
    longest = 0
    for start, end, rule_id in spans:
        if end <= start:
            continue
        if merged and start < merged[-1][1]:
            first, last, label = merged[-1]
            if end - start > longest:
                label, longest = rule_id, end - start
            merged[-1] = (first, max(last, end), label)
        else:
            merged.append((start, end, rule_id))
            longest = end - start
    return merged


def _replacement(value: str, rule_id: str, mode: RedactionMode, salt: bytes) -> str:
    if mode == "mask":
        return "*" * len(value)
    label = redaction_label(rule_id)
    if mode == "placeholder":
        return f"[REDACTED:{label}]"
    digest = hmac.new(salt, value.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
    letters = "".join(_HASH_ALPHABET[byte >> 4] + _HASH_ALPHABET[byte & 15]
                      for byte in digest[:_HASH_BYTES])
    return f"[{label}:{letters}]"
