"""Build providers from settings: ``from_env()`` and ``from_settings()``.

The provider comes from ``LLM_PROVIDER`` or, when unset, from which keys are present
(see :meth:`chainweave.config.Settings.resolved_provider`); with nothing configured it
is the offline ``mock`` provider. Generic settings (``LLM_API_KEY``, ``LLM_API_BASE``,
``PRIMARY_MODEL``) fill in whatever the vendor's own settings leave unset, except the
base URL: ``LLM_API_BASE``, when set, is where calls go.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import httpx
from pydantic import SecretStr

from chainweave.config import ProviderName, Settings, load_settings
from chainweave.errors import ConfigurationError
from chainweave.providers.anthropic import AnthropicProvider
from chainweave.providers.azure import AzureOpenAIProvider
from chainweave.providers.fallback import FallbackProvider, FallbackTarget
from chainweave.providers.manager import ProviderManager
from chainweave.providers.mock import MockProvider
from chainweave.providers.openai import OpenAICompatibleProvider, OpenAIProvider
from chainweave.providers.openrouter import OpenRouterProvider
from chainweave.types import Provider

__all__ = ["DEFAULT_MODELS", "from_env", "from_settings", "manager_from_settings",
           "vendor_for_model"]

#: The model used when neither ``PRIMARY_MODEL`` nor the vendor's ``model`` is set.
DEFAULT_MODELS: Mapping[str, str] = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-3-5-sonnet-latest",
    "openrouter": "openai/gpt-4o-mini",
    "mock": "mock",
}


def from_env(env: Mapping[str, str] | None = None, *, config: str | os.PathLike[str] | None = None,
             client: httpx.AsyncClient | None = None) -> Provider:
    """The provider the environment (and an optional settings file) describes.

    Args:
        env: Environment variables; ``os.environ`` when omitted.
        config: A YAML settings file; environment variables override it.
        client: One ``httpx.AsyncClient`` shared by every adapter built.

    Raises:
        ConfigurationError: a required variable is missing (named) or a value is bad.
    """
    return from_settings(load_settings(config, env), client=client)


def from_settings(settings: Settings, *, client: httpx.AsyncClient | None = None) -> Provider:
    """The provider ``settings`` describe; see :func:`from_env`."""
    name = settings.resolved_provider()
    if name == "fallback":
        return _fallback(settings, client)
    return _BUILDERS[name](settings, client, settings.primary_model)


def manager_from_settings(settings: Settings, *,
                          client: httpx.AsyncClient | None = None) -> ProviderManager:
    """A ProviderManager the settings describe.

    ``PRIMARY_MODEL`` and ``SECONDARY_MODEL`` each become a deployment on the vendor
    their names imply (see :func:`vendor_for_model`), the secondary as the primary's
    fallback; with neither set, the one provider :func:`from_settings` builds serves
    every model. ``LLM_CONCURRENT_NUMBER`` caps calls in flight and
    ``LLM_DEFAULT_TIMEOUT`` bounds each call.
    """
    models = [m for m in (settings.primary_model, settings.secondary_model) if m]
    manager = ProviderManager(
        default_model=models[0] if models else None,
        max_concurrency=settings.concurrent_number,
        timeout=settings.orchestrator.default_timeout,
        fallbacks={models[0]: models[1:]} if len(models) > 1 else None,
    )
    if not models:
        provider = from_settings(settings, client=client)
        manager.register(settings.resolved_provider(), provider)
        manager.default_model = getattr(provider, "default_model", None)
        return manager
    for model in dict.fromkeys(models):
        vendor = vendor_for_model(model, settings)
        manager.register(f"{vendor}:{model}", _BUILDERS[vendor](settings, client, model), [model])
    return manager


def vendor_for_model(model: str, settings: Settings) -> ProviderName:
    """The vendor a fallback model runs on: by its name when it says, else the default.

    ``claude-*`` → anthropic, ``vendor/model`` → openrouter, ``gpt-*``/``o1``/``o3``/
    ``o4``/``text-embedding-*`` → openai (or azure when only Azure is configured);
    anything else runs on the provider the keys select.
    """
    keyed = _configured(settings)
    if model.startswith("claude") and "anthropic" in keyed:
        return "anthropic"
    if "/" in model and "openrouter" in keyed:
        return "openrouter"
    if model.startswith(("gpt-", "o1", "o3", "o4", "text-embedding")):
        for vendor in ("openai", "azure"):
            if vendor in keyed:
                return vendor
    return keyed[0] if keyed else "mock"


def _configured(settings: Settings) -> list[ProviderName]:
    vendors = settings.providers
    found: list[ProviderName] = []
    if vendors.openai.api_key or settings.api_key:
        found.append("openai")
    if vendors.anthropic.api_key:
        found.append("anthropic")
    if vendors.openrouter.api_key:
        found.append("openrouter")
    if vendors.azure.api_key and vendors.azure.api_base:
        found.append("azure")
    if settings.api_base:
        found.insert(0, "openai_compatible")
    return found


def _fallback(settings: Settings, client: httpx.AsyncClient | None) -> FallbackProvider:
    models = [m for m in (settings.primary_model, settings.secondary_model) if m]
    if not models:
        raise ConfigurationError(
            "LLM_PROVIDER=fallback needs PRIMARY_MODEL (and usually SECONDARY_MODEL)",
            field="PRIMARY_MODEL")
    targets = [FallbackTarget(_BUILDERS[vendor_for_model(m, settings)](settings, client, m), m)
               for m in models]
    return FallbackProvider(targets)


def _secret(*values: SecretStr | None) -> str | None:
    """The first key that is set."""
    for value in values:
        if value is not None and value.get_secret_value():
            return value.get_secret_value()
    return None


def _missing(variable: str, provider: str) -> ConfigurationError:
    return ConfigurationError(f"LLM provider {provider!r} needs {variable}", provider=provider,
                              field=variable)


def _timeout(settings: Settings) -> float:
    return settings.orchestrator.default_timeout


def _openai(settings: Settings, client: httpx.AsyncClient | None,
            model: str | None) -> Provider:
    section = settings.providers.openai
    key = _secret(section.api_key, settings.api_key)
    if key is None:
        raise _missing("OPENAI_API_KEY (or LLM_API_KEY)", "openai")
    return OpenAIProvider(api_key=key, base_url=settings.api_base or section.api_base,
                          organization=section.organization, client=client,
                          default_model=model or section.model or DEFAULT_MODELS["openai"],
                          timeout=_timeout(settings))


def _compatible(settings: Settings, client: httpx.AsyncClient | None,
                model: str | None) -> Provider:
    if not settings.api_base:
        raise _missing("LLM_API_BASE", "openai_compatible")
    return OpenAICompatibleProvider(
        api_key=_secret(settings.api_key, settings.providers.openai.api_key),
        base_url=settings.api_base, default_model=model, client=client,
        timeout=_timeout(settings))


def _anthropic(settings: Settings, client: httpx.AsyncClient | None,
               model: str | None) -> Provider:
    section = settings.providers.anthropic
    key = _secret(section.api_key)
    if key is None:
        raise _missing("ANTHROPIC_API_KEY", "anthropic")
    return AnthropicProvider(api_key=key, base_url=section.api_base, client=client,
                             default_model=model or section.model or DEFAULT_MODELS["anthropic"],
                             anthropic_version=section.version,
                             default_max_tokens=section.max_tokens or 4096,
                             timeout=_timeout(settings))


def _azure(settings: Settings, client: httpx.AsyncClient | None,
           model: str | None) -> Provider:
    section = settings.providers.azure
    key = _secret(section.api_key)
    if key is None:
        raise _missing("AZURE_API_KEY", "azure")
    if not section.api_base:
        raise _missing("AZURE_API_BASE", "azure")
    default = model or section.deployment or section.model
    if default is None:
        raise _missing("PRIMARY_MODEL (the deployment name)", "azure")
    return AzureOpenAIProvider(api_key=key, base_url=section.api_base,
                               api_version=section.api_version, default_model=default,
                               client=client, timeout=_timeout(settings))


def _openrouter(settings: Settings, client: httpx.AsyncClient | None,
                model: str | None) -> Provider:
    section = settings.providers.openrouter
    key = _secret(section.api_key)
    if key is None:
        raise _missing("OPENROUTER_API_KEY", "openrouter")
    return OpenRouterProvider(api_key=key, base_url=section.base_url, client=client,
                              referer=section.referer, x_title=section.x_title,
                              default_model=model or section.model or DEFAULT_MODELS["openrouter"],
                              timeout=_timeout(settings))


def _mock(settings: Settings, client: httpx.AsyncClient | None, model: str | None) -> Provider:
    return MockProvider(default_model=model or DEFAULT_MODELS["mock"])


_BUILDERS: dict[str, Callable[[Settings, httpx.AsyncClient | None, str | None], Provider]] = {
    "openai": _openai,
    "openai_compatible": _compatible,
    "anthropic": _anthropic,
    "azure": _azure,
    "openrouter": _openrouter,
    "mock": _mock,
}
