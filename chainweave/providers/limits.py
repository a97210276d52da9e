"""Per-deployment request, token and concurrency limits, as pure synchronous code.

A :class:`DeploymentLimiter` holds up to three limits from a :class:`Limits` value:
requests per minute and tokens per minute, each a :class:`TokenBucket`, and a cap on
calls in flight. :meth:`DeploymentLimiter.try_acquire` checks all three and takes all
three or nothing; the :class:`Reservation` it returns frees the slot and reconciles the
token estimate with the usage the vendor reported.

Nothing here awaits or locks. Under asyncio only one task runs at a time, so a check
followed by a take with no ``await`` between them cannot interleave with another task.
These objects are not safe to share between threads.

What a bucket guarantees: it starts full (``per_minute`` tokens) and refills at
``per_minute / 60`` tokens a second, so the tokens taken over any interval of ``w``
seconds are at most ``per_minute + per_minute * w / 60``. That is a full minute's burst
plus the steady rate: over a 60 s window up to twice ``per_minute`` can pass (a burst at
the start, a minute's refill after it). This is the same shape as a vendor that enforces
its per-minute limit with a continuously refilled bucket; against a vendor that counts
fixed or sliding 60 s windows, configure about half the vendor's limit.

All times come from the injectable ``clock`` (seconds, :func:`time.monotonic` by
default), so tests can drive time by hand.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from chainweave.errors import InputValidationError

__all__ = ["DeploymentLimiter", "Limits", "Reservation", "TokenBucket"]

Clock = Callable[[], float]

# Float refill arithmetic can land a hair short of a whole token; within this fraction
# of the capacity a take counts as covered, so that sleeping for ``wait_time`` is enough.
_TOLERANCE = 1e-9


def _check_amount(amount: float, name: str = "amount") -> None:
    """Reject a negative or non-finite amount: taking -5 would silently give 5."""
    if not math.isfinite(amount) or amount < 0:
        raise InputValidationError(f"{name} must be a finite number >= 0, got {amount!r}",
                                   field=name)


class TokenBucket:
    """Continuous refill: ``per_minute`` tokens per 60 s, capacity ``per_minute``.

    The capacity is a full minute's burst, and the bucket starts full. The balance may
    go below zero through :meth:`take` (usage reconciled after a call); it then refills
    from there, delaying later takes.

    Args:
        per_minute: Tokens added per minute, and the most the bucket holds. Must be > 0.
        clock: Returns the current time in seconds; only differences matter.

    Raises:
        InputValidationError: If ``per_minute`` is not a finite number above zero.
    """

    def __init__(self, per_minute: float, *, clock: Clock = time.monotonic) -> None:
        if not math.isfinite(per_minute) or per_minute <= 0:
            raise InputValidationError(
                f"per_minute must be a finite number > 0, got {per_minute!r}",
                field="per_minute")
        self._capacity = float(per_minute)
        self._rate = self._capacity / 60.0
        self._clock = clock
        self._tokens = self._capacity
        self._updated = clock()

    def __repr__(self) -> str:
        return f"TokenBucket(per_minute={self._capacity:g}, available={self.available():g})"

    @property
    def capacity(self) -> float:
        """The most tokens the bucket holds: one minute's worth."""
        return self._capacity

    def _refill(self) -> None:
        now = self._clock()
        # A clock that steps backwards adds nothing, and is not allowed to take back
        # refill already granted: only forward movement counts.
        if now > self._updated:
            elapsed = now - self._updated
            self._tokens = min(self._capacity, self._tokens + elapsed * self._rate)
            self._updated = now

    def _covers(self, amount: float) -> bool:
        return self._tokens >= amount - _TOLERANCE * self._capacity

    def available(self) -> float:
        """Tokens available now, after refill; negative after a reconcile overshoot."""
        self._refill()
        return self._tokens

    def try_take(self, amount: float = 1.0) -> bool:
        """Take ``amount`` tokens if that many are available; otherwise take nothing.

        Args:
            amount: Tokens to take, >= 0.

        Returns:
            Whether the tokens were taken.
        """
        _check_amount(amount)
        self._refill()
        if not self._covers(amount):
            return False
        self._tokens -= amount
        return True

    def take(self, amount: float) -> None:
        """Take ``amount`` tokens unconditionally; the balance may go negative.

        Args:
            amount: Tokens to take, >= 0.
        """
        _check_amount(amount)
        self._refill()
        self._tokens -= amount

    def give_back(self, amount: float) -> None:
        """Return ``amount`` tokens; the balance never rises above :attr:`capacity`.

        Args:
            amount: Tokens to return, >= 0.
        """
        _check_amount(amount)
        self._refill()
        self._tokens = min(self._capacity, self._tokens + amount)

    def wait_time(self, amount: float = 1.0) -> float:
        """Seconds until ``amount`` tokens are available, if nothing else takes any.

        Args:
            amount: Tokens wanted, >= 0.

        Returns:
            ``0.0`` if :meth:`try_take` would succeed now, ``math.inf`` if ``amount``
            exceeds the capacity (it can never be available), else the refill time.
        """
        _check_amount(amount)
        if amount > self._capacity:
            return math.inf
        self._refill()
        if self._covers(amount):
            return 0.0
        return (amount - self._tokens) / self._rate


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits of one deployment; ``None`` means unlimited.

    Args:
        rpm: Requests per minute.
        tpm: Tokens per minute, counted by each request's estimate and then
            reconciled with the usage the vendor reports.
        max_concurrency: Calls in flight at once.

    Raises:
        InputValidationError: If a limit is not a positive integer or ``None``; every
            bad field is listed in ``errors``, and ``field`` names the first.
    """

    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int | None = None

    def __post_init__(self) -> None:
        errors: list[dict[str, Any]] = []
        for spec in fields(self):
            value = getattr(self, spec.name)
            if value is None:
                continue
            # bool is an int subclass; True requests per minute is a mistake, not 1.
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                errors.append({"field": spec.name, "type": "positive_int",
                               "message": f"{spec.name} must be a positive integer or None"})
        if errors:
            message = "; ".join(e["message"] for e in errors)
            raise InputValidationError(f"Invalid limits: {message}", errors=errors,
                                       field=errors[0]["field"])


class Reservation:
    """What :meth:`DeploymentLimiter.try_acquire` took for one call, until settled.

    Made only by :meth:`DeploymentLimiter.try_acquire`. Call :meth:`settle` exactly once
    when the call ends, however it ends (a ``finally`` block is the place).

    Attributes:
        estimated_tokens: The token estimate taken from the tpm bucket on acquire.
    """

    __slots__ = ("_limiter", "_settled", "estimated_tokens")

    def __init__(self, limiter: DeploymentLimiter, estimated_tokens: int) -> None:
        self._limiter = limiter
        self._settled = False
        self.estimated_tokens = estimated_tokens

    def __repr__(self) -> str:
        state = "settled" if self._settled else "open"
        return f"Reservation(estimated_tokens={self.estimated_tokens}, {state})"

    @property
    def settled(self) -> bool:
        """Whether :meth:`settle` has run."""
        return self._settled

    def settle(self, actual_tokens: int | None) -> None:
        """Free the concurrency slot and reconcile the token estimate; later calls do nothing.

        Reconciliation against the tpm bucket:

        * ``actual_tokens > estimate``: the difference is taken too. The bucket may go
          negative, which delays later acquires until the overshoot has refilled.
        * ``actual_tokens < estimate``: the difference is given back (never above
          capacity).
        * ``actual_tokens=None``: the call reached the vendor but its usage is unknown
          (it failed or was cut off mid-way). The estimate stays spent, since the vendor
          has likely counted the prompt.
        * ``actual_tokens=0``: pass this when the request was never sent (cancelled or
          refused before the wire); the whole estimate is given back.

        The request counted against rpm is never returned, even for a call that was not
        sent: erring towards fewer requests cannot trip the vendor's limit.

        Args:
            actual_tokens: The usage the vendor reported, ``0`` if the request was never
                sent, or ``None`` if it was sent but the usage is unknown.

        Raises:
            InputValidationError: If ``actual_tokens`` is negative (nothing is released,
                so a corrected call can still settle).
        """
        if actual_tokens is not None and actual_tokens < 0:
            raise InputValidationError(
                f"actual_tokens must be >= 0 or None, got {actual_tokens!r}",
                field="actual_tokens")
        if self._settled:
            return
        self._settled = True
        self._limiter._release(self.estimated_tokens, actual_tokens)


class DeploymentLimiter:
    """Request, token and concurrency limits for one deployment.

    Args:
        limits: The limits to enforce.
        clock: Returns the current time in seconds, shared by both buckets.
    """

    def __init__(self, limits: Limits, *, clock: Clock = time.monotonic) -> None:
        self.limits = limits
        self._rpm = None if limits.rpm is None else TokenBucket(limits.rpm, clock=clock)
        self._tpm = None if limits.tpm is None else TokenBucket(limits.tpm, clock=clock)
        self._in_flight = 0

    def __repr__(self) -> str:
        return f"DeploymentLimiter({self.limits!r}, in_flight={self._in_flight})"

    @property
    def in_flight(self) -> int:
        """Calls acquired and not yet settled."""
        return self._in_flight

    def try_acquire(self, estimated_tokens: int) -> Reservation | None:
        """Take a concurrency slot, one request and ``estimated_tokens``, or nothing.

        All three must be available now; if any is short, nothing is taken. A request
        whose estimate exceeds the whole tpm capacity can never pass (its
        :meth:`wait_time` is ``math.inf``), so it always gets ``None``.

        Args:
            estimated_tokens: The tokens the call is expected to use, >= 0.

        Returns:
            A :class:`Reservation` to settle when the call ends, or ``None``.
        """
        _check_amount(estimated_tokens, "estimated_tokens")
        if self.limits.max_concurrency is not None \
                and self._in_flight >= self.limits.max_concurrency:
            return None
        if self.wait_time(estimated_tokens) > 0.0:
            return None
        # No await since the check: what it saw is still true, so these cannot fail.
        if self._rpm is not None:
            self._rpm.take(1.0)
        if self._tpm is not None:
            self._tpm.take(estimated_tokens)
        self._in_flight += 1
        return Reservation(self, estimated_tokens)

    def wait_time(self, estimated_tokens: int) -> float:
        """Seconds until :meth:`try_acquire` could pass on rpm and tpm grounds.

        Concurrency is not counted: a slot frees when a call settles, not with time.

        Args:
            estimated_tokens: The tokens the call is expected to use, >= 0.

        Returns:
            ``0.0`` if the buckets allow it now, ``math.inf`` if the estimate exceeds
            the tpm capacity, else the longer of the two buckets' waits.
        """
        _check_amount(estimated_tokens, "estimated_tokens")
        rpm_wait = 0.0 if self._rpm is None else self._rpm.wait_time(1.0)
        tpm_wait = 0.0 if self._tpm is None else self._tpm.wait_time(estimated_tokens)
        return max(rpm_wait, tpm_wait)

    def remaining(self) -> dict[str, float | int | None]:
        """What is left now, for health reports and response headers.

        Returns:
            ``rpm_remaining`` and ``tpm_remaining`` (bucket balances, ``None`` when
            unlimited; tpm may be negative), ``in_flight`` and ``max_concurrency``
            (``None`` when unlimited).
        """
        return {
            "rpm_remaining": None if self._rpm is None else self._rpm.available(),
            "tpm_remaining": None if self._tpm is None else self._tpm.available(),
            "in_flight": self._in_flight,
            "max_concurrency": self.limits.max_concurrency,
        }

    def _release(self, estimated_tokens: int, actual_tokens: int | None) -> None:
        """Settle one reservation: see :meth:`Reservation.settle` for the rules."""
        self._in_flight -= 1
        if self._tpm is None or actual_tokens is None:
            return
        if actual_tokens > estimated_tokens:
            self._tpm.take(actual_tokens - estimated_tokens)
        elif actual_tokens < estimated_tokens:
            self._tpm.give_back(estimated_tokens - actual_tokens)
