"""Build providers from settings: ``from_env()``, ``from_settings()`` and
``manager_from_settings()``, which turns the ``routing:`` section into a ProviderManager.

The provider comes from ``LLM_PROVIDER`` or, when unset, from which keys are present
(see :meth:`chainweave.config.Settings.resolved_provider`); with nothing configured it
is the offline ``mock`` provider. Generic settings (``LLM_API_KEY``, ``LLM_API_BASE``,
``PRIMARY_MODEL``) fill in whatever the vendor's own settings leave unset, except the
base URL: ``LLM_API_BASE``, when set, is where calls go.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import httpx
from pydantic import SecretStr

from chainweave.config import DeploymentSettings, ProviderName, Settings, load_settings
from chainweave.errors import ConfigurationError
from chainweave.pricing import ModelPrice
from chainweave.providers.anthropic import AnthropicProvider
from chainweave.providers.azure import AzureOpenAIProvider
from chainweave.providers.breaker import BreakerPolicy
from chainweave.providers.fallback import FallbackProvider, FallbackTarget
from chainweave.providers.manager import ProviderManager
from chainweave.providers.mock import MockProvider
from chainweave.providers.openai import OpenAICompatibleProvider, OpenAIProvider
from chainweave.providers.openrouter import OpenRouterProvider
from chainweave.providers.retry import RetryPolicy
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
    return _single(settings, client, _timeout(settings))


def manager_from_settings(settings: Settings, *,
                          client: httpx.AsyncClient | None = None) -> ProviderManager:
    """A ProviderManager the settings describe.

    With ``routing.deployments`` it has exactly those deployments, each adapter built on
    ``client`` with the entry's key and base URL or else the vendor's usual settings;
    the default model is ``PRIMARY_MODEL`` or the first deployment's first model.
    Without it, ``PRIMARY_MODEL`` and ``SECONDARY_MODEL`` each become a deployment on
    the vendor their names imply (see :func:`vendor_for_model`), the secondary as the
    primary's fallback; with neither set, the one provider :func:`from_settings` builds
    serves every model. Either way ``routing.aliases`` and ``routing.fallbacks`` are
    added (a ``fallbacks`` entry replaces the secondary for its model) and the
    ``routing`` policies apply: strategy, retry, breaker, ``max_concurrency`` (else
    ``LLM_CONCURRENT_NUMBER``) and ``timeout`` (else ``LLM_DEFAULT_TIMEOUT``).

    Raises:
        ConfigurationError: a deployment lacks its key or base URL (every such problem
            is listed, naming the deployment and the variable that would supply it), or
            a fallback names a model that nothing serves.
    """
    routing = settings.routing
    manager = ProviderManager(
        strategy=routing.strategy,
        retry=RetryPolicy(**routing.retry.model_dump()),
        breaker=BreakerPolicy(**routing.breaker.model_dump()),
        max_concurrency=routing.max_concurrency or settings.concurrent_number,
        timeout=_call_timeout(settings),
        max_wait=routing.max_wait,
        health_interval=routing.health_interval,
        health_probe=routing.health_probe,
    )
    if routing.deployments is None:
        _register_models(manager, settings, client)
        _check_served(manager, routing.fallbacks)
    else:
        _register_deployments(manager, routing.deployments, settings, client)
    for alias, names in routing.aliases.items():
        manager.alias(alias, names)
    for model, fallbacks in routing.fallbacks.items():
        manager.set_fallbacks(model, fallbacks)
    return manager


def _register_models(manager: ProviderManager, settings: Settings,
                     client: httpx.AsyncClient | None) -> None:
    """PRIMARY_MODEL and SECONDARY_MODEL on their vendors, or the one configured provider."""
    timeout = _call_timeout(settings)
    models = [m for m in (settings.primary_model, settings.secondary_model) if m]
    if not models:
        provider = _single(settings, client, timeout)
        manager.register(settings.resolved_provider(), provider)
        manager.default_model = getattr(provider, "default_model", None)
        return
    manager.default_model = models[0]
    if len(models) > 1:
        manager.set_fallbacks(models[0], models[1:])
    for model in dict.fromkeys(models):
        vendor = vendor_for_model(model, settings)
        provider = _BUILDERS[vendor](_Target(settings, client, model, timeout))
        manager.register(f"{vendor}:{model}", provider, [model])


def _register_deployments(manager: ProviderManager, entries: Sequence[DeploymentSettings],
                          settings: Settings, client: httpx.AsyncClient | None) -> None:
    """Each ``routing.deployments`` entry, after building every adapter or failing once."""
    built: list[tuple[DeploymentSettings, Provider]] = []
    problems: list[ConfigurationError] = []
    for entry in entries:
        upstream = next(iter(entry.models.values())) if entry.models else None
        target = _Target(settings, client, upstream, entry.timeout or _call_timeout(settings),
                         entry)
        try:
            built.append((entry, _BUILDERS[entry.provider](target)))
        except ConfigurationError as exc:
            problems.append(exc)
    if problems:
        raise _all_of(problems)
    for entry, provider in built:
        manager.register(entry.name, provider, entry.models, weight=entry.weight,
                         rpm=entry.rpm, tpm=entry.tpm, max_concurrency=entry.max_concurrency,
                         price=ModelPrice(**entry.price.model_dump()) if entry.price else None,
                         timeout=entry.timeout)
    first, provider = built[0]
    manager.default_model = (settings.primary_model or next(iter(first.models or ()), None)
                             or getattr(provider, "default_model", None))


def _all_of(problems: list[ConfigurationError]) -> ConfigurationError:
    if len(problems) == 1:
        return problems[0]
    return ConfigurationError(
        f"{len(problems)} deployments cannot be built:\n"
        + "\n".join(f"  - {p.message}" for p in problems),
        field=problems[0].field, details={"errors": [p.message for p in problems]})


def _check_served(manager: ProviderManager, fallbacks: Mapping[str, Sequence[str]]) -> None:
    """Refuse fallbacks to models that no deployment of the model-variable setup serves."""
    deployments = manager.deployments.values()
    problems = [f"routing.fallbacks.{model}[{index}]: fallback {target!r} for {model!r} is a "
                "model no deployment serves (set SECONDARY_MODEL or routing.deployments)"
                for model, targets in fallbacks.items()
                for index, target in enumerate(targets)
                if not any(d.serves(target) for d in deployments)]
    if problems:
        raise ConfigurationError("; ".join(problems), field="routing.fallbacks",
                                 details={"errors": problems})


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


def _single(settings: Settings, client: httpx.AsyncClient | None, timeout: float) -> Provider:
    name = settings.resolved_provider()
    if name == "fallback":
        return _fallback(settings, client, timeout)
    return _BUILDERS[name](_Target(settings, client, settings.primary_model, timeout))


def _fallback(settings: Settings, client: httpx.AsyncClient | None,
              timeout: float) -> FallbackProvider:
    models = [m for m in (settings.primary_model, settings.secondary_model) if m]
    if not models:
        raise ConfigurationError(
            "LLM_PROVIDER=fallback needs PRIMARY_MODEL (and usually SECONDARY_MODEL)",
            field="PRIMARY_MODEL")
    targets = [FallbackTarget(_BUILDERS[vendor_for_model(m, settings)](
        _Target(settings, client, m, timeout)), m) for m in models]
    return FallbackProvider(targets)


@dataclass(frozen=True, slots=True)
class _Target:
    """What one adapter is built from: the settings, overridden by a deployment entry."""

    settings: Settings
    client: httpx.AsyncClient | None
    model: str | None
    timeout: float
    entry: DeploymentSettings | None = None

    @property
    def name(self) -> str | None:
        return self.entry.name if self.entry is not None else None

    def key(self, *fallbacks: SecretStr | None) -> str | None:
        """The entry's key, else the first fallback that is set."""
        return _secret(self.entry.api_key if self.entry is not None else None, *fallbacks)

    def required_key(self, provider: str, variable: str, *fallbacks: SecretStr | None) -> str:
        """The key, as :meth:`key` finds it, or the error naming where to set it."""
        key = self.key(*fallbacks)
        if key is None:
            raise self.missing(provider, variable)
        return key

    def base(self, *fallbacks: str | None) -> str | None:
        """The entry's base URL, else the first fallback that is set."""
        own = self.entry.api_base if self.entry is not None else None
        return next((url for url in (own, *fallbacks) if url), None)

    def missing(self, provider: str, variable: str, what: str = "api_key"
                ) -> ConfigurationError:
        """The error for a value neither the entry nor the settings give."""
        if self.entry is None:
            return _missing(variable, provider)
        name = self.entry.name
        return ConfigurationError(
            f"routing deployment {name!r} ({provider}) needs {what}: set {what} on it "
            f"or set {variable}", provider=provider, field=variable,
            details={"deployment": name})


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


def _call_timeout(settings: Settings) -> float:
    return settings.routing.timeout or settings.orchestrator.default_timeout


def _openai(target: _Target) -> Provider:
    settings, section = target.settings, target.settings.providers.openai
    key = target.required_key("openai", "OPENAI_API_KEY (or LLM_API_KEY)", section.api_key,
                              settings.api_key)
    return OpenAIProvider(api_key=key, base_url=target.base(settings.api_base, section.api_base),
                          organization=section.organization, client=target.client,
                          default_model=target.model or section.model or DEFAULT_MODELS["openai"],
                          timeout=target.timeout, name=target.name)


def _compatible(target: _Target) -> Provider:
    settings = target.settings
    base = target.base(settings.api_base)
    if not base:
        raise target.missing("openai_compatible", "LLM_API_BASE", "api_base")
    return OpenAICompatibleProvider(
        api_key=target.key(settings.api_key, settings.providers.openai.api_key),
        base_url=base, default_model=target.model, client=target.client,
        timeout=target.timeout, name=target.name)


def _anthropic(target: _Target) -> Provider:
    section = target.settings.providers.anthropic
    key = target.required_key("anthropic", "ANTHROPIC_API_KEY", section.api_key)
    return AnthropicProvider(
        api_key=key, base_url=target.base(section.api_base), client=target.client,
        default_model=target.model or section.model or DEFAULT_MODELS["anthropic"],
        anthropic_version=section.version, default_max_tokens=section.max_tokens or 4096,
        timeout=target.timeout, name=target.name)


def _azure(target: _Target) -> Provider:
    section = target.settings.providers.azure
    key = target.required_key("azure", "AZURE_API_KEY", section.api_key)
    base = target.base(section.api_base)
    if not base:
        raise target.missing("azure", "AZURE_API_BASE", "api_base")
    default = target.model or section.deployment or section.model
    if default is None:
        raise target.missing("azure", "PRIMARY_MODEL (the deployment name)", "models")
    version = target.entry.api_version if target.entry is not None else None
    return AzureOpenAIProvider(api_key=key, base_url=base,
                               api_version=version or section.api_version,
                               default_model=default, client=target.client,
                               timeout=target.timeout, name=target.name)


def _openrouter(target: _Target) -> Provider:
    section = target.settings.providers.openrouter
    key = target.required_key("openrouter", "OPENROUTER_API_KEY", section.api_key)
    return OpenRouterProvider(
        api_key=key, base_url=target.base(section.base_url), client=target.client,
        referer=section.referer, x_title=section.x_title,
        default_model=target.model or section.model or DEFAULT_MODELS["openrouter"],
        timeout=target.timeout, name=target.name)


def _mock(target: _Target) -> Provider:
    return MockProvider(default_model=target.model or DEFAULT_MODELS["mock"],
                        name=target.name or "mock")


_BUILDERS: dict[str, Callable[[_Target], Provider]] = {
    "openai": _openai,
    "openai_compatible": _compatible,
    "anthropic": _anthropic,
    "azure": _azure,
    "openrouter": _openrouter,
    "mock": _mock,
}
