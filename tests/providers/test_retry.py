"""RetryPolicy: capped exponential backoff, full jitter, Retry-After floor, deadline."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainweave.errors import (
    AuthenticationError,
    InputValidationError,
    ProviderUnavailableError,
    RateLimitError,
)
from chainweave.providers.retry import RetryPolicy

STEADY = RetryPolicy(jitter=False)


def test_defaults() -> None:
    """The defaults are three attempts, 0.5 s doubling to 30 s, a 60 s deadline, jitter."""
    assert dataclasses.astuple(RetryPolicy()) == (3, 0.5, 30.0, 60.0, True, None)


def test_without_jitter_waits_double() -> None:
    """Without jitter each wait is twice the last, starting at ``base_delay``."""
    assert [STEADY.backoff(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]


def test_without_jitter_waits_stop_at_max_delay() -> None:
    """Once doubling passes ``max_delay`` every wait is ``max_delay``."""
    assert [STEADY.backoff(n) for n in range(7, 10)] == [30.0, 30.0, 30.0]


def test_huge_attempt_numbers_do_not_overflow() -> None:
    """A very late retry gets the cap, not an OverflowError or infinity."""
    assert STEADY.backoff(100_000) == 30.0


@given(attempt=st.integers(min_value=1, max_value=2_000),
       base=st.floats(min_value=0, max_value=100),
       cap=st.floats(min_value=0, max_value=1_000),
       seed=st.integers(min_value=0, max_value=2**32))
def test_jitter_stays_within_zero_and_the_cap(attempt: int, base: float, cap: float,
                                              seed: int) -> None:
    """A jittered wait lies in ``[0, min(max_delay, base_delay * 2 ** (attempt - 1))]``."""
    policy = RetryPolicy(base_delay=base, max_delay=cap)
    ceiling = RetryPolicy(base_delay=base, max_delay=cap, jitter=False).backoff(attempt)
    assert 0.0 <= policy.backoff(attempt, rng=random.Random(seed)) <= ceiling


def test_jitter_spreads_waits_out() -> None:
    """Jittered waits for the same attempt differ from call to call."""
    rng = random.Random(3)
    waits = {RetryPolicy(max_delay=8.0).backoff(5, rng=rng) for _ in range(20)}
    assert len(waits) == 20


def test_jitter_is_reproducible_with_a_seed() -> None:
    """Equally seeded rngs give the same waits."""
    policy = RetryPolicy()
    first = [policy.backoff(n, rng=random.Random(11)) for n in range(1, 6)]
    assert [policy.backoff(n, rng=random.Random(11)) for n in range(1, 6)] == first


def test_jitter_without_an_rng_uses_the_module_generator() -> None:
    """Without ``rng`` the wait still lies within its cap."""
    assert 0.0 <= RetryPolicy().backoff(3) <= 2.0


def test_retry_after_raises_a_shorter_wait() -> None:
    """A Retry-After longer than the backoff becomes the wait."""
    assert STEADY.backoff(1, retry_after=3.0) == 3.0


def test_retry_after_does_not_shorten_a_longer_wait() -> None:
    """A Retry-After shorter than the backoff leaves the backoff."""
    assert STEADY.backoff(4, retry_after=1.0) == 4.0


def test_retry_after_is_honoured_above_max_delay() -> None:
    """``max_delay`` caps our own waits, not the vendor's: 120 s stays 120 s."""
    assert STEADY.backoff(1, retry_after=120.0) == 120.0


@given(attempt=st.integers(min_value=1, max_value=64),
       retry_after=st.floats(min_value=0, max_value=1_000),
       seed=st.integers(min_value=0, max_value=2**32))
def test_jittered_wait_with_retry_after_stays_in_bounds(attempt: int, retry_after: float,
                                                        seed: int) -> None:
    """With jitter the wait is at least Retry-After and at most ``max(cap, Retry-After)``."""
    wait = RetryPolicy().backoff(attempt, retry_after=retry_after, rng=random.Random(seed))
    assert retry_after <= wait <= max(STEADY.backoff(attempt), retry_after)


@pytest.mark.parametrize("retry_after", [-5.0, math.nan])
def test_meaningless_retry_after_is_ignored(retry_after: float) -> None:
    """A negative or NaN Retry-After leaves the backoff as it is."""
    assert STEADY.backoff(2, retry_after=retry_after) == 1.0


def test_attempt_below_one_is_rejected() -> None:
    """There is no wait before the first attempt: ``attempt=0`` is an error."""
    with pytest.raises(InputValidationError) as info:
        STEADY.backoff(0)
    assert info.value.field == "attempt"


def test_remaining_is_deadline_minus_elapsed() -> None:
    """Ten seconds into a 60 s deadline, 50 s remain."""
    assert RetryPolicy().remaining(started=100.0, now=110.0) == 50.0


def test_remaining_is_never_negative() -> None:
    """Past the deadline, zero seconds remain."""
    assert RetryPolicy(deadline=5.0).remaining(started=0.0, now=9.0) == 0.0


def test_remaining_is_none_without_a_deadline() -> None:
    """With no deadline there is no limit to report."""
    assert RetryPolicy(deadline=None).remaining(started=0.0, now=1e9) is None


def test_edge_values_are_accepted() -> None:
    """One attempt, zero delays and no deadline make a valid (retry-free) policy."""
    policy = RetryPolicy(max_attempts=1, base_delay=0, max_delay=0, deadline=None)
    assert policy.backoff(1) == 0.0


@pytest.mark.parametrize(("field", "value"), [
    ("max_attempts", 0),
    ("max_attempts", 2.5),
    ("max_attempts", True),
    ("base_delay", -0.1),
    ("base_delay", math.nan),
    ("max_delay", math.inf),
    ("max_delay", "30"),
    ("deadline", 0),
    ("deadline", -1.0),
    ("jitter", 1),
])
def test_invalid_fields_are_named(field: str, value: object) -> None:
    """An out-of-range field raises InputValidationError naming that field."""
    with pytest.raises(InputValidationError, match=f"RetryPolicy.{field}") as info:
        RetryPolicy(**{field: value})  # type: ignore[arg-type]
    assert info.value.field == field


def test_every_invalid_field_is_reported_at_once() -> None:
    """Several bad fields are listed together, the first one in ``field``."""
    with pytest.raises(InputValidationError) as info:
        RetryPolicy(max_attempts=0, max_delay=-1.0, deadline=0.0)
    assert [e["field"] for e in info.value.errors] == ["max_attempts", "max_delay", "deadline"]
    assert info.value.field == "max_attempts"


def test_policy_is_frozen() -> None:
    """A policy is a value: its fields cannot be reassigned."""
    policy = RetryPolicy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.max_attempts = 5  # type: ignore[misc]


@pytest.mark.parametrize(("error", "expected"), [
    (RateLimitError("slow"), True), (ProviderUnavailableError("down"), True),
    (AuthenticationError("key"), False), (TimeoutError(), True), (ConnectionResetError(), True),
    (ValueError("bug"), False), (RateLimitError("told not to", retryable=False), False),
])
def test_should_retry_by_default_follows_retryable(error: Exception, expected: bool) -> None:
    """Without ``retry_on``: retryable chainweave errors and transient built-ins only."""
    assert RetryPolicy().should_retry(error) is expected


def test_should_retry_with_retry_on_takes_exactly_those_types() -> None:
    """``retry_on`` replaces the default rule with the listed types."""
    policy = RetryPolicy(retry_on=(KeyError,))
    assert policy.should_retry(KeyError("k"))
    assert not policy.should_retry(RateLimitError("slow"))
