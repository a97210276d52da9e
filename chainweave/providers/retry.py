"""When to try a failed call again: a small, frozen retry policy.

The policy is pure arithmetic; whoever retries (the provider manager) sleeps, counts
attempts and decides which errors are retryable. Waits follow "full jitter" from the AWS
Architecture Blog, *Exponential Backoff And Jitter*: retry ``n`` waits a uniform random
time in ``[0, min(max_delay, base_delay * 2 ** (n - 1))]``, which spreads clients out
better than fixed or "equal" jitter.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from chainweave.errors import ChainweaveError, InputValidationError

__all__ = ["RetryPolicy"]

# 2.0 ** 1023 is the largest finite power of two; past it the cap applies anyway.
_MAX_EXPONENT = 1023


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times to try, how long to wait between tries, and the time budget.

    Args:
        max_attempts: Total tries including the first, ``>= 1`` (1 means no retry).
        base_delay: Seconds; the cap on the wait after the first failure.
        max_delay: Seconds; the cap on any one wait of our own choosing.
        deadline: Seconds for all attempts and waits together; ``None`` for no limit.
        jitter: Whether waits are random in ``[0, cap]`` (full jitter) or exactly the cap.
        retry_on: The exception types worth another try, for chains and graph nodes.
            Left out, :meth:`should_retry` retries chainweave errors marked
            ``retryable`` (rate limits, outages, timeouts, dropped connections) and the
            built-in ``TimeoutError`` and ``ConnectionError``; a bug such as a
            ``ValueError`` is not retried. The provider manager always goes by each
            error's ``retryable`` flag.

    Raises:
        InputValidationError: A field is out of range; ``errors`` lists every problem
            and ``field`` names the first.
    """

    max_attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 30.0
    deadline: float | None = 60.0
    jitter: bool = True
    retry_on: tuple[type[BaseException], ...] | None = None

    def __post_init__(self) -> None:
        problems = [
            (field, message)
            for field, message in (
                ("max_attempts", _check_attempts(self.max_attempts)),
                ("base_delay", _check_seconds(self.base_delay, allow_zero=True)),
                ("max_delay", _check_seconds(self.max_delay, allow_zero=True)),
                ("deadline", None if self.deadline is None
                 else _check_seconds(self.deadline, allow_zero=False)),
                ("jitter", None if isinstance(self.jitter, bool) else "must be True or False"),
                ("retry_on", _check_retry_on(self.retry_on)),
            )
            if message is not None
        ]
        if problems:
            errors: list[dict[str, Any]] = [
                {"field": field, "message": message, "type": "value_error"}
                for field, message in problems]
            raise InputValidationError(
                "; ".join(f"RetryPolicy.{field}: {message}" for field, message in problems),
                errors=errors, field=problems[0][0])

    def should_retry(self, exc: BaseException) -> bool:
        """Whether ``exc`` is worth another attempt under this policy (see ``retry_on``)."""
        if self.retry_on is not None:
            return isinstance(exc, self.retry_on)
        if isinstance(exc, ChainweaveError):
            return exc.retryable
        return isinstance(exc, TimeoutError | ConnectionError)

    def backoff(self, attempt: int, *, retry_after: float | None = None,
                rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``attempt``.

        ``attempt=1`` is the wait after the first failure. The cap for it is
        ``min(max_delay, base_delay * 2 ** (attempt - 1))``; with ``jitter`` the wait is
        uniform in ``[0, cap)``, without it the cap itself.

        ``retry_after`` (the vendor's Retry-After) is a floor: the result is
        ``max(wait, retry_after)``. It is honoured even above ``max_delay``, because
        ``max_delay`` bounds the waits we choose, and retrying before the vendor said to
        would only spend an attempt on a certain refusal. What bounds a long
        Retry-After is the deadline: when the wait exceeds :meth:`remaining`, give up
        instead of sleeping. The result is therefore never above
        ``max(max_delay, retry_after)``. A negative or NaN ``retry_after`` is ignored.

        Args:
            attempt: Which retry this wait precedes, ``>= 1``.
            retry_after: The vendor's requested wait in seconds, when it sent one.
            rng: The source of jitter; defaults to the ``random`` module's generator.

        Raises:
            InputValidationError: ``attempt`` is below 1.
        """
        if attempt < 1:
            raise InputValidationError(
                f"RetryPolicy.backoff: attempt must be >= 1, got {attempt!r}", field="attempt")
        cap = min(self.max_delay, self.base_delay * 2.0 ** min(attempt - 1, _MAX_EXPONENT))
        draw = rng.random if rng is not None else random.random
        wait = draw() * cap if self.jitter else cap
        if retry_after is not None and retry_after > wait:
            return retry_after
        return wait

    def remaining(self, started: float, now: float) -> float | None:
        """Seconds left before the deadline, never negative; ``None`` without a deadline.

        Args:
            started: When the first attempt began.
            now: The current time, from the same clock (``time.monotonic()``).
        """
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - (now - started))


def _check_retry_on(value: object) -> str | None:
    if value is None:
        return None
    if (not isinstance(value, tuple) or not value
            or not all(isinstance(t, type) and issubclass(t, BaseException) for t in value)):
        return f"must be a non-empty tuple of exception classes, got {value!r}"
    return None


def _check_attempts(value: object) -> str | None:
    # bool is an int, but ``max_attempts=True`` is a mistake, not "one attempt".
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return f"must be an integer >= 1, got {value!r}"
    return None


def _check_seconds(value: object, *, allow_zero: bool) -> str | None:
    bound = ">= 0" if allow_zero else "> 0"
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero)):
        return f"must be a finite number of seconds {bound}, got {value!r}"
    return None
