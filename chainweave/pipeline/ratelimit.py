"""Request and token limits per key, as a pipeline stage: :class:`RateLimiter`.

Each key (the whole pipeline, a user, an API key, or whatever a function of the request
says) has up to two :class:`~chainweave.providers.limits.TokenBucket` objects: one for
requests per minute, one for tokens per minute. A bucket starts full and refills
continuously, so over any window of ``w`` seconds at most ``limit + limit * w / 60``
requests (or tokens) pass: a minute's burst plus the steady rate.

A request is admitted by taking one request and its estimated tokens (the prompt
estimate plus ``max_tokens`` when set) from both buckets at once, or from neither. When
that has to wait, and the wait is at most ``max_wait``, the request reserves its share
now and sleeps until the buckets would have covered it; later requests queue behind it.
Otherwise it is refused with :class:`~chainweave.errors.RateLimitError` carrying
``retry_after``. A request whose estimate exceeds the whole tokens-per-minute budget can
never pass, and is refused at once with
:class:`~chainweave.errors.RequestTooLargeError`.

When the call ends, the estimate is reconciled with what was really used: the usage the
response (or a stream's last chunk carrying usage) reports; without a report, the
prompt estimate plus an estimate of the text that came back. The difference is given
back or taken too (a bucket may go below zero, which delays later requests).

Keys are held in an LRU of ``max_keys`` entries. A key pushed out by newer ones starts
again with full buckets when it comes back, so ``max_keys`` should exceed the number of
keys active within a minute. Key values appear in errors and logs only as a short
SHA-256 digest, never as they are.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import Literal

from cachetools import LRUCache

from chainweave._internal.redact import get_logger, pseudonym
from chainweave.errors import InputValidationError, RateLimitError, RequestTooLargeError
from chainweave.pipeline.base import Call, NextChat, NextStream, Stage, closing_stream
from chainweave.providers.limits import TokenBucket
from chainweave.streaming import StreamAccumulator
from chainweave.tokens import estimate_text_tokens, estimate_tokens
from chainweave.types import ChatRequest, ChatResponse, StreamChunk, Usage

__all__ = ["KeyFunction", "KeyScope", "RateLimiter"]

KeyScope = Literal["global", "user", "api_key"]
"""Built-in ways to pick a request's key."""

KeyFunction = Callable[[ChatRequest], str]
"""A function of the request that returns its key."""

_SCOPES: tuple[KeyScope, ...] = ("global", "user", "api_key")
_ANONYMOUS = "anonymous"

_log = get_logger("chainweave.pipeline.ratelimit")


def _limit(value: float | None, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or value <= 0:
        raise InputValidationError(
            f"RateLimiter.{field} must be a finite number > 0 or None, got {value!r}",
            field=field)
    return float(value)


def _check_options(key: object, max_wait: float, max_keys: int) -> None:
    if not callable(key) and key not in _SCOPES:
        raise InputValidationError(
            f"RateLimiter.key must be one of {', '.join(_SCOPES)} or a function of the "
            f"request, got {key!r}", field="key")
    if isinstance(max_wait, bool) or not isinstance(max_wait, int | float) \
            or math.isnan(max_wait) or max_wait < 0:
        raise InputValidationError(
            f"RateLimiter.max_wait must be a number of seconds >= 0, got {max_wait!r}",
            field="max_wait")
    if isinstance(max_keys, bool) or not isinstance(max_keys, int) or max_keys < 1:
        raise InputValidationError(
            f"RateLimiter.max_keys must be an integer >= 1, got {max_keys!r}",
            field="max_keys")


class _Buckets:
    """The request and token buckets of one key."""

    __slots__ = ("requests", "tokens")

    def __init__(self, rpm: float | None, tpm: float | None, clock: Callable[[], float]) -> None:
        self.requests = None if rpm is None else TokenBucket(rpm, clock=clock)
        self.tokens = None if tpm is None else TokenBucket(tpm, clock=clock)

    def wait_time(self, cost: int) -> tuple[float, str]:
        """Seconds until one request and ``cost`` tokens are covered, and the limit that
        sets that wait (``requests`` or ``tokens``)."""
        by_requests = 0.0 if self.requests is None else self.requests.wait_time(1.0)
        by_tokens = 0.0 if self.tokens is None else self.tokens.wait_time(cost)
        return (by_tokens, "tokens") if by_tokens > by_requests else (by_requests, "requests")

    def reserve(self, cost: int, wait: float) -> tuple[float, float]:
        """Take one request and ``cost`` tokens as of ``wait`` seconds from now.

        Returns:
            What was taken from each bucket, to give back if the request never runs.
        """
        return _take_at(self.requests, 1.0, wait), _take_at(self.tokens, cost, wait)

    def give_back(self, requests: float, tokens: float) -> None:
        """Return to both buckets, never above their capacity."""
        if self.requests is not None:
            self.requests.give_back(requests)
        if self.tokens is not None:
            self.tokens.give_back(tokens)


def _take_at(bucket: TokenBucket | None, amount: float, wait: float) -> float:
    """Take ``amount`` now so that, ``wait`` seconds on, the balance is what a take made
    then would leave; returns what was taken.

    A request that waits goes ahead only when its wait is over. Refill that would spill
    over the capacity meanwhile is lost to a take made at that time, so it is taken now
    as well: otherwise a bucket that another limit makes the request wait for would
    refill behind its back, and let more through than its limit.
    """
    if bucket is None:
        return 0.0
    spill = 0.0
    if wait > 0.0:
        spill = max(0.0, bucket.available() + wait * bucket.capacity / 60.0 - bucket.capacity)
    bucket.take(amount + spill)
    return amount + spill


class _Ticket:
    """What one admitted request took, until its call ends."""

    __slots__ = ("buckets", "estimate", "prompt", "taken")

    def __init__(self, buckets: _Buckets, estimate: int, prompt: int,
                 taken: tuple[float, float]) -> None:
        self.buckets, self.estimate, self.prompt, self.taken = buckets, estimate, prompt, taken

    def cancel(self) -> None:
        """The request was never sent: give back what it took."""
        self.buckets.give_back(*self.taken)

    def settle(self, usage: Usage | None, text: str) -> None:
        """Reconcile the estimate with reported usage, or with the text that came back."""
        if self.buckets.tokens is None:
            return
        if usage is not None and usage.total_tokens > 0:
            actual = usage.total_tokens
        else:
            actual = self.prompt + estimate_text_tokens(text)
        if actual > self.estimate:
            self.buckets.tokens.take(actual - self.estimate)
        elif actual < self.estimate:
            self.buckets.tokens.give_back(self.estimate - actual)


class RateLimiter(Stage):
    """Limit requests and tokens per minute, per key; see the module docstring.

    Args:
        requests_per_minute: Requests a key may make per minute; ``None`` for no limit.
        tokens_per_minute: Tokens (estimated, then reconciled with usage) a key may use
            per minute; ``None`` for no limit.
        key: ``"global"`` (one budget for everything), ``"user"`` (``request.user``),
            ``"api_key"`` (``request.metadata["api_key_id"]``, set by a gateway), or a
            function of the request returning its key. Requests without a user or key
            id share one ``anonymous`` budget.
        max_wait: Seconds a request may wait for its turn before it is refused instead.
        max_keys: How many keys to remember (least recently used go first).
        clock: Returns the time in seconds; only differences matter.

    Raises:
        InputValidationError: If a limit is not a positive number, ``max_wait`` is
            negative, ``max_keys`` is below 1 or ``key`` is unknown; ``field`` names it.
    """

    name = "rate_limit"

    def __init__(
        self,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        *,
        key: KeyScope | KeyFunction = "global",
        max_wait: float = 0.0,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.requests_per_minute = _limit(requests_per_minute, "requests_per_minute")
        self.tokens_per_minute = _limit(tokens_per_minute, "tokens_per_minute")
        _check_options(key, max_wait, max_keys)
        self.key = key
        self.max_wait = float(max_wait)
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: LRUCache[str | None, _Buckets] = LRUCache(maxsize=max_keys)
        self._unlimited = self.requests_per_minute is None and self.tokens_per_minute is None

    def __repr__(self) -> str:
        return (f"RateLimiter(requests_per_minute={self.requests_per_minute}, "
                f"tokens_per_minute={self.tokens_per_minute}, key={self.scope!r}, "
                f"max_wait={self.max_wait:g})")

    @property
    def scope(self) -> str:
        """How keys are picked: ``global``, ``user``, ``api_key`` or ``custom``."""
        return self.key if isinstance(self.key, str) else "custom"

    def remaining(self, request: ChatRequest) -> dict[str, float | None]:
        """What the key of ``request`` has left now, for response headers.

        Returns:
            ``requests`` and ``tokens`` bucket balances (tokens may be negative after a
            call used more than estimated); ``None`` for a limit that is not set.
        """
        buckets = self._buckets.get(self._key_of(request))
        if buckets is None:
            return {"requests": self.requests_per_minute, "tokens": self.tokens_per_minute}
        return {
            "requests": None if buckets.requests is None else buckets.requests.available(),
            "tokens": None if buckets.tokens is None else buckets.tokens.available(),
        }

    async def chat(self, request: ChatRequest, call: Call, call_next: NextChat) -> ChatResponse:
        """Admit ``request`` (waiting up to ``max_wait``), call on, reconcile its tokens.

        Raises:
            RateLimitError: The key is over a limit for longer than ``max_wait``.
            RequestTooLargeError: The estimate exceeds the whole tokens-per-minute budget.
        """
        if self._unlimited:
            return await call_next(request)
        ticket = await self._admit(request, call)
        response: ChatResponse | None = None
        try:
            response = await call_next(request)
            return response
        finally:
            if response is None:
                ticket.settle(None, "")
            else:
                ticket.settle(response.usage, response.content)

    def stream(self, request: ChatRequest, call: Call,
               call_next: NextStream) -> AsyncIterator[StreamChunk]:
        """Admit ``request`` when the stream is first read; reconcile when it ends.

        Raises:
            RateLimitError: The key is over a limit for longer than ``max_wait``.
            RequestTooLargeError: The estimate exceeds the whole tokens-per-minute budget.
        """
        if self._unlimited:
            return call_next(request)
        return self._stream(request, call, call_next)

    async def _stream(self, request: ChatRequest, call: Call,
                      call_next: NextStream) -> AsyncIterator[StreamChunk]:
        ticket = await self._admit(request, call)
        seen = StreamAccumulator()
        try:
            async with closing_stream(call_next(request)) as chunks:
                async for chunk in chunks:
                    seen.add(chunk)
                    yield chunk
        finally:
            ticket.settle(seen.usage, seen.text)

    # --- admission -----------------------------------------------------------------------

    def _key_of(self, request: ChatRequest) -> str | None:
        """The request's key; ``None`` is the shared anonymous key."""
        key = self.key
        if key == "global":
            return "global"
        if key == "user":
            value: object = request.user
        elif key == "api_key":
            value = request.metadata.get("api_key_id")
        else:
            assert callable(key)
            value = key(request)
        return str(value) if value else None

    def _label(self, key: str | None) -> str:
        """The key as errors and logs show it: never its raw value."""
        if key is None:
            return _ANONYMOUS
        return "global" if self.key == "global" else f"key:{pseudonym(key, 12)}"

    def _estimate(self, request: ChatRequest) -> tuple[int, int]:
        """The prompt estimate and the whole cost (prompt plus ``max_tokens``)."""
        if self.tokens_per_minute is None:
            return 0, 0
        prompt = estimate_tokens(request.messages, request.model)
        return prompt, prompt + (request.max_tokens or 0)

    def _buckets_for(self, key: str | None) -> _Buckets:
        buckets = self._buckets.get(key)
        if buckets is None:
            buckets = _Buckets(self.requests_per_minute, self.tokens_per_minute, self._clock)
            self._buckets[key] = buckets
        return buckets

    async def _admit(self, request: ChatRequest, call: Call) -> _Ticket:
        """Take the request's share now, sleeping until it is covered; or refuse."""
        key = self._key_of(request)
        prompt, cost = self._estimate(request)
        if self.tokens_per_minute is not None and cost > self.tokens_per_minute:
            call.rate_limited = True
            raise self._too_large(key, cost, request)
        buckets = self._buckets_for(key)
        wait, limit = buckets.wait_time(cost)
        if wait > self.max_wait:
            call.rate_limited = True
            raise self._refusal(key, limit, wait, request)
        ticket = _Ticket(buckets, cost, prompt, buckets.reserve(cost, wait))
        if wait > 0.0:
            call.rate_limited = True
            _log.debug("rate limit: %s %s waits %.3fs for %s", self.scope, self._label(key),
                       wait, limit)
            try:
                await self._sleep(wait)
            except BaseException:
                ticket.cancel()
                raise
        return ticket

    async def _sleep(self, seconds: float) -> None:
        """Wait for a turn, in real time (tests that drive a fake clock override it)."""
        await asyncio.sleep(seconds)

    def _refusal(self, key: str | None, limit: str, wait: float,
                 request: ChatRequest) -> RateLimitError:
        per_minute = self.requests_per_minute if limit == "requests" else self.tokens_per_minute
        label = self._label(key)
        _log.info("rate limit: refused %s %s over %s limit, retry after %.3fs",
                  self.scope, label, limit, wait)
        return RateLimitError(
            f"rate limit exceeded: {label} ({self.scope} scope) is over its limit of "
            f"{per_minute:g} {limit} per minute; retry after {wait:.3g}s",
            status_code=429, retry_after=wait, model=request.model,
            details={"scope": self.scope, "key": label, "limit": limit,
                     "per_minute": per_minute},
        )

    def _too_large(self, key: str | None, cost: int, request: ChatRequest) -> RequestTooLargeError:
        label = self._label(key)
        _log.info("rate limit: refused %s %s, estimate %d tokens over the whole budget",
                  self.scope, label, cost)
        return RequestTooLargeError(
            f"request needs an estimated {cost} tokens (prompt plus max_tokens), more than "
            f"the whole budget of {self.tokens_per_minute:g} tokens per minute for {label} "
            f"({self.scope} scope), so it can never pass; shorten the prompt or lower "
            "max_tokens",
            retryable=False, model=request.model,
            details={"scope": self.scope, "key": label, "limit": "tokens",
                     "per_minute": self.tokens_per_minute, "estimated_tokens": cost},
        )
