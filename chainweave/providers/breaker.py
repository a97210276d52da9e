"""A circuit breaker for one deployment: a pure, synchronous state machine.

No I/O, no asyncio, no threads: the caller asks :meth:`CircuitBreaker.allow` before a
call and reports how it ended with one ``record_*`` method; time comes from an injected
clock, so every rule is testable with a fake one::

                 N consecutive failures, or the
    ┌────────┐  window's failure rate reaches r   ┌──────┐
    │ closed │ ─────────────────────────────────▶ │ open │ ◀────────────┐
    └────────┘                                    └──────┘              │ a probe fails:
        ▲                                            │                  │ cooldown * multiplier,
        │                          the cooldown has passed (noticed     │ capped at max_cooldown
        │                          on the next read or record)          │
        │                                            ▼                  │
        │     a probe succeeds: clear the     ┌───────────┐             │
        └──────────────────────────────────── │ half_open │ ────────────┘
              counts and the cooldown growth  └───────────┘
                                         at most K probes in flight

Outcomes that arrive while the breaker is open belong to calls admitted before it
opened; they say nothing about the deployment now and are ignored. For the same reason,
an outcome that arrives while half-open with no probe in flight is ignored: it cannot be
a probe's. The breaker is not thread-safe; one event loop (or one lock) must own it.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeGuard

from chainweave.errors import InputValidationError

__all__ = ["BreakerPolicy", "BreakerState", "CircuitBreaker"]

BreakerState = Literal["closed", "open", "half_open"]

_COUNT_FIELDS = ("failure_threshold", "window", "min_calls", "half_open_probes")


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When a breaker opens and how long it stays open.

    Attributes:
        failure_threshold: Open after this many consecutive failures.
        failure_rate: Or open when failures / calls over the window reach this
            (``0 < rate <= 1``); ``None`` disables the rate rule.
        window: The sliding window: the last ``window`` recorded calls.
        min_calls: The rate rule applies only once the window holds this many calls
            (at most ``window``).
        slow_call_seconds: A success slower than this counts as a failure; ``None``
            never does.
        cooldown: Seconds the breaker stays open after its first trip.
        cooldown_multiplier: Each consecutive trip (without a close in between)
            multiplies the cooldown by this (``>= 1``).
        max_cooldown: The cap on the cooldown (``>= cooldown``).
        half_open_probes: How many probe calls may be in flight at once while half-open.

    Raises:
        InputValidationError: A field is out of range; ``errors`` lists every problem
            and ``field`` names the first.
    """

    failure_threshold: int = 5
    failure_rate: float | None = 0.5
    window: int = 20
    min_calls: int = 10
    slow_call_seconds: float | None = None
    cooldown: float = 5.0
    cooldown_multiplier: float = 2.0
    max_cooldown: float = 300.0
    half_open_probes: int = 1

    def __post_init__(self) -> None:
        problems = _count_problems(self) + _number_problems(self)
        if problems:
            errors = [{"field": field, "message": message, "type": "value_error"}
                      for field, message in problems]
            raise InputValidationError(
                "; ".join(f"BreakerPolicy.{field}: {message}" for field, message in problems),
                errors=errors,
                field=problems[0][0],
            )


def _is_number(value: object) -> TypeGuard[float]:
    # NaN and infinity are refused: both would only misbehave later, mid-outage.
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def _count_problems(policy: BreakerPolicy) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for name in _COUNT_FIELDS:
        value = getattr(policy, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            problems.append((name, f"must be an integer >= 1, got {value!r}"))
    window, min_calls = policy.window, policy.min_calls
    flagged = {name for name, _ in problems}
    if not flagged & {"window", "min_calls"} and min_calls > window:
        # Otherwise the rate rule could never apply, silently.
        problems.append(("min_calls", f"must be <= window ({window}), got {min_calls!r}"))
    return problems


def _number_problems(policy: BreakerPolicy) -> list[tuple[str, str]]:
    cooldown_ok = _is_number(policy.cooldown) and policy.cooldown > 0
    rules: list[tuple[str, object, bool, Callable[[float], bool], str]] = [
        ("failure_rate", policy.failure_rate, True, lambda v: 0 < v <= 1,
         "a fraction with 0 < rate <= 1, or None"),
        ("slow_call_seconds", policy.slow_call_seconds, True, lambda v: v > 0,
         "a finite number of seconds > 0, or None"),
        ("cooldown", policy.cooldown, False, lambda v: v > 0,
         "a finite number of seconds > 0"),
        ("cooldown_multiplier", policy.cooldown_multiplier, False, lambda v: v >= 1,
         "a finite factor >= 1"),
        ("max_cooldown", policy.max_cooldown, False,
         lambda v: v > 0 and (not cooldown_ok or v >= policy.cooldown),
         "a finite number of seconds >= cooldown"),
    ]
    problems: list[tuple[str, str]] = []
    for name, value, nullable, valid, requirement in rules:
        if value is None and nullable:
            continue
        if not (_is_number(value) and valid(value)):
            problems.append((name, f"must be {requirement}, got {value!r}"))
    return problems


class CircuitBreaker:
    """The breaker for one deployment; see the module docstring for the state diagram.

    Call :meth:`allow` before each call and skip the call when it returns ``False``;
    report how each admitted call ended with :meth:`record_success`,
    :meth:`record_failure` or :meth:`record_ignored`.

    Args:
        policy: When to open and for how long; the defaults of :class:`BreakerPolicy`
            when omitted.
        clock: Seconds from a monotonic source; inject a fake one in tests.
        on_change: Called as ``on_change(old, new)`` exactly once per state change,
            after the change has taken effect. Its exceptions propagate to the caller
            of the method that caused the change.
    """

    def __init__(
        self,
        policy: BreakerPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState, BreakerState], None] | None = None,
    ) -> None:
        self._policy = policy if policy is not None else BreakerPolicy()
        self._clock = clock
        self._on_change = on_change
        self._state: BreakerState = "closed"
        self._window: deque[bool] = deque(maxlen=self._policy.window)  # True: a failure
        self._consecutive_failures = 0
        self._trips = 0
        self._trips_since_close = 0
        self._cooldown = self._policy.cooldown
        self._open_until = 0.0
        self._probes_in_flight = 0

    def __repr__(self) -> str:
        return f"CircuitBreaker(state={self._state!r}, trips={self._trips})"

    @property
    def state(self) -> BreakerState:
        """The current state; an open breaker whose cooldown has passed is half-open."""
        self._refresh(self._clock())
        return self._state

    @property
    def open_until(self) -> float:
        """When an open breaker may let probes through (clock time); 0.0 if it is not open.

        It reads no clock, so a router can filter many deployments cheaply: a breaker
        with ``open_until <= now`` is closed, half-open, or due to turn half-open.
        """
        return self._open_until if self._state == "open" else 0.0

    @property
    def trips(self) -> int:
        """How many times the breaker has opened in total."""
        return self._trips

    def allow(self) -> bool:
        """Whether a call may go through now.

        Closed: always. Open: never. Half-open: only while fewer than
        ``half_open_probes`` probes are in flight, and an admitted call takes a probe
        slot until its outcome is recorded.
        """
        self._refresh(self._clock())
        if self._state == "closed":
            return True
        if self._state == "half_open" and self._probes_in_flight < self._policy.half_open_probes:
            self._probes_in_flight += 1
            return True
        return False

    def record_success(self, duration: float | None = None) -> None:
        """Record a call that succeeded.

        Args:
            duration: How long the call took, in seconds. Longer than the policy's
                ``slow_call_seconds`` counts as a failure.
        """
        slow = self._policy.slow_call_seconds
        self._record(failed=slow is not None and duration is not None and duration > slow)

    def record_failure(self) -> None:
        """Record a call that failed in a way that speaks to the deployment's health."""
        self._record(failed=True)

    def record_ignored(self) -> None:
        """Record a call whose outcome must not count, such as the caller's own bad request.

        It frees the half-open probe slot the call held and changes nothing else.
        """
        self._refresh(self._clock())
        if self._state == "half_open" and self._probes_in_flight > 0:
            self._probes_in_flight -= 1

    def retry_after(self) -> float | None:
        """Seconds until an open breaker turns half-open; ``None`` unless open."""
        now = self._clock()
        self._refresh(now)
        return self._retry_after(now)

    def snapshot(self) -> dict[str, Any]:
        """The breaker's state and counters, for health endpoints and logs.

        Returns:
            ``state``, ``consecutive_failures``, ``window_calls``, ``window_failures``,
            ``failure_rate`` (0.0 with no calls in the window), ``trips``,
            ``probes_in_flight`` and ``retry_after``.
        """
        now = self._clock()
        self._refresh(now)
        calls, failures = len(self._window), sum(self._window)
        return {
            "state": self._state,
            "consecutive_failures": self._consecutive_failures,
            "window_calls": calls,
            "window_failures": failures,
            "failure_rate": failures / calls if calls else 0.0,
            "trips": self._trips,
            "probes_in_flight": self._probes_in_flight,
            "retry_after": self._retry_after(now),
        }

    def _retry_after(self, now: float) -> float | None:
        return self._open_until - now if self._state == "open" else None

    def _refresh(self, now: float) -> None:
        if self._state == "open" and now >= self._open_until:
            self._move("half_open")

    def _record(self, *, failed: bool) -> None:
        now = self._clock()
        self._refresh(now)
        if self._state == "closed":
            self._window.append(failed)
            self._consecutive_failures = self._consecutive_failures + 1 if failed else 0
            if self._should_trip():
                self._trip(now)
        elif self._state == "half_open" and self._probes_in_flight > 0:
            if failed:
                self._trip(now)
            else:
                self._close()

    def _should_trip(self) -> bool:
        policy = self._policy
        if self._consecutive_failures >= policy.failure_threshold:
            return True
        calls = len(self._window)
        return (policy.failure_rate is not None and calls >= policy.min_calls
                and sum(self._window) / calls >= policy.failure_rate)

    def _trip(self, now: float) -> None:
        policy = self._policy
        # Grown one step at a time rather than as cooldown * multiplier ** n: equal, but
        # capped before it can overflow however long the outage lasts.
        self._cooldown = (policy.cooldown if self._trips_since_close == 0 else
                          min(self._cooldown * policy.cooldown_multiplier, policy.max_cooldown))
        self._trips_since_close += 1
        self._trips += 1
        self._open_until = now + self._cooldown
        self._probes_in_flight = 0
        self._move("open")

    def _close(self) -> None:
        self._window.clear()
        self._consecutive_failures = 0
        self._trips_since_close = 0
        self._probes_in_flight = 0
        self._move("closed")

    def _move(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        if self._on_change is not None and old != new:
            self._on_change(old, new)
