"""normalize_text: NFKC, then invisible and control characters removed, idempotently."""

from __future__ import annotations

import re
import string
import sys
import unicodedata

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from chainweave.pipeline.security.normalize import normalize_text

ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\u2061", "\u2062", "\u2063", "\u2064",
              "\ufeff", "\u180e", "\u00ad"]
BIDI = ["\u200e", "\u200f", "\u061c", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e",
        "\u2066", "\u2067", "\u2068", "\u2069"]
CONTROLS = [chr(c) for c in range(sys.maxunicode + 1)
            if unicodedata.category(chr(c)) == "Cc" and chr(c) not in "\t\n\r"]
REMOVED = frozenset(ZERO_WIDTH + BIDI + CONTROLS)

# Text that mixes what normalize_text works on: removable characters, combining marks,
# compatibility forms, and ordinary letters from several scripts.
texts = st.text(alphabet=st.one_of(
    st.characters(codec="utf-8"),
    st.sampled_from(sorted(REMOVED)),
    st.sampled_from(["\u0301", "\u0308", "\u0327", "e", "a", "\uff21", "\U0001d400", "\ufb01",
                     "\u2460", "\u1100", "\u1161", "\u11a8"]),
))


def test_printable_ascii_is_returned_as_is() -> None:
    """Printable ASCII (with tabs and newlines) comes back as the very same object."""
    text = string.printable.replace("\x0b", "").replace("\x0c", "") * 3
    assert normalize_text(text) is text


@pytest.mark.parametrize(("text", "expected"), [
    ("\uff29\uff27\uff2e\uff2f\uff32\uff25", "IGNORE"),
    ("\U0001d422\U0001d420\U0001d427\U0001d428\U0001d42b\U0001d41e", "ignore"),
    ("\u24d8\u24d6\u24dd\u24de\u24e1\u24d4", "ignore"),
    ("\ufb01le", "file"),
    ("e\u0301", "\u00e9"),
])
def test_compatibility_forms_are_folded(text: str, expected: str) -> None:
    """Full-width, mathematical and circled letters and ligatures fold (NFKC)."""
    assert normalize_text(text) == expected


@pytest.mark.parametrize("char", ZERO_WIDTH + BIDI)
def test_invisible_characters_are_removed(char: str) -> None:
    """Each zero-width character and bidi control is deleted from inside a word."""
    assert normalize_text(f"ig{char}nore") == "ignore"


def test_control_characters_are_removed() -> None:
    """Every category-Cc character except tab, line feed and carriage return is deleted."""
    assert normalize_text("a" + "".join(CONTROLS) + "b") == "ab"
    assert normalize_text("a\tb\nc\r\nd") == "a\tb\nc\r\nd"


def test_ascii_controls_are_removed_on_the_fast_path() -> None:
    """NUL, ESC and DEL go from otherwise plain ASCII text too."""
    assert normalize_text("ig\x00no\x1bre\x7f") == "ignore"


def test_a_removed_character_between_combinable_ones_leaves_the_result_composed() -> None:
    """Deleting a joiner between "e" and a combining accent composes them, as NFKC would."""
    assert normalize_text("e\u200d\u0301") == "\u00e9"


@given(texts)
@example("e\u200d\u0301")
@example("\u1100\u200b\u1161")
def test_normalizing_twice_changes_nothing(text: str) -> None:
    """normalize_text is idempotent."""
    once = normalize_text(text)
    assert normalize_text(once) == once


@given(texts)
def test_no_removed_character_remains(text: str) -> None:
    """No zero-width character, bidi control or non-whitespace control survives."""
    assert not REMOVED.intersection(normalize_text(text))


@given(texts)
def test_the_result_is_nfkc_stable(text: str) -> None:
    """The result is already in NFKC."""
    assert unicodedata.is_normalized("NFKC", normalize_text(text))


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E)))
def test_printable_ascii_never_changes(text: str) -> None:
    """Printable ASCII is a fixed point."""
    assert normalize_text(text) == text


@given(st.text(alphabet=st.characters(max_codepoint=0x7F)))
def test_ascii_fast_path_deletes_what_the_general_path_does(text: str) -> None:
    """On ASCII text the byte-level path deletes exactly the characters the regex does."""
    deleted = re.sub("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", "", text)
    assert normalize_text(text) == deleted
    assert (normalize_text(text) is text) == (deleted == text)
