"""Secret redaction: the registry, key-shaped patterns, the logging filter and ``mask``."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainweave._internal import redact as redact_module
from chainweave._internal.redact import (
    REDACTED,
    RedactingFilter,
    get_logger,
    mask,
    redact,
    register_secret,
)
from tests.strategies import KEY_CHARS, api_keys

OPENAI_KEY = "sk-proj-AbCdEfGhIjKlMnOpQrSt0123"
ANTHROPIC_KEY = "sk-ant-api03-AbCdEfGh_IjKl-0123"


@contextmanager
def fresh_registry() -> Iterator[None]:
    """An empty secret registry inside the block, the previous one restored after it."""
    saved = redact_module._secrets, redact_module._known
    redact_module._secrets, redact_module._known = set(), None
    try:
        yield
    finally:
        redact_module._secrets, redact_module._known = saved


@pytest.fixture(autouse=True)
def _isolated_registry() -> Iterator[None]:
    """Keep secrets registered here out of every other test."""
    with fresh_registry():
        yield


# --- registered secrets ----------------------------------------------------------------


def test_registered_secret_is_masked() -> None:
    """A registered value of any shape is replaced by the mask."""
    register_secret("azure-key-0123456789")
    assert redact("key=azure-key-0123456789;") == f"key={REDACTED};"


def test_every_occurrence_is_masked() -> None:
    """Each occurrence of a registered value is replaced."""
    register_secret("hunter2hunter2")
    assert redact("hunter2hunter2 and hunter2hunter2") == f"{REDACTED} and {REDACTED}"


def test_text_without_secrets_is_unchanged() -> None:
    """Ordinary text passes through untouched."""
    register_secret("hunter2hunter2")
    text = "The capital of France is Paris: 42 tokens, model gpt-4o-mini."
    assert redact(text) == text


def test_longest_secret_masked_whole() -> None:
    """When one secret contains another, the longer is masked whole, leaving no tail."""
    register_secret("abcdefgh")
    register_secret("abcdefgh-tail-1234")
    assert redact("[abcdefgh-tail-1234]") == f"[{REDACTED}]"


def test_shorter_secret_still_masked_alone() -> None:
    """The shorter of two nested secrets is still masked where it appears alone."""
    register_secret("abcdefgh-tail-1234")
    register_secret("abcdefgh")
    assert redact("abcdefgh!") == f"{REDACTED}!"


def test_secret_with_regex_characters() -> None:
    """A secret full of regex metacharacters is matched literally."""
    register_secret("a.b*c+d?(e)[f]")
    assert redact("x a.b*c+d?(e)[f] y axbbbcd") == f"x {REDACTED} y axbbbcd"


@pytest.mark.parametrize("value", ["short", "1234567"])
def test_short_values_are_not_registered(value: str) -> None:
    """Values under eight characters are not registered, to spare common words."""
    register_secret(value)
    assert redact(f"x {value} y") == f"x {value} y"


@pytest.mark.parametrize("value", ["", None])
def test_empty_values_are_not_registered(value: str | None) -> None:
    """A missing key (None or empty) registers nothing, so text is not shredded."""
    register_secret(value)
    assert redact("abc") == "abc"


def test_short_value_is_left_in_text() -> None:
    """A too-short value given to register_secret stays readable in text."""
    register_secret("ollama")
    assert redact("provider ollama is up") == "provider ollama is up"


def test_registering_twice_is_harmless() -> None:
    """Registering the same secret again changes nothing."""
    register_secret("hunter2hunter2")
    register_secret("hunter2hunter2")
    assert redact("hunter2hunter2") == REDACTED


# --- key-shaped patterns ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"key {OPENAI_KEY} rejected", f"key {REDACTED} rejected"),
        (f"key {ANTHROPIC_KEY} rejected", f"key {REDACTED} rejected"),
        (f"'api_key': '{OPENAI_KEY}'", f"'api_key': '{REDACTED}'"),
        (f"?key={OPENAI_KEY}&x=1", f"?key={REDACTED}&x=1"),
        ("Authorization: Bearer abc.DEF-123_xyz==", f"Authorization: Bearer {REDACTED}"),
        (f"Bearer {OPENAI_KEY}", f"Bearer {REDACTED}"),
    ],
)
def test_key_shapes_are_masked_unregistered(text: str, expected: str) -> None:
    """OpenAI and Anthropic keys and bearer tokens are masked without registration."""
    assert redact(text) == expected


def test_lowercase_bearer_is_masked() -> None:
    """Auth schemes are case-insensitive, so a ``bearer`` token is masked too."""
    assert redact("authorization: bearer abcdefgh12345678") == f"authorization: bearer {REDACTED}"


@pytest.mark.parametrize(
    "text",
    [
        "install sk-learn",
        "sk-ant-short",
        "Bearer abc",
        "node risk-assessment-pipeline failed",
        "task-classification-and-routing",
        "disk-usage-monitor-step-2",
    ],
)
def test_look_alikes_are_not_masked(text: str) -> None:
    """Short sk- words, short bearer values and words ending in "sk-" are left alone."""
    assert redact(text) == text


# --- mask ------------------------------------------------------------------------------


def test_mask_shows_only_a_prefix() -> None:
    """``mask`` keeps three characters, enough to tell key kinds apart, and hides the rest."""
    assert mask(OPENAI_KEY) == f"sk-...{REDACTED}"


@pytest.mark.parametrize("value", [None, ""])
def test_mask_of_nothing(value: str | None) -> None:
    """``mask`` of a missing key says None."""
    assert mask(value) == "None"


# --- logging ---------------------------------------------------------------------------


def test_filter_redacts_formatted_arguments(caplog: pytest.LogCaptureFixture) -> None:
    """A key passed as a logging argument never reaches a handler."""
    logger = get_logger("chainweave.tests.redact.args")
    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.info("calling with %s", OPENAI_KEY)
    assert caplog.messages == [f"calling with {REDACTED}"]


def test_filter_redacts_registered_secret_in_message(caplog: pytest.LogCaptureFixture) -> None:
    """A registered key in the message text itself is redacted."""
    register_secret("azure-key-0123456789")
    logger = get_logger("chainweave.tests.redact.message")
    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.info("key azure-key-0123456789 expired")
    assert "azure-key-0123456789" not in caplog.text


def test_filter_leaves_clean_records_lazy(caplog: pytest.LogCaptureFixture) -> None:
    """A record with nothing to redact keeps its format string and arguments."""
    logger = get_logger("chainweave.tests.redact.clean")
    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.info("%d tokens", 42)
    [record] = caplog.records
    assert (record.msg, record.args) == ("%d tokens", (42,))


def test_filter_survives_bad_format_arguments(caplog: pytest.LogCaptureFixture) -> None:
    """A format/argument mismatch does not raise in the caller, and its key is redacted."""
    logger = get_logger("chainweave.tests.redact.bad")
    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.info("%d retries", OPENAI_KEY)
    [message] = caplog.messages
    assert OPENAI_KEY not in message
    assert "%d retries" in message


def test_filter_on_a_handler() -> None:
    """The filter works on a user's own handler too, as its docstring offers."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("chainweave.tests.redact.handler")
    logger.addHandler(handler)
    try:
        logger.warning("key %s", ANTHROPIC_KEY)
    finally:
        logger.removeHandler(handler)
    assert [r.getMessage() for r in records] == [f"key {REDACTED}"]


def test_get_logger_attaches_filter_once() -> None:
    """Asking for the same logger twice leaves one redacting filter on it."""
    get_logger("chainweave.tests.redact.once")
    logger = get_logger("chainweave.tests.redact.once")
    assert sum(isinstance(f, RedactingFilter) for f in logger.filters) == 1


# --- cost ------------------------------------------------------------------------------

MEGABYTE = 1_000_000


@pytest.mark.parametrize(
    "text",
    [
        "sk-" * (MEGABYTE // 3),
        ("sk-" + "a" * 15 + " ") * (MEGABYTE // 19),
        ("sk-ant-" + "a" * 7 + " ") * (MEGABYTE // 15),
        ("Bearer " + "a" * 7 + " ") * (MEGABYTE // 15),
        "Bearer " + "=" * MEGABYTE,
        "ask-" * (MEGABYTE // 4),
        "abcdefgh1234567 " * (MEGABYTE // 16),
    ],
    ids=["sk-run", "sk-short", "sk-ant-short", "bearer-short", "bearer-pad", "ask", "near-key"],
)
def test_redact_is_linear_on_adversarial_input(text: str) -> None:
    """A megabyte of near-miss input is redacted in well under a second."""
    register_secret("abcdefgh12345678")
    started = time.perf_counter()
    redact(text)
    assert time.perf_counter() - started < 1.0


# --- properties ------------------------------------------------------------------------

_key_shaped = st.one_of(
    st.text(alphabet=KEY_CHARS, min_size=16, max_size=40).map(lambda s: f"sk-{s}"),
    st.text(alphabet=KEY_CHARS, min_size=8, max_size=40).map(lambda s: f"sk-ant-{s}"),
    st.text(alphabet=KEY_CHARS + ".~+/", min_size=8, max_size=40).map(lambda s: f"Bearer {s}"),
)


@given(st.lists(api_keys(), min_size=1, max_size=4, unique=True), st.data())
def test_registered_secrets_never_survive(secrets: list[str], data: st.DataObject) -> None:
    """Text made of registered secrets, key shapes and anything else keeps no secret."""
    pieces = st.one_of(st.text(max_size=12), st.sampled_from(secrets), _key_shaped)
    text = "".join(data.draw(st.lists(pieces, min_size=1, max_size=8)))
    with fresh_registry():
        for secret in secrets:
            register_secret(secret)
        cleaned = redact(text)
    assert [s for s in secrets if s in cleaned] == []


@given(st.lists(api_keys(), max_size=3, unique=True), st.data())
def test_redact_is_idempotent(secrets: list[str], data: st.DataObject) -> None:
    """Redacting redacted text changes nothing."""
    pieces = st.one_of(st.text(max_size=12), _key_shaped, *(
        [st.sampled_from(secrets)] if secrets else []
    ))
    text = "".join(data.draw(st.lists(pieces, max_size=8)))
    with fresh_registry():
        for secret in secrets:
            register_secret(secret)
        once = redact(text)
        assert redact(once) == once


def test_filter_redacts_logged_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    """A secret inside a logged exception's traceback is masked in the output."""
    secret = "sk-trace-0123456789abcdefghij"
    logger = get_logger("chainweave.test.traceback")
    caplog.set_level(logging.ERROR)
    try:
        raise RuntimeError(f"failed with {secret}")
    except RuntimeError:
        logger.exception("call failed")
    assert "failed with" in caplog.text
    assert secret not in caplog.text


def test_mask_hides_short_secrets_entirely() -> None:
    """A secret too short to spare a prefix is shown as the marker alone."""
    assert mask("abc") == REDACTED
    assert mask("sk-abcdefghijkl").startswith("sk-...")
