"""Tests for the ``routing:`` settings section (chainweave.config_routing)."""

from __future__ import annotations

import dataclasses
from typing import get_args

import pytest
from pydantic import BaseModel, SecretStr

from chainweave._internal.redact import redact
from chainweave.config import Settings
from chainweave.config_routing import (
    BreakerSettings,
    DeploymentProvider,
    HealthProbeName,
    PriceSettings,
    RetrySettings,
    RoutingSettings,
    StrategyName,
)
from chainweave.errors import ConfigurationError
from chainweave.pricing import ModelPrice
from chainweave.providers import BreakerPolicy, RetryPolicy, factory, manager, strategies

DEPLOYMENT_KEY = "test-deployment-key-0123456789"

FULL_YAML = """\
routing:
  strategy: weighted_round_robin
  max_concurrency: 50
  timeout: 1m30s
  max_wait: 250ms
  retry: {max_attempts: 4, base_delay: 0.5s, max_delay: 30s, deadline: 2m, jitter: off}
  breaker: {failure_threshold: 3, failure_rate: 0.25, window: 40, min_calls: 8,
            slow_call_seconds: 12s, cooldown: 5s, cooldown_multiplier: 3, max_cooldown: 5m,
            half_open_probes: 2}
  health_interval: 45s
  health_probe: chat
  deployments:
    - name: openai-a
      provider: openai
      api_key: ${DEPLOYMENT_KEY}
      api_base: https://a.example.test/v1
      models: [gpt-4o, gpt-4o-mini]
      weight: 2
      rpm: 500
      tpm: 200000
      max_concurrency: 20
      timeout: 20s
      price: {input_per_million: 2.5, output_per_million: 10}
    - name: azure-east
      provider: azure
      api_version: 2024-10-21
      models: {gpt-4o: prod-4o}
  aliases: {fast: [openai-a, azure-east]}
  fallbacks: {gpt-4o: [gpt-4o-mini, fast]}
"""


def full() -> RoutingSettings:
    """The routing section of FULL_YAML."""
    return Settings.from_yaml(FULL_YAML, env={"DEPLOYMENT_KEY": DEPLOYMENT_KEY}).routing


def error_for(text: str, source: str = "cfg.yaml") -> str:
    """The message of the ConfigurationError that loading ``text`` raises."""
    with pytest.raises(ConfigurationError) as info:
        Settings.from_yaml(text, source=source, env={})
    return str(info.value)


def deployments(*entries: str) -> str:
    """A routing section with these flow-style deployment entries."""
    return "routing:\n  deployments:\n" + "".join(f"    - {e}\n" for e in entries)


# --- parsing -----------------------------------------------------------------------------


def test_absent_section_means_no_deployments_and_default_policies() -> None:
    """Without ``routing:`` nothing is declared and the policies are the defaults."""
    routing = Settings().routing
    assert routing.deployments is None
    assert (routing.strategy, routing.max_concurrency, routing.timeout) == (
        "round_robin", None, None)
    assert (routing.aliases, routing.fallbacks) == ({}, {})


def test_empty_section_is_the_defaults() -> None:
    """A ``routing:`` key with nothing under it reads as the defaults."""
    assert Settings.from_yaml("routing:\n").routing == RoutingSettings()


def test_top_level_fields_parse() -> None:
    """Strategy, concurrency, durations and the health options are read."""
    routing = full()
    assert (routing.strategy, routing.max_concurrency, routing.timeout, routing.max_wait) == (
        "weighted_round_robin", 50, 90.0, 0.25)
    assert (routing.health_interval, routing.health_probe) == (45.0, "chat")


def test_retry_fields_parse() -> None:
    """Every retry field is read, durations in any of the usual forms."""
    assert full().retry == RetrySettings(max_attempts=4, base_delay=0.5, max_delay=30.0,
                                         deadline=120.0, jitter=False)


def test_breaker_fields_parse() -> None:
    """Every breaker field is read, durations in any of the usual forms."""
    assert full().breaker == BreakerSettings(
        failure_threshold=3, failure_rate=0.25, window=40, min_calls=8, slow_call_seconds=12.0,
        cooldown=5.0, cooldown_multiplier=3.0, max_cooldown=300.0, half_open_probes=2)


def test_deployment_fields_parse() -> None:
    """Every field of a deployment entry is read."""
    entry = full().deployments[0]  # type: ignore[index]
    assert (entry.name, entry.provider, entry.api_base) == (
        "openai-a", "openai", "https://a.example.test/v1")
    assert entry.api_key is not None
    assert entry.api_key.get_secret_value() == DEPLOYMENT_KEY
    assert (entry.weight, entry.rpm, entry.tpm, entry.max_concurrency, entry.timeout) == (
        2, 500, 200000, 20, 20.0)
    assert entry.price == PriceSettings(input_per_million=2.5, output_per_million=10.0)


def test_model_list_serves_each_model_under_its_own_name() -> None:
    """``models: [a, b]`` maps each public name to itself upstream."""
    entry = full().deployments[0]  # type: ignore[index]
    assert entry.models == {"gpt-4o": "gpt-4o", "gpt-4o-mini": "gpt-4o-mini"}


def test_model_mapping_names_the_upstream_model() -> None:
    """``models: {public: upstream}`` is kept as written."""
    assert full().deployments[1].models == {"gpt-4o": "prod-4o"}  # type: ignore[index]


def test_unquoted_api_version_date_is_read_as_text() -> None:
    """``api_version: 2024-10-21`` (a YAML date) is the version string."""
    assert full().deployments[1].api_version == "2024-10-21"  # type: ignore[index]


def test_omitted_deployment_fields_take_defaults() -> None:
    """An entry with only a name and a provider serves every model, weight 1, no limits."""
    bare = Settings.from_yaml(deployments("{name: m, provider: mock}")).routing.deployments
    assert bare is not None
    assert (bare[0].models, bare[0].weight, bare[0].rpm, bare[0].price, bare[0].api_key) == (
        None, 1, None, None, None)


def test_aliases_and_fallbacks_parse() -> None:
    """Aliases map to deployment names and fallbacks to models, in order."""
    routing = full()
    assert routing.aliases == {"fast": ("openai-a", "azure-east")}
    assert routing.fallbacks == {"gpt-4o": ("gpt-4o-mini", "fast")}


def test_names_are_normalised() -> None:
    """Strategy and provider names accept any case and dashes."""
    routing = Settings.from_yaml("routing:\n  strategy: Least-In-Flight\n  deployments:\n"
                                 "    - {name: x, provider: OpenAI-Compatible}\n").routing
    assert routing.strategy == "least_in_flight"
    assert routing.deployments is not None
    assert routing.deployments[0].provider == "openai_compatible"


def test_null_deadline_means_no_limit() -> None:
    """``retry.deadline: null`` is no deadline at all."""
    assert Settings.from_yaml("routing:\n  retry: {deadline: null}\n").routing.retry.deadline \
        is None


def test_deployment_key_is_secret_and_registered() -> None:
    """A deployment's key is a SecretStr, hidden in reprs and masked by redact()."""
    settings = Settings.from_yaml(FULL_YAML, env={"DEPLOYMENT_KEY": DEPLOYMENT_KEY})
    entry = settings.routing.deployments[0]  # type: ignore[index]
    assert isinstance(entry.api_key, SecretStr)
    assert DEPLOYMENT_KEY not in f"{settings!r} {settings} {entry!r}"
    assert DEPLOYMENT_KEY not in redact(f"sent {DEPLOYMENT_KEY}")


# --- errors --------------------------------------------------------------------------------


def test_bad_deployment_value_names_the_deployment_and_place() -> None:
    """A bad value in an entry says file:line:col, the deployment's name and the field."""
    message = error_for(deployments("{name: a, provider: mock}",
                                    "{name: b, provider: mock, rpm: 0}"))
    assert message.startswith(
        "cfg.yaml:4:38: deployment 'b': routing.deployments[1].rpm=0: ")


def test_unnamed_deployment_is_named_by_index() -> None:
    """An entry without a name is pointed at by its index."""
    message = error_for(deployments("{provider: mock}"))
    assert message.startswith("cfg.yaml:3:7: routing.deployments[0].name: Field required")


def test_unknown_deployment_key_is_located_with_a_suggestion() -> None:
    """A misspelt key in an entry is located and the right one suggested."""
    message = error_for(deployments("{name: a, provider: mock, tmeout: 3}"))
    assert message.startswith("cfg.yaml:3:33: deployment 'a': unknown key 'tmeout' in "
                              "routing.deployments[0] (did you mean 'timeout'?")


def test_unknown_retry_key_is_located() -> None:
    """Policy sections refuse unknown keys like every other section."""
    message = error_for("routing:\n  retry: {max_attempts: 2, backof: 1}\n")
    assert message.startswith("cfg.yaml:2:28: unknown key 'backof' in routing.retry")


def test_bad_strategy_is_named_with_its_place() -> None:
    """An unknown strategy is reported with its name, its place and the known names."""
    message = error_for("routing:\n  strategy: fastest\n")
    assert message.startswith("cfg.yaml:2:13: routing.strategy='fastest': ")
    assert "round_robin" in message


def test_bad_provider_is_named_with_its_place() -> None:
    """An unknown deployment provider is reported with its name and place."""
    message = error_for(deployments("{name: a, provider: bedrock}"))
    assert message.startswith(
        "cfg.yaml:3:27: deployment 'a': routing.deployments[0].provider='bedrock': ")


def test_bad_duration_is_located() -> None:
    """A routing duration that is not one says so where it was written."""
    message = error_for("routing:\n  timeout: soon\n")
    assert message.startswith("cfg.yaml:2:12: routing.timeout='soon': expected seconds")


def test_duplicate_deployment_names_are_refused() -> None:
    """A second entry with a name already used is an error at that name."""
    message = error_for(deployments("{name: a, provider: mock}", "{name: a, provider: mock}"))
    assert message == ("cfg.yaml:4:14: deployment 'a': routing.deployments[1].name: "
                       "duplicate deployment name 'a' (also deployments[0])")


def test_alias_to_unknown_deployment_is_refused() -> None:
    """An alias naming a deployment that is not declared is an error at that name."""
    message = error_for(deployments("{name: a, provider: mock}")
                        + "  aliases: {fast: [a, b]}\n")
    assert message == ("cfg.yaml:4:23: routing.aliases.fast[1]: alias 'fast' names unknown "
                       "deployment 'b'")


def test_alias_without_deployments_is_refused() -> None:
    """Aliases need declared deployments to name."""
    message = error_for("routing:\n  aliases: {fast: [a]}\n")
    assert "alias 'fast' names unknown deployment 'a' (routing.deployments declares none)" \
        in message


def test_fallback_to_unserved_model_is_refused() -> None:
    """A fallback to a model no deployment serves, and no alias names, is an error."""
    message = error_for(deployments("{name: a, provider: mock, models: [gpt-4o]}")
                        + "  fallbacks: {gpt-4o: [claude-x]}\n")
    assert message == ("cfg.yaml:4:24: routing.fallbacks.gpt-4o[0]: fallback 'claude-x' for "
                       "'gpt-4o' is a model no deployment serves and no alias names")


def test_fallback_to_an_alias_is_served() -> None:
    """A fallback may name an alias instead of a model."""
    routing = Settings.from_yaml(
        deployments("{name: a, provider: mock, models: [gpt-4o]}")
        + "  aliases: {spare: [a]}\n  fallbacks: {gpt-4o: [spare]}\n").routing
    assert routing.fallbacks == {"gpt-4o": ("spare",)}


def test_deployment_serving_every_model_serves_any_fallback() -> None:
    """With an entry that lists no models, every fallback model is served."""
    routing = Settings.from_yaml(deployments("{name: a, provider: mock}")
                                 + "  fallbacks: {gpt-4o: [anything]}\n").routing
    assert routing.fallbacks == {"gpt-4o": ("anything",)}


def test_every_conflict_is_listed_at_once() -> None:
    """Duplicates, unknown alias targets and unserved fallbacks are reported together."""
    message = error_for(deployments("{name: a, provider: mock, models: [m]}",
                                    "{name: a, provider: mock, models: [n]}")
                        + "  aliases: {fast: [zz]}\n  fallbacks: {m: [nope]}\n")
    assert message.startswith("3 problems in settings:\n")
    for part in ("duplicate deployment name 'a'", "unknown deployment 'zz'",
                 "fallback 'nope' for 'm'"):
        assert part in message


def test_api_version_outside_azure_is_refused() -> None:
    """``api_version`` on a non-Azure entry is an error at its value."""
    message = error_for(deployments("{name: a, provider: openai, api_version: v1}"))
    assert message.startswith("cfg.yaml:3:48: deployment 'a': "
                              "routing.deployments[0].api_version: api_version applies")


def test_breaker_min_calls_above_window_is_refused() -> None:
    """A rate rule that could never apply is an error at ``min_calls``."""
    message = error_for("routing:\n  breaker: {window: 5, min_calls: 10}\n")
    assert message == "cfg.yaml:2:35: routing.breaker.min_calls: must be <= window (5)"


def test_empty_deployment_list_is_refused() -> None:
    """``deployments: []`` is an error (leave the key out to declare none)."""
    message = error_for("routing:\n  deployments: []\n")
    assert message == "cfg.yaml:2:16: routing.deployments: must not be empty"


def test_empty_model_list_is_refused() -> None:
    """``models: []`` is an error (leave it out to serve every model)."""
    message = error_for(deployments("{name: a, provider: mock, models: []}"))
    assert message.endswith("routing.deployments[0].models: must not be empty")


def test_deployment_key_never_appears_in_errors() -> None:
    """An error in an entry that holds a key does not show the key."""
    with pytest.raises(ConfigurationError) as info:
        Settings.from_yaml(deployments(f"{{name: a, provider: openai, api_key: {DEPLOYMENT_KEY}"
                                       ", rpm: -1, api_kee: " + DEPLOYMENT_KEY + "}"))
    shown = f"{info.value} {info.value!r} {info.value.to_dict()}"
    assert "rpm" in shown
    assert DEPLOYMENT_KEY not in shown


def test_direct_construction_raises_configuration_error() -> None:
    """Building a routing section by hand with a bad value raises ConfigurationError."""
    with pytest.raises(ConfigurationError, match=r"^strategy='fastest': "):
        RoutingSettings(strategy="fastest")


# --- agreement with the runtime ---------------------------------------------------------------


@pytest.mark.parametrize(("section", "policy"), [(RetrySettings, RetryPolicy),
                                                 (BreakerSettings, BreakerPolicy),
                                                 (PriceSettings, ModelPrice)])
def test_section_fields_are_the_policy_fields(section: type[BaseModel], policy: type) -> None:
    """Each policy section has exactly the fields of the runtime value object it builds.

    ``RetryPolicy.retry_on`` (exception classes) is for Python code, not settings files.
    """
    python_only = {"retry_on"}
    assert set(section.model_fields) == {f.name for f in dataclasses.fields(policy)} - python_only


@pytest.mark.parametrize(("section", "policy"), [(RetrySettings, RetryPolicy),
                                                 (BreakerSettings, BreakerPolicy)])
def test_section_defaults_are_the_policy_defaults(section: type[BaseModel],
                                                  policy: type) -> None:
    """An empty policy section builds the runtime policy's defaults."""
    assert policy(**section().model_dump()) == policy()


def test_names_match_the_runtime_registries() -> None:
    """Strategy, health-probe and provider names are the ones the runtime knows."""
    assert set(get_args(StrategyName)) == set(strategies._STRATEGIES)
    assert set(get_args(HealthProbeName)) == set(get_args(manager.HealthProbe))
    assert set(get_args(DeploymentProvider)) == set(factory._BUILDERS)
