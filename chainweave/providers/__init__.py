"""Wire adapters for LLM vendors and the ProviderManager that routes over them; all speak
:class:`~chainweave.types.ChatModel`."""

from chainweave.providers.anthropic import AnthropicProvider
from chainweave.providers.azure import AzureOpenAIProvider
from chainweave.providers.base import HTTPProvider, make_client, parse_retry_after
from chainweave.providers.breaker import BreakerPolicy, BreakerState, CircuitBreaker
from chainweave.providers.deployment import Deployment
from chainweave.providers.factory import from_env, from_settings, manager_from_settings
from chainweave.providers.fallback import FallbackProvider, FallbackTarget
from chainweave.providers.limits import DeploymentLimiter, Limits, Reservation, TokenBucket
from chainweave.providers.manager import ProviderManager
from chainweave.providers.mock import MockProvider
from chainweave.providers.openai import OpenAICompatibleProvider, OpenAIProvider
from chainweave.providers.openrouter import OpenRouterProvider
from chainweave.providers.retry import RetryPolicy
from chainweave.providers.strategies import (
    Candidate,
    LeastInFlight,
    LowestLatency,
    RandomChoice,
    RoundRobin,
    RoutingStrategy,
    WeightedRoundRobin,
    strategy_named,
)

__all__ = [
    "AnthropicProvider",
    "AzureOpenAIProvider",
    "BreakerPolicy",
    "BreakerState",
    "Candidate",
    "CircuitBreaker",
    "Deployment",
    "DeploymentLimiter",
    "FallbackProvider",
    "FallbackTarget",
    "HTTPProvider",
    "LeastInFlight",
    "Limits",
    "LowestLatency",
    "MockProvider",
    "OpenAICompatibleProvider",
    "OpenAIProvider",
    "OpenRouterProvider",
    "ProviderManager",
    "RandomChoice",
    "Reservation",
    "RetryPolicy",
    "RoundRobin",
    "RoutingStrategy",
    "TokenBucket",
    "WeightedRoundRobin",
    "from_env",
    "from_settings",
    "make_client",
    "manager_from_settings",
    "parse_retry_after",
    "strategy_named",
]
