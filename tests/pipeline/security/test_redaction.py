"""redact_findings: placeholder, mask and keyed-hash replacements, and idempotency."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings

from chainweave.errors import InputValidationError
from chainweave.pipeline.findings import Finding
from chainweave.pipeline.security.redaction import (
    RedactionMode,
    redact_findings,
    redaction_label,
)
from tests.pipeline.security.test_pii import DETECTOR, glued_texts, texts_with_values

MODES: list[RedactionMode] = ["placeholder", "mask", "hash"]
TEXT = "mail jane@example.com now"
EMAIL = Finding("pii.email", "pii", 5, 21)


def test_placeholder_names_the_rule() -> None:
    """A placeholder is derived from the rule id."""
    assert redact_findings(TEXT, [EMAIL]) == "mail [REDACTED:EMAIL] now"


@pytest.mark.parametrize(("rule_id", "label"), [
    ("pii.email", "EMAIL"), ("secret.openai_key", "OPENAI_KEY"), ("pii.ipv6", "IPV6"),
    ("custom.employee-id", "EMPLOYEE_ID"), ("acme.2fa code", "X2FA_CODE"),
    ("pii.ssn", "US_SSN"), ("...", "VALUE"),
])
def test_labels_are_upper_case_words(rule_id: str, label: str) -> None:
    """Labels keep letters, digits and underscores, and never start with a digit."""
    assert redaction_label(rule_id) == label


def test_mask_keeps_the_length() -> None:
    """Masking replaces each character with one ``*``."""
    assert redact_findings(TEXT, [EMAIL], "mask") == "mail " + "*" * 16 + " now"


def test_hash_is_a_keyed_digest_in_letters() -> None:
    """The token is ten letters outside the hex range, from HMAC-SHA256 with the salt."""
    token = redact_findings(TEXT, [EMAIL], "hash", salt=b"k1")[5:-4]
    assert re.fullmatch(r"\[EMAIL:[g-z]{10}\]", token)
    assert "s" not in token.split(":")[1]


def test_hash_maps_equal_values_to_equal_tokens() -> None:
    """The same value gives the same token; a different value a different one."""
    text = "a@x.io b@x.io a@x.io"
    found = [Finding("pii.email", "pii", 0, 6), Finding("pii.email", "pii", 7, 13),
             Finding("pii.email", "pii", 14, 20)]
    first, second, third = redact_findings(text, found, "hash", salt=b"k").split(" ")
    assert first == third
    assert first != second


def test_hash_depends_on_the_salt() -> None:
    """Without the salt, a token cannot be recomputed from a guessed value."""
    assert redact_findings(TEXT, [EMAIL], "hash", salt=b"one") != \
        redact_findings(TEXT, [EMAIL], "hash", salt=b"two")


def test_overlapping_findings_become_one_replacement() -> None:
    """Overlaps merge into one span, labelled by the longest finding."""
    text = "key sk-ant-api03-abc end"
    found = [Finding("secret.openai_key", "secret", 4, 18),
             Finding("secret.anthropic_key", "secret", 4, 20),
             Finding("pii.email", "pii", 8, 12)]
    assert redact_findings(text, found) == "key [REDACTED:ANTHROPIC_KEY] end"


def test_findings_in_any_order_and_out_of_range_are_handled() -> None:
    """Unsorted findings work; spans past the text are clipped; empty ones ignored."""
    text = "ab cd ef"
    found = [Finding("x.two", "x", 3, 5), Finding("x.one", "x", -2, 2),
             Finding("x.three", "x", 6, 99), Finding("x.none", "x", 4, 4)]
    assert redact_findings(text, found) == \
        "[REDACTED:ONE] [REDACTED:TWO] [REDACTED:THREE]"


def test_no_findings_leaves_the_text_alone() -> None:
    """Nothing to replace, nothing changes."""
    assert redact_findings(TEXT, []) == TEXT


def test_unknown_mode_is_refused() -> None:
    """A mode outside the three is a configuration error."""
    with pytest.raises(InputValidationError):
        redact_findings(TEXT, [EMAIL], "blur")  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", MODES)
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(sample=texts_with_values())
def test_redaction_is_idempotent(mode: RedactionMode,
                                 sample: tuple[str, list[tuple[str, int, int]]]) -> None:
    """Scanning and redacting again finds nothing and changes nothing."""
    text, _ = sample
    once = redact_findings(text, DETECTOR.scan(text), mode, salt=b"salt")
    assert DETECTOR.scan(once) == []
    assert redact_findings(once, DETECTOR.scan(once), mode, salt=b"salt") == once


@pytest.mark.parametrize("mode", MODES)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(text=glued_texts())
def test_redaction_is_idempotent_for_glued_values(mode: RedactionMode, text: str) -> None:
    """Values glued to each other and to look-alike fragments: still nothing to find
    after one pass (hex digests never read as numbers, "US_SSN" never as context)."""
    once = redact_findings(text, DETECTOR.scan(text), mode, salt=b"salt")
    assert DETECTOR.scan(once) == []
