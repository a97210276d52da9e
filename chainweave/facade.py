"""The seed 001 interface: ``generate()`` and ``LLMInterface``, answering with plain dicts.

::

    response = await chainweave.generate(
        [{"role": "system", "content": "You are a helpful assistant."},
         {"role": "user", "content": "Hello, world!"}],
        model="gpt-4o-mini", temperature=0.7, max_tokens=1000)
    if "error" in response:
        print(f"Error: {response['error']} ({response['error_type']})")
    else:
        print(response["text"], response["metadata"])

Each call goes through the default :class:`~chainweave.pipeline.Pipeline` (size
limits, security, idempotency, and the cache and rate limits when configured) over a
:class:`~chainweave.providers.ProviderManager` with retries. A failure while running
(provider errors, a blocked request, a rate limit) comes back as
``{"error": message, "error_type": type}`` and is not raised; a malformed call (a bad
message or parameter) raises :class:`~chainweave.errors.InputValidationError`, and
missing settings raise :class:`~chainweave.errors.ConfigurationError`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from chainweave.config import Settings
from chainweave.errors import ExecutionError, InputValidationError
from chainweave.types import ChatRequest, ChatResponse, Message

__all__ = ["LLMInterface", "generate"]

_ENV_KEYS: Mapping[str, tuple[str, str]] = {
    "openai": ("OPENAI_API_KEY", "OPENAI_API_BASE"),
    "anthropic": ("ANTHROPIC_API_KEY", "ANTHROPIC_API_BASE"),
    "azure": ("AZURE_API_KEY", "AZURE_API_BASE"),
    "openrouter": ("OPENROUTER_API_KEY", "OPENROUTER_BASE_URL"),
}


def _settings_for(provider: str | None, model: str | None, api_key: str | None,
                  api_base: str | None, timeout: float | None, max_retries: int,
                  max_concurrent: int | None, env: Mapping[str, str]) -> Settings:
    """Settings as if the arguments had been set as environment variables."""
    variables = dict(env)
    name = (provider or "").strip().lower().replace("-", "_")
    if name == "litellm":  # the seed's default: a generic endpoint, or whatever keys say
        name = "openai_compatible" if api_base else ""
    if name:
        variables["LLM_PROVIDER"] = name
    if model:
        variables["PRIMARY_MODEL"] = model
    key_var, base_var = _ENV_KEYS.get(name, ("LLM_API_KEY", "LLM_API_BASE"))
    if api_key:
        variables[key_var] = api_key
    if api_base:
        variables[base_var] = api_base
    if timeout is not None:
        variables["LLM_DEFAULT_TIMEOUT"] = str(timeout)
    if max_concurrent is not None:
        variables["LLM_CONCURRENT_NUMBER"] = str(max_concurrent)
    settings = Settings.from_env(variables)
    retry = settings.routing.retry.model_copy(update={"max_attempts": max_retries + 1})
    routing = settings.routing.model_copy(update={"retry": retry})
    return settings.model_copy(update={"routing": routing})


def _check_int(name: str, value: int | None, low: int) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or value < low):
        raise InputValidationError(
            f"LLMInterface.{name} must be an integer >= {low}, got {value!r}", field=name)


class LLMInterface:
    """A configured model behind the seed's ``generate()`` call.

    Args:
        provider: ``openai``, ``anthropic``, ``azure``, ``openrouter``,
            ``openai_compatible``, ``fallback``, ``mock`` or ``litellm`` (the seed's
            default: an OpenAI-compatible endpoint when ``api_base`` is given, else
            whatever the keys in the environment select). ``None`` reads
            ``LLM_PROVIDER``.
        model: The default model (else ``PRIMARY_MODEL``).
        api_key: The provider's key (else its usual variable).
        api_base: The provider's base URL (else its usual variable).
        max_retries: Retries after the first try, with backoff and failover.
        timeout: Seconds per call (else ``LLM_DEFAULT_TIMEOUT``).
        max_concurrent_requests: Calls in flight at once (else ``LLM_CONCURRENT_NUMBER``).
        env: Environment variables to read instead of ``os.environ``.
        settings: Use these settings as they are, ignoring the arguments above but
            ``max_retries``.
    """

    def __init__(self, provider: str | None = None, model: str | None = None,
                 api_key: str | None = None, api_base: str | None = None,
                 max_retries: int = 3, timeout: float | None = None,
                 max_concurrent_requests: int | None = None, *,
                 env: Mapping[str, str] | None = None,
                 settings: Settings | None = None) -> None:
        from chainweave.pipeline import Pipeline
        from chainweave.providers import manager_from_settings

        _check_int("max_retries", max_retries, 0)
        _check_int("max_concurrent_requests", max_concurrent_requests, 1)
        if timeout is not None and not timeout > 0:
            raise InputValidationError(f"LLMInterface.timeout must be > 0, got {timeout!r}",
                                       field="timeout")
        self.settings = settings or _settings_for(
            provider, model, api_key, api_base, timeout, max_retries,
            max_concurrent_requests, os.environ if env is None else env)
        self.manager = manager_from_settings(self.settings)
        self.model = model or self.manager.default_model
        self.pipeline = Pipeline.from_settings(self.manager, self.settings)

    @property
    def provider(self) -> str:
        """The provider the settings select."""
        return self.settings.resolved_provider()

    async def generate(self, messages: Sequence[Message | Mapping[str, Any]] | str, *,
                       model: str | None = None, **params: Any) -> dict[str, Any]:
        """Answer ``messages``; a dict with ``text`` and ``metadata``, or ``error``.

        Args:
            messages: Chat messages (dicts in the OpenAI or seed shapes, or
                :class:`~chainweave.Message`), or one user prompt as a string.
            model: The model for this call; the interface's default otherwise.
            **params: Any :class:`~chainweave.ChatRequest` field: ``temperature``,
                ``max_tokens``, ``top_p``, ``stop``, ``tools``, ``request_id``...

        Raises:
            InputValidationError: a message or parameter is malformed.
        """
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        request = ChatRequest.model_validate(
            {**params, "model": model or self.model, "messages": list(messages)})
        started = time.perf_counter()
        try:
            response = await self.pipeline.chat(request)
        except ExecutionError as exc:
            return {"error": exc.message, "error_type": exc.error_type,
                    "error_code": exc.error_code, "retryable": exc.retryable}
        return _success(request, response, time.perf_counter() - started)

    async def aclose(self) -> None:
        """Close the pipeline, the manager and their HTTP clients."""
        await self.pipeline.aclose()

    async def __aenter__(self) -> LLMInterface:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"LLMInterface(provider={self.provider!r}, model={self.model!r})"


def _success(request: ChatRequest, response: ChatResponse, seconds: float) -> dict[str, Any]:
    return {
        "text": response.content,
        "metadata": {
            "provider": response.provider,
            "model": response.model,
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            "usage": response.usage.model_dump(),
            "latency": seconds,
            "llm_latency_ms": response.latency_ms,
            "timestamp": datetime.now(UTC).isoformat(),
            "finish_reason": response.finish_reason,
            "cached": response.cached,
            "request_id": request.request_id,
        },
    }


_default: LLMInterface | None = None


async def generate(messages: Sequence[Message | Mapping[str, Any]] | str, *,
                   model: str | None = None, **params: Any) -> dict[str, Any]:
    """Answer ``messages`` with the interface the environment configures.

    The seed 001 entry point: see :meth:`LLMInterface.generate` for the arguments and
    the result. The interface is built from the environment on first use and kept.
    """
    global _default
    if _default is None:
        _default = LLMInterface()
    return await _default.generate(messages, model=model, **params)
