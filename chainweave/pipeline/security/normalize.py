"""Text normalization that every security detector runs on first.

:func:`normalize_text` folds compatibility forms (NFKC: full-width and mathematical letters,
ligatures, circled letters) and deletes the characters attackers use to split or hide words
from a pattern: zero-width characters, bidirectional controls and control characters. Tabs
and line breaks stay, because detectors read line structure.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["normalize_text"]

# Zero-width (U+200B-U+200D, U+2060-U+2064, U+FEFF, U+180E, soft hyphen U+00AD), bidi
# controls (U+200E, U+200F, U+061C, U+202A-U+202E, U+2066-U+2069) and category Cc
# (U+0000-U+001F, U+007F-U+009F) except tab, line feed and carriage return.
_STRIPPED = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u2069\ufeff]"
)
# The same characters for ASCII text, deleted from its bytes (much faster than a regex).
_ASCII_CONTROL = bytes([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])


def normalize_text(text: str) -> str:
    """NFKC-normalize ``text`` and delete invisible and control characters.

    The result is NFKC-stable and holds no zero-width character, bidi control, or control
    character other than ``\\t``, ``\\n`` and ``\\r``; applying the function again changes
    nothing. Pure ASCII text skips the Unicode work.

    Args:
        text: Any text, typically untrusted input.

    Returns:
        The normalized text (``text`` itself when nothing changes).
    """
    if text.isascii():
        # NFKC is the identity on ASCII; only C0 controls and DEL can need deleting.
        kept = text.encode("ascii").translate(None, _ASCII_CONTROL)
        return text if len(kept) == len(text) else kept.decode("ascii")
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    stripped = _STRIPPED.sub("", text)
    if len(stripped) == len(text):
        return text
    # Deleting a character can leave a composable pair ("e", ZWJ, U+0301); NFKC never
    # produces a deleted character, so one more pass makes the result a fixed point.
    return unicodedata.normalize("NFKC", stripped)
