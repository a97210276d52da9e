"""The ``routing:`` section of the settings: a whole ProviderManager declared in YAML.

::

    routing:
      strategy: round_robin
      retry: {max_attempts: 3, base_delay: 0.5s}
      breaker: {failure_threshold: 5, cooldown: 5s}
      deployments:
        - {name: openai-a, provider: openai, api_key: "${OPENAI_API_KEY}", models: [gpt-4o]}
        - {name: claude, provider: anthropic, models: [claude-3-5-sonnet-latest]}
      aliases: {fast: [openai-a, claude]}
      fallbacks: {gpt-4o: [claude-3-5-sonnet-latest]}

These are plain, frozen spec models; :func:`chainweave.providers.manager_from_settings`
turns them into a :class:`~chainweave.providers.ProviderManager`. Checks that span
several fields (duplicate deployment names, aliases naming unknown deployments,
fallbacks to models nothing serves) raise one ``settings_conflict`` error whose context
lists every problem with its own path, so :mod:`chainweave.config` can report each at
its ``file:line:col``. This module is imported by :mod:`chainweave.config`, so it may
not import that module (or the providers, which import it) at load time.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence, Sized
from datetime import date
from typing import Annotated, Any, Final, Literal, Self

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from chainweave._internal.model import StrictModel
from chainweave._internal.redact import register_secret
from chainweave._internal.values import duration_seconds, flag
from chainweave.errors import ConfigurationError

__all__ = [
    "CONFLICT",
    "BreakerSettings",
    "DeploymentProvider",
    "DeploymentSettings",
    "HealthProbeName",
    "PriceSettings",
    "RetrySettings",
    "RoutingSettings",
    "StrategyName",
    "deployment_label",
]

StrategyName = Literal[
    "least_in_flight", "lowest_latency", "random", "round_robin", "weighted_round_robin"]
"""The names :func:`chainweave.providers.strategy_named` knows."""
HealthProbeName = Literal["auto", "chat"]
DeploymentProvider = Literal[
    "openai", "anthropic", "azure", "openrouter", "openai_compatible", "mock"]

#: The error type of a check spanning several fields; ``ctx["problems"]`` holds
#: ``(path relative to the error's loc, message)`` pairs.
CONFLICT: Final = "settings_conflict"

_Problem = tuple[tuple[Hashable, ...], str]


# --- value types (the same forms as chainweave.config's) --------------------------------


def _registered(secret: SecretStr) -> SecretStr:
    register_secret(secret.get_secret_value())
    return secret


def _blank_is_none(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


def _none_is_empty(value: object) -> object:
    return {} if value is None else value


def _url(value: str) -> str:
    if not re.match(r"https?://[^\s/]", value):
        raise ValueError("expected an http:// or https:// URL")
    return value


def iso_date(value: object) -> object:
    """An unquoted YAML date (``2024-10-21``) as its text: API versions look like dates."""
    return value.isoformat() if isinstance(value, date) else value


def _non_empty(value: Sized) -> Sized:
    # Checked after the items, so a list whose every item is wrong is not also "empty".
    if not len(value):
        raise ValueError("must not be empty")
    return value


def _name_key(value: object) -> object:
    # "Round-Robin" and "openai-compatible" mean what they say.
    return value.strip().lower().replace("-", "_") if isinstance(value, str) else value


_Blank = BeforeValidator(_blank_is_none)
_Empty = BeforeValidator(_none_is_empty)
_Name = BeforeValidator(_name_key)
_Seconds = Annotated[float, BeforeValidator(duration_seconds)]
_Positive = Annotated[_Seconds, Field(gt=0)]
_MaybePositive = Annotated[_Positive | None, _Blank]
_Count = Annotated[int, Field(gt=0)]
_MaybeCount = Annotated[_Count | None, _Blank]
_Text = Annotated[str, Field(min_length=1)]
_ApiKey = Annotated[Annotated[SecretStr, AfterValidator(_registered)] | None, _Blank]
_MaybeUrl = Annotated[Annotated[str, AfterValidator(_url)] | None, _Blank]
_Price = Annotated[float, Field(ge=0, allow_inf_nan=False)]
_NonEmpty = AfterValidator(_non_empty)
_Names = Annotated[tuple[_Text, ...], _NonEmpty]


def _conflict(problems: Sequence[_Problem]) -> PydanticCustomError:
    return PydanticCustomError(CONFLICT, "; ".join(message for _, message in problems),
                               {"problems": tuple(problems)})


class _Section(StrictModel):
    """A routing section: frozen, strict about unknown keys, raising ConfigurationError."""

    model_config = ConfigDict(hide_input_in_errors=True)

    @classmethod
    def _error_from(cls, exc: ValidationError, error_context: Any) -> ConfigurationError:
        # chainweave.config imports this module, so its error formatting loads late.
        from chainweave.config import _Origins, _settings_error

        return _settings_error(exc, cls, _Origins())


# --- sections ----------------------------------------------------------------------------


class RetrySettings(_Section):
    """``routing.retry``: the fields of :class:`~chainweave.providers.RetryPolicy`.

    ``deadline: null`` means no time limit.
    """

    max_attempts: _Count = 3
    base_delay: _Seconds = 0.5
    max_delay: _Seconds = 30.0
    deadline: _MaybePositive = 60.0
    jitter: Annotated[bool, BeforeValidator(flag)] = True


class BreakerSettings(_Section):
    """``routing.breaker``: the fields of :class:`~chainweave.providers.BreakerPolicy`."""

    failure_threshold: _Count = 5
    failure_rate: Annotated[Annotated[float, Field(gt=0, le=1)] | None, _Blank] = 0.5
    window: _Count = 20
    min_calls: _Count = 10
    slow_call_seconds: _MaybePositive = None
    cooldown: _Positive = 5.0
    cooldown_multiplier: Annotated[float, Field(ge=1, allow_inf_nan=False)] = 2.0
    max_cooldown: _Positive = 300.0
    half_open_probes: _Count = 1

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems: list[_Problem] = []
        if self.min_calls > self.window:
            problems.append((("min_calls",), f"must be <= window ({self.window})"))
        if self.max_cooldown < self.cooldown:
            problems.append((("max_cooldown",), f"must be >= cooldown ({self.cooldown:g}s)"))
        if problems:
            raise _conflict(problems)
        return self


class PriceSettings(_Section):
    """US dollars per million tokens, as :class:`~chainweave.pricing.ModelPrice`."""

    input_per_million: _Price
    output_per_million: _Price


def _model_names(value: object) -> object:
    # A list serves each model under its own name; a mapping renames them upstream.
    if isinstance(value, list):
        if not all(isinstance(item, str) for item in value):
            raise ValueError("expected a list of model names or a mapping of public to "
                             "upstream names")
        return {item: item for item in value}
    return value


class DeploymentSettings(_Section):
    """One entry of ``routing.deployments``: a provider serving some models.

    Attributes:
        name: Unique among the deployments; what aliases, errors and stats call it.
        provider: The wire adapter to build.
        api_key: The key; when unset, the vendor's usual setting (``OPENAI_API_KEY``,
            ``providers.openai.api_key``, ...).
        api_base: The base URL; when unset, the vendor's usual one.
        api_version: The Azure API version (azure deployments only).
        models: Public model names, or a mapping of public to upstream names (an Azure
            deployment name, a vendor-prefixed OpenRouter name); unset serves every model.
        weight: Its share of traffic under the weighted strategies.
        rpm, tpm, max_concurrency: Its rate and concurrency limits.
        timeout: Seconds per call on it, overriding ``routing.timeout``.
        price: What its tokens cost, when the built-in table does not know.
    """

    name: _Text
    provider: Annotated[DeploymentProvider, _Name]
    api_key: _ApiKey = None
    api_base: _MaybeUrl = None
    api_version: Annotated[_Text | None, _Blank, BeforeValidator(iso_date)] = None
    models: Annotated[Annotated[dict[_Text, _Text], _NonEmpty] | None,
                      BeforeValidator(_model_names)] = None
    weight: _Count = 1
    rpm: _MaybeCount = None
    tpm: _MaybeCount = None
    max_concurrency: _MaybeCount = None
    timeout: _MaybePositive = None
    price: PriceSettings | None = None

    @model_validator(mode="after")
    def _azure_only_version(self) -> Self:
        if self.api_version is not None and self.provider != "azure":
            raise _conflict([(("api_version",), "api_version applies to azure deployments "
                                                f"only, not {self.provider}")])
        return self


class RoutingSettings(_Section):
    """``routing:``: how :func:`~chainweave.providers.manager_from_settings` builds a manager.

    Every field is optional. Without ``deployments`` the manager is built from
    ``PRIMARY_MODEL``/``SECONDARY_MODEL`` as before, with these policies.

    Attributes:
        strategy: The routing strategy's name.
        max_concurrency: Calls in flight in all; ``LLM_CONCURRENT_NUMBER`` when unset.
        timeout: Seconds per call; ``orchestrator.default_timeout`` when unset.
        max_wait: The longest a call waits for a rate-limited deployment.
        retry: Attempts, backoff and deadline per model group.
        breaker: The circuit breaker policy of every deployment.
        health_interval: Seconds between health checks once the manager is started.
        health_probe: ``auto`` (the provider's own check) or ``chat`` (a one-token chat).
        deployments: The deployments; ``None`` (absent) keeps the model-variable setup.
        aliases: A name → the deployments it routes over.
        fallbacks: A model → the models or aliases to try, in order, when it fails.
    """

    strategy: Annotated[StrategyName, _Name] = "round_robin"
    max_concurrency: _MaybeCount = None
    timeout: _MaybePositive = None
    max_wait: _Seconds = 10.0
    retry: Annotated[RetrySettings, _Empty] = Field(default_factory=RetrySettings)
    breaker: Annotated[BreakerSettings, _Empty] = Field(default_factory=BreakerSettings)
    health_interval: _Positive = 30.0
    health_probe: Annotated[HealthProbeName, _Name] = "auto"
    deployments: Annotated[Annotated[tuple[DeploymentSettings, ...], _NonEmpty] | None,
                           _Blank] = None
    aliases: Annotated[dict[_Text, _Names], _Empty] = Field(default_factory=dict)
    fallbacks: Annotated[dict[_Text, _Names], _Empty] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems = [*self._duplicate_names(), *self._unknown_alias_targets(),
                    *self._unserved_fallbacks()]
        if problems:
            raise _conflict(problems)
        return self

    def _duplicate_names(self) -> list[_Problem]:
        first: dict[str, int] = {}
        problems: list[_Problem] = []
        for index, deployment in enumerate(self.deployments or ()):
            seen = first.setdefault(deployment.name, index)
            if seen != index:
                problems.append((("deployments", index, "name"),
                                 f"duplicate deployment name {deployment.name!r} "
                                 f"(also deployments[{seen}])"))
        return problems

    def _unknown_alias_targets(self) -> list[_Problem]:
        known = {d.name for d in self.deployments or ()}
        return [(("aliases", alias, index),
                 f"alias {alias!r} names unknown deployment {target!r}"
                 + ("" if known else " (routing.deployments declares none)"))
                for alias, targets in self.aliases.items()
                for index, target in enumerate(targets) if target not in known]

    def _unserved_fallbacks(self) -> list[_Problem]:
        if self.deployments is None or any(d.models is None for d in self.deployments):
            return []  # the model-variable setup, or a deployment serving every model
        served = {*self.aliases, *(m for d in self.deployments for m in d.models or ())}
        return [(("fallbacks", model, index),
                 f"fallback {target!r} for {model!r} is a model no deployment serves "
                 "and no alias names")
                for model, targets in self.fallbacks.items()
                for index, target in enumerate(targets) if target not in served]


def deployment_label(loc: tuple[Hashable, ...], data: Any) -> str | None:
    """``deployment 'name'`` for a settings path inside ``routing.deployments[i]``.

    Args:
        loc: A path into the settings, such as ``("routing", "deployments", 1, "rpm")``.
        data: The settings as written, to read the deployment's name from.

    Returns:
        The label, or ``None`` when the path is not inside a deployment or its name
        cannot be read.
    """
    if len(loc) < 3 or loc[:2] != ("routing", "deployments") or not isinstance(loc[2], int):
        return None
    try:
        name = data["routing"]["deployments"][loc[2]]["name"]
    except (KeyError, IndexError, TypeError):
        return None
    return f"deployment {name!r}" if isinstance(name, str) and name else None
