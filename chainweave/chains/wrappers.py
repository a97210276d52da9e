"""Chains that wrap another chain: retries, fallbacks and a timeout.

They are transparent: no span, event or context of their own, so a retried chain's
attempts show up as that chain's spans, and errors keep naming the chain inside.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

from chainweave._internal.redact import redact
from chainweave.chains.base import Chain, check_seconds, within
from chainweave.chains.context import RunContext
from chainweave.chains.events import ChainEnd
from chainweave.errors import ChainTimeoutError, InputValidationError
from chainweave.providers.retry import RetryPolicy

__all__ = ["FallbackChain", "RetryChain", "TimeoutChain"]


class _Wrapper(Chain):
    """A chain around ``inner``, with its name and keys."""

    def __init__(self, inner: Chain, *, output_keys: Sequence[str] | None = None) -> None:
        if not isinstance(inner, Chain):
            raise InputValidationError(f"{type(self).__name__} wraps a Chain, got "
                                       f"{type(inner).__name__}", field="inner")
        super().__init__(inner.name, description=inner.description,
                         input_keys=inner.input_keys,
                         output_keys=inner.output_keys if output_keys is None else output_keys)
        self.inner = inner

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"

    async def _execute(self, inputs: Mapping[str, Any], ctx: RunContext) -> dict[str, Any]:
        return await self._call(inputs if isinstance(inputs, dict) else dict(inputs), ctx)


class RetryChain(_Wrapper):
    """``inner``, tried again under a :class:`RetryPolicy` when it fails.

    Each attempt is a full run of ``inner`` (its spans and events repeat); usage of
    failed attempts still counts. Waits follow the policy's backoff and honour an
    error's ``retry_after``; the policy's deadline bounds the whole.
    """

    def __init__(self, inner: Chain, policy: RetryPolicy | None = None, **kwargs: Any) -> None:
        super().__init__(inner)
        if policy is not None and kwargs:
            raise InputValidationError("with_retry: give a RetryPolicy or its fields, not both",
                                       field="policy")
        if policy is not None and not isinstance(policy, RetryPolicy):
            raise InputValidationError(f"with_retry: policy must be a RetryPolicy, got "
                                       f"{type(policy).__name__}", field="policy")
        unknown = sorted(set(kwargs) - {f.name for f in dataclasses.fields(RetryPolicy)})
        if unknown:
            raise InputValidationError(
                f"with_retry: {unknown} are not RetryPolicy fields (max_attempts, base_delay, "
                "max_delay, deadline, jitter, retry_on)", field=unknown[0])
        self.policy = policy if policy is not None else RetryPolicy(**kwargs)

    async def _call(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        policy = self.policy
        started = time.monotonic()
        attempt = 1
        while True:
            try:
                return await self.inner._execute(inputs, ctx)
            except Exception as exc:
                if attempt >= policy.max_attempts or not policy.should_retry(exc):
                    raise
                wait = policy.backoff(attempt, retry_after=getattr(exc, "retry_after", None))
                remaining = policy.remaining(started, time.monotonic())
                if remaining is not None and wait >= remaining:
                    raise
                exc.add_note(f"chainweave: attempt {attempt} of {policy.max_attempts} failed")
            await asyncio.sleep(wait)
            attempt += 1


class FallbackChain(_Wrapper):
    """``inner``, then each of ``fallbacks`` in turn while they fail with ``exceptions``.

    The fallbacks get the same inputs. Every chain must promise the outputs ``inner``
    promises, so what follows can rely on them.
    """

    def __init__(self, inner: Chain, fallbacks: Sequence[Chain], *,
                 exceptions: tuple[type[Exception], ...] = (Exception,)) -> None:
        super().__init__(inner)
        fallbacks = list(fallbacks)
        if not fallbacks or not all(isinstance(chain, Chain) for chain in fallbacks):
            raise InputValidationError(f"{inner.name}: with_fallbacks needs a non-empty list "
                                       "of chains", field="fallbacks", node=inner.name)
        short = [chain.name for chain in fallbacks
                 if not set(inner.output_keys) <= set(chain.output_keys)]
        if short:
            raise InputValidationError(
                f"{inner.name}: fallbacks {short} do not promise the outputs "
                f"{list(inner.output_keys)}", field="fallbacks", node=inner.name)
        if not exceptions or not all(isinstance(cls, type) and issubclass(cls, Exception)
                                     for cls in exceptions):
            raise InputValidationError(f"{inner.name}: exceptions must be a non-empty tuple "
                                       "of exception classes", field="exceptions")
        self.fallbacks = fallbacks
        self.exceptions = exceptions

    async def _call(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            return await self.inner._execute(inputs, ctx)
        except self.exceptions as exc:
            errors: list[Exception] = [exc]
        for fallback in self.fallbacks:
            try:
                outputs = await fallback.call(inputs, ctx)
            except self.exceptions as exc:
                errors.append(exc)
                continue
            # The inner chain's ChainStart gets its ChainEnd: the run did finish.
            ctx.emit(ChainEnd(ctx.run_id, self.name, ctx.path, outputs, ctx.usage,
                              (time.perf_counter() - started) * 1000.0))
            return outputs
        last = errors[-1]
        for earlier in errors[:-1]:
            last.add_note(redact(f"chainweave: fallback failed before: "
                                 f"{type(earlier).__name__}: {earlier}"))
        raise last


class TimeoutChain(_Wrapper):
    """``inner``, cancelled with :class:`ChainTimeoutError` once ``seconds`` pass."""

    def __init__(self, inner: Chain, seconds: float) -> None:
        super().__init__(inner)
        checked = check_seconds(inner.name, "timeout", seconds)
        if checked is None:
            raise InputValidationError(f"{inner.name}: with_timeout needs a number of seconds",
                                       field="timeout", node=inner.name)
        self.seconds = checked

    async def _call(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        return await within(self.seconds, self.inner._execute(inputs, ctx), ctx,
                            lambda: ChainTimeoutError(
                                f"chain {self.name!r} timed out after {self.seconds}s",
                                node=self.name, details={"timeout": self.seconds}))
