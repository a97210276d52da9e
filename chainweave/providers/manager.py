"""ProviderManager: one ChatModel routing every request over registered deployments.

For each request::

    model or alias ─► deployments serving it ─► available ones (healthy, configured,
    breaker not open, not cooling down after a 429) ─► strategy picks one ─► its breaker
    admits the call and its limiter reserves rpm/tpm/concurrency ─► call with timeout
        success ─► breaker success, tokens reconciled, latency averaged, response tagged
        caller's mistake (invalid request, content filter) ─► raised at once
        bad key / unknown model / no quota ─► deployment set aside, next one at once
        retryable (5xx, 429, timeout, reset) ─► breaker failure; the next untried
            deployment at once, or, when every one was tried, a full-jitter backoff
            (floored by Retry-After) and another round, up to max_attempts and deadline
    group exhausted ─► the model's fallback models in order, then the error

Streams are routed, retried and failed over only until their first chunk. After a chunk
has gone out a failure is raised as it is: text is never sent twice.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from types import TracebackType
from typing import Any, Literal, Self

from opentelemetry import metrics, trace

from chainweave._internal.redact import get_logger
from chainweave.errors import (
    AuthenticationError,
    CircuitOpenError,
    ContentFilteredError,
    InputValidationError,
    InvalidRequestError,
    ModelNotFoundError,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    QuotaExceededError,
    RateLimitError,
    RequestTooLargeError,
)
from chainweave.pricing import ModelPrice
from chainweave.providers.breaker import BreakerPolicy, BreakerState, CircuitBreaker
from chainweave.providers.deployment import Deployment, model_map
from chainweave.providers.limits import DeploymentLimiter, Limits, Reservation
from chainweave.providers.retry import RetryPolicy
from chainweave.providers.strategies import RoutingStrategy, strategy_named
from chainweave.tokens import estimate_tokens
from chainweave.types import (
    ChatModel,
    ChatRequest,
    ChatResponse,
    HealthStatus,
    StreamChunk,
    Usage,
)

__all__ = ["ProviderManager"]

logger = get_logger("chainweave.providers.manager")
_meter = metrics.get_meter("chainweave")
_breaker_changes = _meter.create_counter(
    "chainweave.breaker.transitions", description="Circuit breaker state changes")

#: Errors that are the caller's doing: every deployment would give the same answer.
_CALLER_ERRORS = (InvalidRequestError, ContentFilteredError, RequestTooLargeError)
#: Errors that say this deployment cannot serve, now or ever: set it aside, try the next.
_DEPLOYMENT_ERRORS = (AuthenticationError, ModelNotFoundError, QuotaExceededError)
#: Completion tokens assumed for the tpm estimate when a request sets no max_tokens.
DEFAULT_COMPLETION_ESTIMATE = 256
#: Shortest sleep while waiting for a limit (concurrency frees on completion, not time).
_POLL = 0.005
_ALL_TRIED = "all_tried"

HealthProbe = Literal["auto", "chat"]


class _Exhausted(Exception):
    """A model group has nothing left to try; carries the error to report."""

    def __init__(self, error: ProviderError) -> None:
        super().__init__(error.message)
        self.error = error


class ProviderManager:
    """A ChatModel that routes requests over deployments with breakers, limits and fallbacks.

    Args:
        strategy: A :class:`RoutingStrategy` or its name; round-robin by default.
        retry: Attempts, backoff and deadline per model group.
        breaker: The default breaker policy for deployments.
        max_concurrency: Calls in flight across all deployments (``LLM_CONCURRENT_NUMBER``).
        timeout: Seconds per call, unless a deployment or the request sets its own.
        max_wait: The longest the manager waits for a rate-limited deployment to free up.
        default_model: The model used when a request names none.
        fallbacks: Model → the models to try, in order, when it is exhausted.
        health_interval: Seconds between periodic health checks once started.
        health_probe: ``auto`` uses the provider's own ``health()`` (listing models)
            where it has one; ``chat`` sends a one-token chat instead, for servers
            without a models endpoint.
        clock, sleep, rng: Injectable time, sleep and randomness, for tests.
        name: What errors and logs call this manager.
    """

    def __init__(
        self,
        *,
        strategy: RoutingStrategy | str = "round_robin",
        retry: RetryPolicy | None = None,
        breaker: BreakerPolicy | None = None,
        max_concurrency: int | None = None,
        timeout: float | None = None,
        max_wait: float = 10.0,
        default_model: str | None = None,
        fallbacks: Mapping[str, Sequence[str]] | None = None,
        health_interval: float = 30.0,
        health_probe: HealthProbe = "auto",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        name: str = "manager",
    ) -> None:
        if max_concurrency is not None and max_concurrency < 1:
            raise InputValidationError("max_concurrency must be at least 1",
                                       field="max_concurrency")
        self.name = name
        self.strategy = strategy_named(strategy) if isinstance(strategy, str) else strategy
        self.retry = retry or RetryPolicy()
        self.breaker_policy = breaker or BreakerPolicy()
        self.timeout = timeout
        self.max_wait = max_wait
        self.default_model = default_model
        self.health_interval = health_interval
        self.health_probe = health_probe
        self._probes: dict[str, HealthProbe] = {}
        self._fallbacks = {k: list(v) for k, v in (fallbacks or {}).items()}
        self._clock, self._sleep = clock, sleep
        self._rng = rng or random.Random()
        self._deployments: dict[str, Deployment] = {}
        self._aliases: dict[str, list[str]] = {}
        self._groups: dict[str, list[Deployment]] = {}  # cache: model or alias → deployments
        self._slots = asyncio.Semaphore(max_concurrency) if max_concurrency else None
        self._health_task: asyncio.Task[None] | None = None
        self._needs_estimate = False

    # --- registration -------------------------------------------------------------------

    def register(self, name: str, provider: ChatModel,
                 models: Sequence[str] | Mapping[str, str] | None = None, *, weight: int = 1,
                 rpm: int | None = None, tpm: int | None = None,
                 max_concurrency: int | None = None, price: ModelPrice | None = None,
                 timeout: float | None = None, breaker: BreakerPolicy | None = None,
                 health_probe: HealthProbe | None = None) -> Deployment:
        """Add a deployment: ``provider`` serving ``models`` (all models when omitted).

        ``models`` may map public names to upstream names (``{"gpt-4o": "prod-4o"}``).

        Raises:
            InputValidationError: a duplicate name, a weight below 1, or bad limits.
        """
        if name in self._deployments:
            raise InputValidationError(f"a deployment named {name!r} is already registered",
                                       field="name")
        if weight < 1:
            raise InputValidationError("weight must be at least 1", field="weight")
        deployment = Deployment(
            name, provider, model_map(models), weight=weight,
            limiter=DeploymentLimiter(Limits(rpm=rpm, tpm=tpm, max_concurrency=max_concurrency),
                                      clock=self._clock),
            breaker=CircuitBreaker(breaker or self.breaker_policy, clock=self._clock,
                                   on_change=self._breaker_changed(name)),
            price=price, timeout=timeout,
        )
        self._deployments[name] = deployment
        if health_probe is not None:
            self._probes[name] = health_probe
        self._needs_estimate = self._needs_estimate or tpm is not None
        self._groups.clear()
        return deployment

    def unregister(self, name: str) -> None:
        """Remove a deployment; calls already running on it finish."""
        self._deployments.pop(name, None)
        self._groups.clear()

    def alias(self, name: str, deployments: Sequence[str]) -> None:
        """Let ``name`` (``"fast"``) route over these deployments, each with its first model.

        Raises:
            InputValidationError: a deployment named is not registered.
        """
        unknown = [d for d in deployments if d not in self._deployments]
        if unknown or not deployments:
            raise InputValidationError(
                f"alias {name!r} names unregistered deployments: {unknown or 'none given'}",
                field="deployments")
        self._aliases[name] = list(deployments)
        self._groups.clear()

    def set_fallbacks(self, model: str, fallbacks: Sequence[str]) -> None:
        """When ``model`` is exhausted, try these models (or aliases) in order."""
        self._fallbacks[model] = list(fallbacks)

    @property
    def deployments(self) -> Mapping[str, Deployment]:
        """The registered deployments by name."""
        return self._deployments

    def _group(self, model: str) -> list[Deployment]:
        group = self._groups.get(model)
        if group is None:
            names = self._aliases.get(model)
            group = ([self._deployments[n] for n in names if n in self._deployments]
                     if names is not None
                     else [d for d in self._deployments.values() if d.serves(model)])
            self._groups[model] = group
        return group

    def _upstream(self, deployment: Deployment, group: str) -> str:
        if group in self._aliases:
            return deployment.default_model() or group
        return deployment.upstream_model(group)

    # --- chat ---------------------------------------------------------------------------

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """Answer ``request`` through the first deployment that can, falling back as needed.

        Raises:
            ProviderError: the caller's own mistake at once, otherwise the last failure
                once every deployment of the model and of its fallbacks has been tried;
                ``details["attempts"]`` lists what was tried.
        """
        if self._slots is None:
            return await self._route(request)
        async with self._slots:
            return await self._route(request)

    async def _route(self, request: ChatRequest) -> ChatResponse:
        run = _Run(self, request)
        for group in run.groups:
            try:
                return await self._chat_group(run, group)
            except _Exhausted as exhausted:
                run.last = exhausted.error
        raise run.failure()

    async def _chat_group(self, run: _Run, group: str) -> ChatResponse:
        deployments = self._group(group)
        for attempt in run.attempt_numbers():
            deployment, reservation = await self._acquire(run, group, deployments, attempt)
            upstream = self._upstream(deployment, group)
            started = self._clock()
            try:
                response = await self._call(deployment, run.request_for(upstream))
            except ProviderError as exc:
                self._failed(run, deployment, reservation, exc)
                continue
            except BaseException:
                reservation.settle(0)
                deployment.breaker.record_ignored()
                raise
            return self._succeeded(run, deployment, reservation, response, group, started)
        raise _Exhausted(run.last_or(group))

    async def _call(self, deployment: Deployment, request: ChatRequest) -> ChatResponse:
        timeout = request.timeout or deployment.timeout or self.timeout
        deployment.requests += 1
        if timeout is None:
            return await deployment.provider.chat(request)
        try:
            async with asyncio.timeout(timeout):
                return await deployment.provider.chat(request)
        except TimeoutError:
            raise ProviderTimeoutError(
                f"{deployment.name} took longer than {timeout:g}s", provider=deployment.name,
                model=request.model) from None

    def _succeeded(self, run: _Run, deployment: Deployment, reservation: Reservation,
                   response: ChatResponse, group: str, started: float) -> ChatResponse:
        usage = self._book_success(run, deployment, reservation, response.usage, started,
                                   response.latency_ms)
        return response.model_copy(update={
            "usage": usage,
            "attempts": run.attempts,
            "metadata": {**response.metadata, "deployment": deployment.name,
                         "model_group": group, "requested_model": run.model},
        })

    def _book_success(self, run: _Run, deployment: Deployment, reservation: Reservation,
                      usage: Usage | None, started: float,
                      latency_ms: float | None) -> Usage | None:
        """Book one success, chat or stream: breaker, tokens, latency, usage and cost."""
        elapsed = self._clock() - started
        deployment.breaker.record_success(elapsed)
        reservation.settle((usage.total_tokens if usage is not None else 0) or run.estimate)
        deployment.successes += 1
        deployment.last_error = None
        deployment.record_latency(latency_ms or elapsed * 1000)
        return deployment.account(usage) if usage is not None else None

    def _failed(self, run: _Run, deployment: Deployment, reservation: Reservation,
                exc: ProviderError) -> None:
        """Book a failed call; raise at once if it is the caller's own mistake."""
        reservation.settle(run.estimate if exc.status_code is not None else 0)
        deployment.last_error = f"{exc.error_type}: {exc.message}"
        run.record(deployment.name, exc)
        if isinstance(exc, _CALLER_ERRORS):
            deployment.breaker.record_ignored()
            raise exc
        deployment.failures += 1
        if isinstance(exc, _DEPLOYMENT_ERRORS):
            deployment.misconfigured = isinstance(exc, AuthenticationError)
            deployment.breaker.record_failure()
            run.set_aside.add(deployment.name)
            return
        deployment.breaker.record_failure()
        if isinstance(exc, RateLimitError):
            wait = exc.retry_after if exc.retry_after is not None else self.retry.base_delay
            deployment.cooldown_until = max(deployment.cooldown_until, self._clock() + wait)
        run.tried.add(deployment.name)

    # --- picking a deployment -----------------------------------------------------------

    async def _acquire(self, run: _Run, group: str, deployments: list[Deployment],
                       attempt: int) -> tuple[Deployment, Reservation]:
        """The next deployment and its reservation, waiting a bounded time if all are busy."""
        waited = 0.0
        while True:
            picked = self._pick(run, group, deployments)
            if isinstance(picked, tuple):
                return picked
            if picked is _ALL_TRIED:
                await self._backoff(run, attempt)
                run.tried.clear()
                continue
            if picked is None or isinstance(picked, str):
                raise _Exhausted(self._nothing_available(run, group, deployments))
            budget = min(self.max_wait - waited, run.remaining())
            if picked > budget:
                raise _Exhausted(run.last or RateLimitError(
                    f"every deployment for {group!r} is at its limit", provider=self.name,
                    model=group, retry_after=picked))
            wait = max(picked, _POLL)
            await self._sleep(wait)
            waited += wait

    def _pick(self, run: _Run, group: str, deployments: list[Deployment],
              ) -> tuple[Deployment, Reservation] | float | str | None:
        """A deployment with its reservation; else the wait until an untried one may be
        free, ``_ALL_TRIED`` when every available one was tried, or None when none is.

        Open breakers are left out by ``open_until``, which reads no clock, so the
        strategy rotates over the deployments that can take calls; the picked one's
        ``allow()`` has the final word (half-open probe slots).
        """
        excluded = (run.tried | run.set_aside) if run.tried or run.set_aside else ()
        untried = [d for d in deployments
                   if d.healthy and not d.misconfigured and d.name not in excluded]
        now = self._clock()
        fresh = [d for d in untried
                 if d.cooldown_until <= now and d.breaker.open_until <= now]
        while fresh:
            deployment = self.strategy.choose(fresh, group)
            reservation = deployment.limiter.try_acquire(run.estimate)
            if reservation is not None:
                if deployment.breaker.allow():
                    return deployment, reservation
                reservation.settle(0)
            fresh.remove(deployment)
        waiting = [d for d in untried if d.breaker.state != "open"]
        if waiting:
            return min(max(d.cooldown_until - now, d.limiter.wait_time(run.estimate))
                       for d in waiting)
        tried = any(d.name in run.tried and d.healthy and not d.misconfigured
                    and d.breaker.state != "open" for d in deployments)
        return _ALL_TRIED if tried else None

    def _nothing_available(self, run: _Run, group: str,
                           deployments: list[Deployment]) -> ProviderError:
        if not deployments:
            return ModelNotFoundError(f"no deployment serves model {group!r}",
                                      provider=self.name, model=group)
        if run.last is not None:
            return run.last
        open_waits = [w for d in deployments if (w := d.breaker.retry_after()) is not None]
        if open_waits:
            return CircuitOpenError(
                f"every deployment for {group!r} has its circuit open", provider=self.name,
                model=group, retry_after=min(open_waits))
        return ProviderUnavailableError(f"no healthy deployment for {group!r}",
                                        provider=self.name, model=group)

    async def _backoff(self, run: _Run, attempt: int) -> None:
        delay = self.retry.backoff(attempt, rng=self._rng,
                                   retry_after=getattr(run.last, "retry_after", None))
        remaining = run.remaining()
        if delay > remaining:
            raise _Exhausted(run.last_or(run.model))
        await self._sleep(delay)

    # --- streaming ----------------------------------------------------------------------

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        """Stream from the first deployment that starts; fail over only before a chunk.

        After the first chunk has been yielded, a failure is raised as it is: the
        manager never restarts a stream elsewhere, so no text is sent twice.
        """
        if self._slots is None:
            async for chunk in self._route_stream(request):
                yield chunk
            return
        async with self._slots:
            async for chunk in self._route_stream(request):
                yield chunk

    async def _route_stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        run = _Run(self, request)
        for group in run.groups:
            deployments = self._group(group)
            try:
                for attempt in run.attempt_numbers():
                    deployment, reservation = await self._acquire(run, group, deployments,
                                                                  attempt)
                    upstream = self._upstream(deployment, group)
                    stream = self._stream_one(run, deployment, reservation, upstream)
                    async with aclosing(stream):
                        started = False
                        async for chunk in stream:
                            started = True
                            yield chunk
                        if started:
                            return
                raise _Exhausted(run.last_or(group))
            except _Exhausted as exhausted:
                run.last = exhausted.error
        raise run.failure()

    async def _stream_one(self, run: _Run, deployment: Deployment, reservation: Reservation,
                          upstream: str) -> AsyncGenerator[StreamChunk, None]:
        """One deployment's stream; yields nothing if it failed before its first chunk."""
        started_at = self._clock()
        deployment.requests += 1
        inner = deployment.provider.stream(run.request_for(upstream))
        sent = False
        try:
            async with aclosing(inner):  # type: ignore[type-var]
                async for chunk in inner:
                    if chunk.finish_reason is not None:
                        usage = self._book_success(run, deployment, reservation, chunk.usage,
                                                   started_at, None)
                        chunk = chunk.model_copy(update={"usage": usage})
                    sent = True
                    yield chunk
        except ProviderError as exc:
            if sent:
                deployment.breaker.record_failure()
                deployment.failures += 1
                reservation.settle(run.estimate)
                raise
            self._failed(run, deployment, reservation, exc)
        except BaseException:
            reservation.settle(0 if not sent else run.estimate)
            deployment.breaker.record_ignored()
            raise


    # --- health and lifecycle -------------------------------------------------------------

    async def health_check(self) -> dict[str, HealthStatus]:
        """Check every deployment with its cheap health call; mark the unhealthy ones.

        A deployment without ``health()`` is checked with a one-token chat. A deployment
        that passes is healthy again (and no longer counted as misconfigured).
        """
        names = list(self._deployments)
        results = await asyncio.gather(*(
            self._deployments[n].check(self._probes.get(n, self.health_probe), self._clock)
            for n in names))
        return dict(zip(names, results, strict=True))

    async def start(self) -> None:
        """Start periodic health checks every ``health_interval`` seconds."""
        if self._health_task is None or self._health_task.done():
            self._health_task = asyncio.create_task(self._health_loop(),
                                                    name=f"{self.name}-health")

    async def _health_loop(self) -> None:
        while True:
            try:
                await self.health_check()
            except Exception:  # a check must never kill the loop
                logger.exception("%s: health check failed", self.name)
            # Real time, not the injectable sleep: a test's instant sleep would spin here.
            await asyncio.sleep(self.health_interval)

    async def stop(self) -> None:
        """Stop periodic health checks and wait for the loop to end."""
        task, self._health_task = self._health_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def aclose(self) -> None:
        """Stop health checks and close every provider that can be closed."""
        await self.stop()
        for deployment in self._deployments.values():
            close = getattr(deployment.provider, "aclose", None)
            if close is not None:
                await close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    # --- reporting ------------------------------------------------------------------------

    def status(self) -> dict[str, dict[str, Any]]:
        """Per deployment: health, breaker state, in-flight, limits left, latency, counts."""
        now = self._clock()
        return {name: d.status(now) for name, d in self._deployments.items()}

    def stats(self) -> dict[str, Any]:
        """Requests, successes, failures, tokens and cost per deployment and in total."""
        per = {name: d.stats() for name, d in self._deployments.items()}
        total = sum((d.usage for d in self._deployments.values()), Usage())
        return {"deployments": per, "total": {
            "requests": sum(d.requests for d in self._deployments.values()),
            "successes": sum(d.successes for d in self._deployments.values()),
            "failures": sum(d.failures for d in self._deployments.values()),
            "total_tokens": total.total_tokens, "cost_usd": total.cost_usd}}

    def _breaker_changed(self, name: str) -> Callable[[BreakerState, BreakerState], None]:
        def changed(old: BreakerState, new: BreakerState) -> None:
            attributes = {"deployment": name, "from": old, "to": new}
            _breaker_changes.add(1, attributes)
            trace.get_current_span().add_event("chainweave.breaker.state_change", attributes)
            logger.info("%s: breaker %s -> %s", name, old, new)
        return changed


class _Run:
    """The bookkeeping of one request: groups to try, attempts, deadline, errors."""

    __slots__ = ("attempts", "errors", "estimate", "groups", "last", "manager", "model",
                 "request", "set_aside", "started", "tried")

    def __init__(self, manager: ProviderManager, request: ChatRequest) -> None:
        model = request.model or manager.default_model
        if not model:
            raise InvalidRequestError("no model: the request names none and the manager has "
                                      "no default_model", provider=manager.name, field="model")
        self.manager, self.request, self.model = manager, request, model
        self.groups = [model, *manager._fallbacks.get(model, ())]
        self.attempts = 0
        self.errors: list[dict[str, Any]] = []
        self.last: ProviderError | None = None
        self.tried: set[str] = set()
        self.set_aside: set[str] = set()
        self.started = manager._clock()
        self.estimate = (estimate_tokens(request.messages, model)
                         + (request.max_tokens or DEFAULT_COMPLETION_ESTIMATE)
                         if manager._needs_estimate else 0)

    def attempt_numbers(self) -> range:
        """Attempt numbers for one model group; each counts toward ``attempts``."""
        return range(1, self.manager.retry.max_attempts + 1)

    def request_for(self, upstream: str) -> ChatRequest:
        self.attempts += 1
        if upstream == self.request.model:
            return self.request
        return self.request.model_copy(update={"model": upstream})

    def remaining(self) -> float:
        left = self.manager.retry.remaining(self.started, self.manager._clock())
        return float("inf") if left is None else left

    def record(self, deployment: str, exc: ProviderError) -> None:
        self.last = exc
        self.errors.append({"deployment": deployment, "error_type": exc.error_type,
                            "status_code": exc.status_code, "message": exc.message})

    def last_or(self, group: str) -> ProviderError:
        return self.last or ProviderUnavailableError(
            f"no deployment could serve {group!r}", provider=self.manager.name, model=group)

    def failure(self) -> ProviderError:
        error = self.last_or(self.model)
        error.details.setdefault("attempts", self.errors)
        return error
