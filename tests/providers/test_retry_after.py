"""``parse_retry_after``: every way vendors say how long to wait."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainweave.providers.base import parse_retry_after

NOW = datetime(2025, 1, 11, 10, 30, 0, tzinfo=UTC)


def stamp(seconds: float) -> str:
    """An RFC 3339 timestamp ``seconds`` after NOW, as Anthropic sends it."""
    return (NOW + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


# --- Retry-After and retry-after-ms ----------------------------------------------------


def test_retry_after_ms() -> None:
    """``retry-after-ms`` is read as milliseconds."""
    assert parse_retry_after({"retry-after-ms": "1500"}) == 1.5


def test_retry_after_seconds() -> None:
    """``Retry-After`` as a number is seconds."""
    assert parse_retry_after({"Retry-After": "7"}) == 7.0


def test_retry_after_fractional_seconds() -> None:
    """A fractional ``Retry-After`` is kept."""
    assert parse_retry_after({"retry-after": "0.25"}) == 0.25


def test_retry_after_http_date() -> None:
    """``Retry-After`` as an HTTP-date is the time from now until then."""
    assert parse_retry_after({"Retry-After": "Sat, 11 Jan 2025 10:30:30 GMT"}, now=NOW) == 30.0


def test_retry_after_http_date_in_the_past_is_zero() -> None:
    """An HTTP-date already passed means retry now, not a negative wait."""
    assert parse_retry_after({"Retry-After": "Sat, 11 Jan 2025 10:29:00 GMT"}, now=NOW) == 0.0


def test_header_names_are_case_insensitive() -> None:
    """Header names match whatever their case."""
    assert parse_retry_after({"RETRY-AFTER-MS": "250"}) == 0.25


def test_milliseconds_win_over_seconds() -> None:
    """``retry-after-ms``, the more precise header, is used when both are sent."""
    assert parse_retry_after({"retry-after-ms": "100", "retry-after": "5"}) == 0.1


@pytest.mark.parametrize("value", ["soon", "", "Tomorrow at noon", "5 seconds", "0x10"])
def test_garbage_retry_after_is_ignored(value: str) -> None:
    """A Retry-After that is neither a number nor a date gives no wait."""
    assert parse_retry_after({"Retry-After": value}, now=NOW) is None


def test_garbage_ms_falls_back_to_seconds() -> None:
    """An unreadable ``retry-after-ms`` does not hide a readable ``Retry-After``."""
    assert parse_retry_after({"retry-after-ms": "later", "retry-after": "3"}) == 3.0


@pytest.mark.parametrize(
    "headers", [{"retry-after": "-5"}, {"retry-after-ms": "-100"}], ids=["seconds", "ms"]
)
def test_negative_wait_is_clamped(headers: dict[str, str]) -> None:
    """A negative wait is read as zero."""
    assert parse_retry_after(headers) == 0.0


def test_no_headers_no_wait() -> None:
    """With nothing to go on, the wait is unknown."""
    assert parse_retry_after({}) is None


def test_httpx_headers() -> None:
    """An ``httpx.Headers`` works as the mapping, as adapters pass it."""
    assert parse_retry_after(httpx.Headers({"Retry-After": "2"})) == 2.0


# --- OpenAI's x-ratelimit headers ------------------------------------------------------


@pytest.mark.parametrize(
    ("reset", "seconds"),
    [("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1h2m3.5s", 3723.5), ("0.5s", 0.5),
     ("2m5ms", 120.005)],
)
def test_openai_reset_durations(reset: str, seconds: float) -> None:
    """An exhausted limit waits for its Go-style reset duration."""
    headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": reset}
    assert parse_retry_after(headers) == pytest.approx(seconds)


def test_openai_token_limit() -> None:
    """An exhausted token limit counts as well as a request limit."""
    headers = {"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "7s"}
    assert parse_retry_after(headers) == 7.0


def test_openai_limit_not_exhausted_is_ignored() -> None:
    """A reset time of a limit with requests left does not make anyone wait."""
    headers = {"x-ratelimit-remaining-requests": "59", "x-ratelimit-reset-requests": "1s"}
    assert parse_retry_after(headers) is None


def test_openai_bare_number_reset_is_seconds() -> None:
    """A reset without a unit is read as seconds, the unit the other headers use."""
    headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "5"}
    assert parse_retry_after(headers) == 5.0


@pytest.mark.parametrize("reset", ["soon", "1x", "1s garbage", "s", ""])
def test_openai_garbage_reset_is_ignored(reset: str) -> None:
    """A reset that is not a Go duration gives no wait."""
    headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": reset}
    assert parse_retry_after(headers) is None


# --- Anthropic's anthropic-ratelimit headers -------------------------------------------


@pytest.mark.parametrize("kind", ["requests", "tokens", "input-tokens", "output-tokens"])
def test_anthropic_reset_timestamps(kind: str) -> None:
    """An exhausted Anthropic limit waits until its reset timestamp."""
    headers = {
        f"anthropic-ratelimit-{kind}-remaining": "0",
        f"anthropic-ratelimit-{kind}-reset": stamp(12),
    }
    assert parse_retry_after(headers, now=NOW) == 12.0


def test_anthropic_limit_not_exhausted_is_ignored() -> None:
    """An Anthropic limit with capacity left does not make anyone wait."""
    headers = {
        "anthropic-ratelimit-requests-remaining": "3",
        "anthropic-ratelimit-requests-reset": stamp(12),
    }
    assert parse_retry_after(headers, now=NOW) is None


def test_anthropic_reset_in_the_past_is_zero() -> None:
    """A reset timestamp already passed means retry now."""
    headers = {
        "anthropic-ratelimit-tokens-remaining": "0",
        "anthropic-ratelimit-tokens-reset": stamp(-30),
    }
    assert parse_retry_after(headers, now=NOW) == 0.0


def test_anthropic_garbage_timestamp_is_ignored() -> None:
    """A reset that is not a timestamp gives no wait."""
    headers = {
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": "whenever",
    }
    assert parse_retry_after(headers, now=NOW) is None


# --- several limits --------------------------------------------------------------------


def test_longest_wait_wins_openai() -> None:
    """With several exhausted limits, the caller waits for the last to reset."""
    headers = {
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "1s",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "6m0s",
    }
    assert parse_retry_after(headers) == 360.0


def test_longest_wait_wins_anthropic() -> None:
    """Of several exhausted Anthropic limits the latest reset decides."""
    headers = {
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": stamp(40),
        "anthropic-ratelimit-output-tokens-remaining": "0",
        "anthropic-ratelimit-output-tokens-reset": stamp(5),
    }
    assert parse_retry_after(headers, now=NOW) == 40.0


def test_only_exhausted_limits_count() -> None:
    """A longer reset of a limit with capacity left does not lengthen the wait."""
    headers = {
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "2s",
        "x-ratelimit-remaining-tokens": "1000",
        "x-ratelimit-reset-tokens": "1h0m0s",
    }
    assert parse_retry_after(headers) == 2.0


def test_retry_after_beats_reset_headers() -> None:
    """An explicit Retry-After is used as sent, ahead of the reset headers."""
    headers = {
        "retry-after": "4",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "6m0s",
    }
    assert parse_retry_after(headers) == 4.0


# --- properties ------------------------------------------------------------------------

_names = st.sampled_from([
    "retry-after", "retry-after-ms", "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests", "anthropic-ratelimit-tokens-remaining",
    "anthropic-ratelimit-tokens-reset",
])
_values = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["0", "1s", "6m0s", "-3", "Sat, 11 Jan 2025 10:30:30 GMT"]),
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
)


@given(st.dictionaries(_names, _values, max_size=6))
def test_any_headers_give_none_or_a_non_negative_wait(headers: dict[str, str]) -> None:
    """Whatever the headers say, the result is None or a wait of zero or more seconds."""
    wait = parse_retry_after(headers, now=NOW)
    assert wait is None or (wait >= 0 and not math.isnan(wait))


@pytest.mark.parametrize("headers", [{"retry-after": "inf"}, {"retry-after-ms": "Infinity"},
                                     {"retry-after": "nan"}, {"retry-after": "1e400"}])
def test_non_finite_retry_after_is_ignored(headers: dict[str, str]) -> None:
    """A wait that is not a finite number is garbage, not forever."""
    assert parse_retry_after(headers) is None


def test_naive_now_is_utc() -> None:
    """A naive ``now`` is taken as UTC instead of raising TypeError."""
    headers = {"anthropic-ratelimit-requests-remaining": "0",
               "anthropic-ratelimit-requests-reset": "2025-01-11T10:30:10Z"}
    assert parse_retry_after(headers, now=datetime(2025, 1, 11, 10, 30)) == 10.0


def test_far_future_date_is_capped_at_a_day() -> None:
    """A Retry-After date years ahead gives the documented maximum, not years."""
    from chainweave.providers.base import MAX_RETRY_AFTER

    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2099 07:28:00 GMT"}) == MAX_RETRY_AFTER
