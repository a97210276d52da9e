"""One deployment: a provider serving some models, with its breaker, limits and figures."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from chainweave.errors import AuthenticationError, ProviderError
from chainweave.pricing import ModelPrice, cost_usd
from chainweave.providers.breaker import CircuitBreaker
from chainweave.providers.limits import DeploymentLimiter
from chainweave.types import ChatModel, ChatRequest, HealthStatus, Usage

__all__ = ["Deployment"]

_EWMA_ALPHA = 0.2


class Deployment:
    """A registered provider and what the manager knows about it.

    ``models`` maps the public model names it serves to the names it sends upstream
    (an Azure deployment, a vendor-prefixed OpenRouter name); an empty mapping serves
    any model under its own name.
    """

    __slots__ = ("breaker", "completion_tokens", "cooldown_until", "cost_usd", "failures",
                 "healthy", "last_error", "latency_ewma_ms", "limiter", "misconfigured",
                 "models", "name", "price", "prompt_tokens", "provider", "requests",
                 "successes", "timeout", "weight")

    def __init__(self, name: str, provider: ChatModel, models: Mapping[str, str], *,
                 weight: int, limiter: DeploymentLimiter, breaker: CircuitBreaker,
                 price: ModelPrice | None, timeout: float | None) -> None:
        self.name = name
        self.provider = provider
        self.models = dict(models)
        self.weight = weight
        self.limiter = limiter
        self.breaker = breaker
        self.price = price
        self.timeout = timeout
        self.healthy = True
        self.misconfigured = False
        self.cooldown_until = 0.0
        self.latency_ewma_ms: float | None = None
        self.requests = 0
        self.successes = 0
        self.failures = 0
        # Plain numbers, not a Usage: adding pydantic models on every call costs µs.
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost_usd: float | None = None
        self.last_error: str | None = None

    def __repr__(self) -> str:
        return f"Deployment({self.name!r}, models={sorted(self.models)!r})"

    @property
    def in_flight(self) -> int:
        """Calls running on this deployment now."""
        return self.limiter.in_flight

    def serves(self, model: str) -> bool:
        """Whether this deployment answers ``model``."""
        return not self.models or model in self.models

    def upstream_model(self, model: str) -> str:
        """The name sent to the provider for the public ``model``."""
        return self.models.get(model, model)

    def default_model(self) -> str | None:
        """The first model it serves, used when it is reached through an alias."""
        return next(iter(self.models), None)

    def record_latency(self, latency_ms: float) -> None:
        """Fold one successful call's latency into the moving average."""
        previous = self.latency_ewma_ms
        self.latency_ewma_ms = latency_ms if previous is None else (
            previous + _EWMA_ALPHA * (latency_ms - previous))

    def account(self, usage: Usage) -> Usage:
        """Add ``usage`` to the totals; price it from this deployment's price if unpriced."""
        if usage.cost_usd is None and self.price is not None:
            usage = usage.model_copy(update={"cost_usd": cost_usd(
                self.price, usage.prompt_tokens, usage.completion_tokens)})
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        if usage.cost_usd is not None:
            self.cost_usd = (self.cost_usd or 0.0) + usage.cost_usd
        return usage

    @property
    def usage(self) -> Usage:
        """Tokens and cost served so far."""
        return Usage(prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens,
                     cost_usd=self.cost_usd)

    async def check(self, probe: str, clock: Callable[[], float]) -> HealthStatus:
        """Check this deployment and record the result; never raises a provider error.

        ``probe`` ``"auto"`` uses the provider's own ``health()`` where it has one;
        otherwise (or with ``"chat"``) a one-token chat. Passing clears a misconfigured
        mark; failing with an authentication error sets it.
        """
        health = getattr(self.provider, "health", None) if probe == "auto" else None
        started = clock()
        try:
            if health is not None:
                status: HealthStatus = await health()
            else:
                await self.provider.chat(ChatRequest.from_prompt(
                    "ping", model=self.default_model(), max_tokens=1))
                status = HealthStatus(provider=self.name, healthy=True,
                                      latency_ms=(clock() - started) * 1000)
        except ProviderError as exc:
            status = HealthStatus(provider=self.name, healthy=False, error=exc.message,
                                  error_type=exc.error_type)
        self.healthy = status.healthy
        if status.healthy:
            self.misconfigured = False
        elif status.error_type == AuthenticationError.error_type:
            self.misconfigured = True
        return status

    def status(self, now: float) -> dict[str, Any]:
        """What ``ProviderManager.status()`` shows for this deployment."""
        return {
            "healthy": self.healthy,
            "misconfigured": self.misconfigured,
            "breaker": self.breaker.state,
            "breaker_retry_after": self.breaker.retry_after(),
            "cooldown_remaining": max(0.0, self.cooldown_until - now),
            **self.limiter.remaining(),
            "latency_ewma_ms": self.latency_ewma_ms,
            "requests": self.requests,
            "successes": self.successes,
            "failures": self.failures,
            "last_error": self.last_error,
            "models": sorted(self.models),
        }

    def stats(self) -> dict[str, Any]:
        """Counts, tokens and cost for ``ProviderManager.stats()``."""
        return {
            "requests": self.requests,
            "successes": self.successes,
            "failures": self.failures,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "cost_usd": self.cost_usd,
            "latency_ewma_ms": self.latency_ewma_ms,
        }


def model_map(models: Sequence[str] | Mapping[str, str] | None) -> dict[str, str]:
    """``["a", "b"]`` or ``{"public": "upstream"}`` as a public → upstream mapping."""
    if models is None:
        return {}
    if isinstance(models, Mapping):
        return dict(models)
    return {m: m for m in models}

