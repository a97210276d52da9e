"""Wire adapters for LLM vendors, all speaking :class:`~chainweave.types.ChatModel`."""

from chainweave.providers.anthropic import AnthropicProvider
from chainweave.providers.azure import AzureOpenAIProvider
from chainweave.providers.base import HTTPProvider, make_client, parse_retry_after
from chainweave.providers.factory import from_env, from_settings
from chainweave.providers.fallback import FallbackProvider, FallbackTarget
from chainweave.providers.mock import MockProvider
from chainweave.providers.openai import OpenAICompatibleProvider, OpenAIProvider
from chainweave.providers.openrouter import OpenRouterProvider

__all__ = [
    "AnthropicProvider",
    "AzureOpenAIProvider",
    "FallbackProvider",
    "FallbackTarget",
    "HTTPProvider",
    "MockProvider",
    "OpenAICompatibleProvider",
    "OpenAIProvider",
    "OpenRouterProvider",
    "from_env",
    "from_settings",
    "make_client",
    "parse_retry_after",
]
