"""Settings from environment variables and YAML files, with ``${VAR}`` interpolation.

Where a value comes from, lowest precedence first:

1. the defaults written on the models below;
2. a YAML file (``orchestrator: / providers: / cache: / security: / routing:``, the
   pipeline's ``limits: / rate_limit: / idempotency: / streaming:``, plus
   top-level ``provider``, ``primary_model``, ``secondary_model``, ``api_key``,
   ``api_base``, ``concurrent_number``), after ``${VAR}`` / ``${VAR:-default}``
   interpolation; ``routing:`` (:mod:`chainweave.config_routing`) declares a whole
   ProviderManager and has no environment variables;
3. environment variables, which win over the file (twelve-factor: the deployment
   overrides what is checked in). :func:`load_settings` applies this order.

An environment variable that is set but empty (or only whitespace) counts as unset;
values are stripped of surrounding whitespace. ``LLM_MODEL`` is accepted as another
name for ``PRIMARY_MODEL`` and used only when ``PRIMARY_MODEL`` is unset.

Every mistake is a :class:`~chainweave.errors.ConfigurationError` that says where it
was made: the environment variable and its value (``LLM_CACHE_TTL='abc'``), or
``file:line:col`` and the key path in a file. An unknown key in a file is an error too,
with a suggestion, so a typo never silently falls back to a default. API keys are
:class:`~pydantic.SecretStr`, registered for redaction, and never shown in an error
or a repr.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import NoneType
from typing import Annotated, Any, Final, Literal, Self, TypeGuard, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
)
from pydantic_core import ErrorDetails

from chainweave._internal.model import StrictModel
from chainweave._internal.redact import register_secret
from chainweave._internal.values import duration_seconds, flag
from chainweave._internal.yamlio import (
    YamlDocument,
    YamlPath,
    format_path,
    interpolate,
    load_yaml,
    load_yaml_file,
)
from chainweave.config_pipeline import (
    CacheSettings,
    IdempotencySettings,
    LimitsSettings,
    RateLimitSettings,
    SecuritySettings,
    StreamingSettings,
)
from chainweave.config_routing import (
    CONFLICT,
    BreakerSettings,
    DeploymentSettings,
    PriceSettings,
    RetrySettings,
    RoutingSettings,
    deployment_label,
    iso_date,
)
from chainweave.errors import ConfigurationError

__all__ = [
    "PROVIDER_NAMES",
    "AnthropicSettings",
    "AzureSettings",
    "BreakerSettings",
    "CacheSettings",
    "DeploymentSettings",
    "IdempotencySettings",
    "LimitsSettings",
    "OpenAISettings",
    "OpenRouterSettings",
    "OrchestratorSettings",
    "PriceSettings",
    "ProviderName",
    "ProvidersSettings",
    "RateLimitSettings",
    "RetrySettings",
    "RoutingSettings",
    "SecuritySettings",
    "Settings",
    "StreamingSettings",
    "interpolate",
    "load_settings",
    "parse_bool",
    "parse_duration",
]

ProviderName = Literal[
    "openai", "anthropic", "azure", "openrouter", "openai_compatible", "fallback", "mock"
]
PROVIDER_NAMES: Final[tuple[str, ...]] = get_args(ProviderName)

# --- value parsers ---------------------------------------------------------------------

def parse_duration(value: object) -> float:
    """Read a duration as seconds.

    Accepts a non-negative number of seconds (``30``, ``1.5``, ``"30"``) or a string of
    number-unit pairs with units ``ms``, ``s``, ``m``, ``h`` (``"250ms"``, ``"30s"``,
    ``"1m30s"``, ``"1h"``), case-insensitive.

    Args:
        value: A number of seconds or a duration string.

    Returns:
        The duration in seconds.

    Raises:
        ConfigurationError: the value is not such a duration.
    """
    try:
        return duration_seconds(value)
    except ValueError as exc:
        raise ConfigurationError(f"invalid duration {_show(value)}: {exc}") from None


def parse_bool(value: object) -> bool:
    """Read a flag: a bool, ``0``/``1``, or true/false, yes/no, on/off, 1/0 in any case.

    Args:
        value: The flag as written in a file or a variable.

    Returns:
        The flag's truth value.

    Raises:
        ConfigurationError: the value is not one of those.
    """
    try:
        return flag(value)
    except ValueError as exc:
        raise ConfigurationError(f"invalid boolean {_show(value)}: {exc}") from None


def _register(secret: SecretStr) -> SecretStr:
    register_secret(secret.get_secret_value())
    return secret


def _blank_is_none(value: object) -> object:
    # "${OPENAI_MODEL:-}" in a file means "not set", as an empty variable does.
    return None if isinstance(value, str) and not value.strip() else value


def _url(value: str) -> str:
    if not re.match(r"https?://[^\s/]", value):
        raise ValueError("expected an http:// or https:// URL")
    return value


def _provider_name(value: object) -> object:
    if isinstance(value, str):
        return value.strip().lower().replace("-", "_") or None
    return value


def _none_is_empty(value: object) -> object:
    # A section left empty in YAML ("cache:" with its keys commented out) is null.
    return {} if value is None else value


_Blank = BeforeValidator(_blank_is_none)
_Empty = BeforeValidator(_none_is_empty)
Duration = Annotated[float, BeforeValidator(duration_seconds)]
Flag = Annotated[bool, BeforeValidator(flag)]
Url = Annotated[str, AfterValidator(_url)]
Count = Annotated[int, Field(gt=0)]
Secret = Annotated[Annotated[SecretStr, AfterValidator(_register)] | None, _Blank]
"""An optional API key: registered for redaction; blank means unset."""
MaybeUrl = Annotated[Url | None, _Blank]
MaybeText = Annotated[str | None, _Blank]
MaybeCount = Annotated[Count | None, _Blank]


# --- models ----------------------------------------------------------------------------


class _Section(StrictModel):
    """A settings section: frozen, strict about unknown keys, raising ConfigurationError."""

    model_config = ConfigDict(hide_input_in_errors=True)

    @classmethod
    def _validate_from(cls, obj: Any, origins: _Origins) -> Self:
        return cls._validated(obj, origins)

    @classmethod
    def _error_from(cls, exc: ValidationError, error_context: Any) -> ConfigurationError:
        origins = error_context if isinstance(error_context, _Origins) else _Origins()
        return _settings_error(exc, cls, origins)


class OpenAISettings(_Section):
    """OpenAI (``OPENAI_API_KEY``, ``OPENAI_API_BASE``)."""

    api_key: Secret = None
    api_base: Url = "https://api.openai.com/v1"
    organization: MaybeText = None
    model: MaybeText = None
    max_tokens: MaybeCount = None


class AnthropicSettings(_Section):
    """Anthropic Messages API (``ANTHROPIC_API_KEY``, ``ANTHROPIC_API_BASE``)."""

    api_key: Secret = None
    api_base: Url = "https://api.anthropic.com"
    model: MaybeText = None
    max_tokens: MaybeCount = None
    version: str = "2023-06-01"


class AzureSettings(_Section):
    """Azure OpenAI (``AZURE_API_KEY``, ``AZURE_API_BASE``, ``AZURE_API_VERSION``)."""

    api_key: Secret = None
    api_base: MaybeUrl = None
    api_version: Annotated[str, BeforeValidator(iso_date)] = "2024-10-21"
    deployment: MaybeText = None
    model: MaybeText = None


class OpenRouterSettings(_Section):
    """OpenRouter (``OPENROUTER_API_KEY``, ``OPENROUTER_BASE_URL``, header variables).

    ``x_title`` and ``referer`` are sent as the ``X-Title`` and ``HTTP-Referer`` headers.
    """

    api_key: Secret = None
    base_url: Url = "https://openrouter.ai/api/v1"
    x_title: MaybeText = None
    referer: MaybeText = None
    model: MaybeText = None


class ProvidersSettings(_Section):
    """The per-vendor sections, as under ``providers:`` in a settings file."""

    openai: Annotated[OpenAISettings, _Empty] = Field(default_factory=OpenAISettings)
    anthropic: Annotated[AnthropicSettings, _Empty] = Field(default_factory=AnthropicSettings)
    azure: Annotated[AzureSettings, _Empty] = Field(default_factory=AzureSettings)
    openrouter: Annotated[OpenRouterSettings, _Empty] = Field(default_factory=OpenRouterSettings)


class OrchestratorSettings(_Section):
    """Limits and instrumentation of the orchestrator. ``default_timeout`` is seconds."""

    max_concurrent_chains: Count = 10
    max_concurrent_graphs: Count = 5
    default_timeout: Annotated[Duration, Field(gt=0)] = 30.0
    enable_metrics: Flag = True
    enable_tracing: Flag = True


class Settings(_Section):
    """Everything chainweave reads from the environment or a settings file.

    Build it with :func:`load_settings` (file, then environment), :meth:`from_env`,
    :meth:`from_file` or :meth:`from_yaml`, or directly with keyword arguments. It is
    frozen; its repr shows API keys as ``'**********'``.

    Attributes:
        provider: The provider to use; ``None`` infers one (:meth:`resolved_provider`).
        primary_model: The default model (``PRIMARY_MODEL``, or ``LLM_MODEL``).
        secondary_model: The model to fall back to (``SECONDARY_MODEL``).
        api_key: A key for a generic or OpenAI-compatible endpoint (``LLM_API_KEY``).
        api_base: That endpoint's base URL (``LLM_API_BASE``).
        concurrent_number: Most concurrent LLM calls (``LLM_CONCURRENT_NUMBER``);
            ``None`` leaves the limit to the orchestrator.
        providers: Per-vendor settings; also reachable as ``settings.openai`` etc.
        orchestrator: Orchestrator limits, timeout and instrumentation.
        cache: The response cache (and the Redis URL shared with idempotency).
        security: Security checks and audit logging.
        limits: Request size limits.
        rate_limit: Requests and tokens per minute.
        idempotency: Idempotency by ``request_id``.
        streaming: The streaming processor.
        routing: The ProviderManager: deployments, aliases, fallbacks and policies.
    """

    provider: Annotated[ProviderName | None, BeforeValidator(_provider_name)] = None
    primary_model: MaybeText = None
    secondary_model: MaybeText = None
    api_key: Secret = None
    api_base: MaybeUrl = None
    concurrent_number: MaybeCount = None
    providers: Annotated[ProvidersSettings, _Empty] = Field(default_factory=ProvidersSettings)
    orchestrator: Annotated[OrchestratorSettings, _Empty] = Field(
        default_factory=OrchestratorSettings)
    cache: Annotated[CacheSettings, _Empty] = Field(default_factory=CacheSettings)
    security: Annotated[SecuritySettings, _Empty] = Field(default_factory=SecuritySettings)
    limits: Annotated[LimitsSettings, _Empty] = Field(default_factory=LimitsSettings)
    rate_limit: Annotated[RateLimitSettings, _Empty] = Field(default_factory=RateLimitSettings)
    idempotency: Annotated[IdempotencySettings, _Empty] = Field(
        default_factory=IdempotencySettings)
    streaming: Annotated[StreamingSettings, _Empty] = Field(default_factory=StreamingSettings)
    routing: Annotated[RoutingSettings, _Empty] = Field(default_factory=RoutingSettings)

    @property
    def openai(self) -> OpenAISettings:
        """The OpenAI section (``providers.openai``)."""
        return self.providers.openai

    @property
    def anthropic(self) -> AnthropicSettings:
        """The Anthropic section (``providers.anthropic``)."""
        return self.providers.anthropic

    @property
    def azure(self) -> AzureSettings:
        """The Azure OpenAI section (``providers.azure``)."""
        return self.providers.azure

    @property
    def openrouter(self) -> OpenRouterSettings:
        """The OpenRouter section (``providers.openrouter``)."""
        return self.providers.openrouter

    def resolved_provider(self) -> ProviderName:
        """The provider to use: ``provider`` when set, otherwise the first that applies.

        1. an OpenAI key → ``openai``
        2. an Anthropic key → ``anthropic``
        3. an OpenRouter key → ``openrouter``
        4. an Azure key and an Azure base URL → ``azure``
        5. a generic base URL (``LLM_API_BASE``) → ``openai_compatible``
        6. a generic key alone (``LLM_API_KEY``) → ``openai``
        7. nothing configured → ``mock``, the offline provider
        """
        if self.provider is not None:
            return self.provider
        vendors = self.providers
        if _present(vendors.openai.api_key):
            return "openai"
        if _present(vendors.anthropic.api_key):
            return "anthropic"
        if _present(vendors.openrouter.api_key):
            return "openrouter"
        if _present(vendors.azure.api_key) and vendors.azure.api_base:
            return "azure"
        if self.api_base:
            return "openai_compatible"
        if _present(self.api_key):
            return "openai"
        return "mock"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from environment variables alone (``os.environ`` by default).

        Raises:
            ConfigurationError: a variable's value is malformed; the message names the
                variable and, unless it holds a key, the value.
        """
        layer = _env_layer(os.environ if env is None else env)
        return cls._validate_from(_apply_env({}, layer), _Origins.of(layer))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str],
                  env: Mapping[str, str] | None = None) -> Settings:
        """Settings from a YAML file; ``env`` only fills ``${VAR}`` references.

        Environment variables do not override the file here; :func:`load_settings` does
        that.

        Raises:
            ConfigurationError: the file is unreadable, not valid YAML, references an
                unset variable, or has an unknown key or a bad value (with
                ``file:line:col``).
        """
        return cls._from_document(load_yaml_file(path), env)

    @classmethod
    def from_yaml(cls, text: str, source: str = "<string>",
                  env: Mapping[str, str] | None = None) -> Settings:
        """Settings from YAML text, like :meth:`from_file`; ``source`` names it in errors."""
        return cls._from_document(load_yaml(text, source), env)

    @classmethod
    def _from_document(cls, doc: YamlDocument, env: Mapping[str, str] | None) -> Settings:
        raw = _file_data(doc, os.environ if env is None else env)
        return cls._validate_from(raw, _Origins(document=doc))


def _present(secret: SecretStr | None) -> bool:
    return secret is not None and bool(secret.get_secret_value())


def load_settings(path: str | os.PathLike[str] | None = None,
                  env: Mapping[str, str] | None = None) -> Settings:
    """Settings from an optional YAML file, overridden by environment variables.

    The environment wins over the file (twelve-factor): a deployment can change any
    setting with a variable, whatever the checked-in file says. ``${VAR}`` references
    in the file are filled from the same ``env``.

    Args:
        path: A YAML settings file, or ``None`` for environment variables only.
        env: The variables; ``os.environ`` when omitted.

    Raises:
        ConfigurationError: anything is malformed; the message says where.
    """
    env = os.environ if env is None else env
    doc = load_yaml_file(path) if path is not None else None
    raw = _file_data(doc, env) if doc is not None else {}
    layer = _env_layer(env)
    origins = _Origins.of(layer, doc)
    return Settings._validate_from(_apply_env(raw, layer), origins)


# --- sources ---------------------------------------------------------------------------

_ENV_PATHS: Final[dict[str, tuple[str, ...]]] = {
    "LLM_PROVIDER": ("provider",),
    "PRIMARY_MODEL": ("primary_model",),
    "SECONDARY_MODEL": ("secondary_model",),
    "LLM_API_KEY": ("api_key",),
    "LLM_API_BASE": ("api_base",),
    "LLM_CONCURRENT_NUMBER": ("concurrent_number",),
    "OPENAI_API_KEY": ("providers", "openai", "api_key"),
    "OPENAI_API_BASE": ("providers", "openai", "api_base"),
    "ANTHROPIC_API_KEY": ("providers", "anthropic", "api_key"),
    "ANTHROPIC_API_BASE": ("providers", "anthropic", "api_base"),
    "AZURE_API_KEY": ("providers", "azure", "api_key"),
    "AZURE_API_BASE": ("providers", "azure", "api_base"),
    "AZURE_API_VERSION": ("providers", "azure", "api_version"),
    "OPENROUTER_API_KEY": ("providers", "openrouter", "api_key"),
    "OPENROUTER_BASE_URL": ("providers", "openrouter", "base_url"),
    "OPENROUTER_HEADERS_X_TITLE": ("providers", "openrouter", "x_title"),
    "OPENROUTER_HEADERS_REFERER": ("providers", "openrouter", "referer"),
    "LLM_MAX_CONCURRENT_CHAINS": ("orchestrator", "max_concurrent_chains"),
    "LLM_DEFAULT_TIMEOUT": ("orchestrator", "default_timeout"),
    "LLM_ENABLE_METRICS": ("orchestrator", "enable_metrics"),
    "LLM_ENABLE_TRACING": ("orchestrator", "enable_tracing"),
    "LLM_CACHE_ENABLED": ("cache", "enabled"),
    "LLM_CACHE_TTL": ("cache", "ttl"),
    "LLM_CACHE_SIZE": ("cache", "max_size"),
    "LLM_SECURITY_ENABLED": ("security", "enabled"),
    "LLM_AUDIT_ENABLED": ("security", "audit_enabled"),
    "LLM_AUDIT_PATH": ("security", "audit_path"),
    "REDIS_URL": ("cache", "redis_url"),
    "RATE_LIMIT_REQUESTS_PER_MINUTE": ("rate_limit", "requests_per_minute"),
    "RATE_LIMIT_TOKENS_PER_MINUTE": ("rate_limit", "tokens_per_minute"),
}
_MODEL_ALIAS: Final = "LLM_MODEL"

_EnvLayer = dict[tuple[str, ...], tuple[str, str]]  # settings path -> (variable, value)


def _env_layer(env: Mapping[str, str]) -> _EnvLayer:
    layer: _EnvLayer = {}
    for name, path in _ENV_PATHS.items():
        value = env.get(name, "").strip()
        if value:
            layer[path] = (name, value)
    alias = env.get(_MODEL_ALIAS, "").strip()
    if alias and ("primary_model",) not in layer:
        layer[("primary_model",)] = (_MODEL_ALIAS, alias)
    return layer


def _apply_env(raw: dict[str, Any], layer: _EnvLayer) -> dict[str, Any]:
    """Write the environment's values over ``raw`` (in place), creating sections."""
    for path, (_, value) in layer.items():
        target: Any = raw
        for part in path[:-1]:
            if target.get(part) is None:
                target[part] = {}
            target = target[part]
            if not isinstance(target, dict):
                break  # the file has a scalar here; validation reports it there
        else:
            target[path[-1]] = value
    return raw


def _file_data(doc: YamlDocument, env: Mapping[str, str]) -> dict[str, Any]:
    if doc.data is None:
        return {}
    if not isinstance(doc.data, dict):
        raise ConfigurationError(
            f"{doc.where(())}: a settings file must be a mapping of sections, "
            f"not a {type(doc.data).__name__}"
        )
    data: dict[str, Any] = interpolate(doc.data, env, document=doc)
    return data


# --- errors ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Origins:
    """Where each raw value came from: an environment variable or a YAML position."""

    env_vars: Mapping[YamlPath, str] = field(default_factory=dict)
    document: YamlDocument | None = None

    @classmethod
    def of(cls, layer: _EnvLayer, document: YamlDocument | None = None) -> _Origins:
        return cls({path: name for path, (name, _) in layer.items()}, document)

    def place(self, loc: YamlPath, *, key: bool = False) -> str:
        return self.document.where(loc, key=key) if self.document is not None else ""


def _settings_error(exc: ValidationError, model: type[BaseModel],
                    origins: _Origins) -> ConfigurationError:
    errors = exc.errors(include_url=False)
    problems = [p for err in errors for p in _problems(err, model, origins)]
    if len(problems) == 1:
        message = problems[0]
    else:
        message = f"{len(problems)} problems in settings:\n" + "\n".join(
            f"  - {p}" for p in problems)
    first = tuple(errors[0]["loc"]) if errors else ()
    return ConfigurationError(
        message,
        field=format_path(first) if first else None,
        details={"errors": problems},
    )


def _problems(err: ErrorDetails, model: type[BaseModel], origins: _Origins) -> list[str]:
    """One problem per error, except a cross-field check's, which lists several."""
    if err["type"] != CONFLICT:
        return [_problem(err, model, origins)]
    problems = []
    for sub, message in err.get("ctx", {}).get("problems", ()):
        loc: YamlPath = (*tuple(err["loc"]), *sub)
        problems.append(_at(loc, f"{format_path(loc)}: {message}", origins))
    return problems


def _problem(err: ErrorDetails, model: type[BaseModel], origins: _Origins) -> str:
    loc: YamlPath = tuple(err["loc"])
    if err["type"] == "extra_forbidden":
        return _unknown_key(loc, model, origins)
    if err["type"] == "invalid_key":
        return _at(loc, f"key {loc[-1]!r}: keys must be strings", origins, key=True)
    message = _clean(err["msg"])
    shown = f"={_show(err.get('input'))}" if _showable(loc, model, err) else ""
    variable = origins.env_vars.get(loc)
    if variable is not None:
        return f"environment variable {variable}{shown}: {message}"
    return _at(loc, f"{format_path(loc)}{shown}: {message}", origins)


def _at(loc: YamlPath, message: str, origins: _Origins, *, key: bool = False) -> str:
    """``file:line:col: deployment 'name': message``, with the parts that are known."""
    data = origins.document.data if origins.document is not None else None
    parts = (origins.place(loc, key=key), deployment_label(loc, data), message)
    return ": ".join(part for part in parts if part)


def _unknown_key(loc: YamlPath, model: type[BaseModel], origins: _Origins) -> str:
    where = f" in {format_path(loc[:-1])}" if len(loc) > 1 else ""
    message = _at(loc, f"unknown key {loc[-1]!r}{where}", origins, key=True)
    allowed = _fields_at(model, loc[:-1])
    if allowed:
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        message += f" ({hint}expected one of: {', '.join(sorted(allowed))})"
    return message


def _section_at(model: type[BaseModel], path: YamlPath) -> type[BaseModel] | None:
    current: Any = model
    for part in path:
        if isinstance(part, int) and get_origin(current) is tuple:
            current = _unoptional(get_args(current)[0])  # an item of a list of sections
        elif _is_section(current) and str(part) in current.model_fields:
            current = _unoptional(current.model_fields[str(part)].annotation)
        else:
            return None
    return current if _is_section(current) else None


def _is_section(annotation: Any) -> TypeGuard[type[BaseModel]]:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _unoptional(annotation: Any) -> Any:
    """``X`` for ``X | None`` or ``Annotated[X, ...]``; anything else as it is."""
    args = get_args(annotation)
    if NoneType in args and len(args) == 2:
        annotation = next(arg for arg in args if arg is not NoneType)
    return get_args(annotation)[0] if get_origin(annotation) is Annotated else annotation


def _fields_at(model: type[BaseModel], path: YamlPath) -> list[str]:
    section = _section_at(model, path)
    return list(section.model_fields) if section is not None else []


def _showable(loc: YamlPath, model: type[BaseModel], err: ErrorDetails) -> bool:
    """Show the bad value only for a plain field that can never hold a secret."""
    if not loc or loc[-1] == "api_key" or str(loc[-1]) not in _fields_at(model, loc[:-1]):
        return False
    if _section_at(model, loc) is not None:
        return False
    return isinstance(err.get("input"), str | int | float | bool | None)


def _clean(message: str) -> str:
    return message.removeprefix("Value error, ")


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
