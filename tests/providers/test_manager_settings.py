"""``manager_from_settings`` with a ``routing:`` section: a whole ProviderManager from YAML."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from chainweave.config import Settings, load_settings
from chainweave.errors import ConfigurationError
from chainweave.pricing import ModelPrice
from chainweave.providers import (
    AnthropicProvider,
    AzureOpenAIProvider,
    BreakerPolicy,
    LeastInFlight,
    Limits,
    MockProvider,
    OpenAIProvider,
    RetryPolicy,
    RoundRobin,
    WeightedRoundRobin,
    manager_from_settings,
)
from chainweave.types import ChatRequest, Message
from tests.providers.openai_wire import KEY, completion, error_reply
from tests.stubserver import Reply, StubServer

OTHER_KEY = "sk-other-abcdefghijklmnopqrstuvwxyz987654"
ANTHROPIC_KEY = "sk-ant-test-0123456789abcdefghij"

E2E_YAML = """\
routing:
  strategy: round_robin
  timeout: 5s
  retry: {max_attempts: 4, base_delay: 10ms, max_delay: 50ms, deadline: 10s, jitter: false}
  breaker: {failure_threshold: 2, failure_rate: null, cooldown: 60s, max_cooldown: 10m}
  deployments:
    - name: a
      provider: openai
      api_key: ${KEY_A}
      api_base: ${STUB}/a/v1
      models: {gpt-4o-mini: upstream-a, gpt-4o: upstream-a}
    - name: b
      provider: openai
      api_key: ${KEY_B}
      api_base: ${STUB}/b/v1
      models: [gpt-4o-mini]
  fallbacks: {gpt-4o: [gpt-4o-mini]}
"""


def routing(*entries: str, extra: str = "", top: str = "") -> Settings:
    """Settings from a routing section with these flow-style deployment entries."""
    text = top + "routing:\n" + extra + "  deployments:\n" + "".join(
        f"    - {e}\n" for e in entries)
    return Settings.from_yaml(text, env={})


def ask(model: str | None = None) -> ChatRequest:
    """A one-message request."""
    return ChatRequest(messages=[Message.user("Capital of France?")], model=model)


# --- building ----------------------------------------------------------------------------


def test_declared_deployments_are_exactly_those() -> None:
    """With routing.deployments the manager has those entries and nothing from the models."""
    settings = routing(f"{{name: a, provider: openai, api_key: {KEY}}}",
                       "{name: m, provider: mock}", top="primary_model: gpt-4o\n")
    pm = manager_from_settings(settings)
    assert list(pm.deployments) == ["a", "m"]
    assert isinstance(pm.deployments["a"].provider, OpenAIProvider)
    assert isinstance(pm.deployments["m"].provider, MockProvider)


async def test_adapters_share_the_client_passed_in() -> None:
    """Every adapter is built on the one httpx client given."""
    settings = routing(f"{{name: a, provider: openai, api_key: {KEY}}}",
                       f"{{name: c, provider: anthropic, api_key: {ANTHROPIC_KEY}}}")
    async with httpx.AsyncClient() as client:
        pm = manager_from_settings(settings, client=client)
        assert all(d.provider.client is client  # type: ignore[attr-defined]
                   for d in pm.deployments.values())


def test_adapter_is_named_after_its_deployment() -> None:
    """Errors and responses from an adapter carry the deployment's name."""
    pm = manager_from_settings(routing(f"{{name: east, provider: openai, api_key: {KEY}}}"))
    assert pm.deployments["east"].provider.name == "east"  # type: ignore[attr-defined]


def test_entry_key_wins_over_the_vendor_key() -> None:
    """A deployment's own api_key is used even when the vendor has one."""
    settings = routing(f"{{name: a, provider: openai, api_key: {OTHER_KEY}}}",
                       top=f"providers:\n  openai:\n    api_key: {KEY}\n")
    provider = manager_from_settings(settings).deployments["a"].provider
    assert provider._api_key == OTHER_KEY  # type: ignore[attr-defined]


def test_vendor_key_from_env_is_used_when_the_entry_has_none(tmp_path: Path) -> None:
    """An entry without api_key takes the vendor's key, here OPENAI_API_KEY."""
    path = tmp_path / "chainweave.yaml"
    path.write_text("routing:\n  deployments:\n    - {name: a, provider: openai}\n")
    pm = manager_from_settings(load_settings(path, env={"OPENAI_API_KEY": KEY}))
    assert pm.deployments["a"].provider._api_key == KEY  # type: ignore[attr-defined]


def test_missing_key_names_the_deployment_and_variable() -> None:
    """An entry whose provider has no key anywhere is an error naming both."""
    with pytest.raises(ConfigurationError) as info:
        manager_from_settings(routing("{name: claude, provider: anthropic}"))
    assert str(info.value).startswith(
        "routing deployment 'claude' (anthropic) needs api_key: set api_key on it or set "
        "ANTHROPIC_API_KEY")
    assert info.value.details["deployment"] == "claude"


def test_every_unbuildable_deployment_is_listed() -> None:
    """All entries missing a key or base URL are reported in one error."""
    with pytest.raises(ConfigurationError, match="2 deployments cannot be built") as info:
        manager_from_settings(routing("{name: o, provider: openrouter}",
                                      "{name: local, provider: openai_compatible}"))
    assert "OPENROUTER_API_KEY" in str(info.value)
    assert "needs api_base: set api_base on it or set LLM_API_BASE" in str(info.value)


def test_missing_key_error_never_shows_other_keys() -> None:
    """The missing-key error does not leak the keys the other entries have."""
    with pytest.raises(ConfigurationError) as info:
        manager_from_settings(routing(f"{{name: a, provider: openai, api_key: {OTHER_KEY}}}",
                                      "{name: c, provider: anthropic}"))
    assert OTHER_KEY not in f"{info.value} {info.value!r} {info.value.to_dict()}"


def test_entry_timeout_bounds_its_adapter_and_deployment() -> None:
    """An entry's timeout is the adapter's HTTP timeout and the manager's per-call bound."""
    pm = manager_from_settings(routing(
        f"{{name: a, provider: openai, api_key: {KEY}, timeout: 7s}}"))
    deployment = pm.deployments["a"]
    assert deployment.timeout == 7.0
    assert deployment.provider._timeout.read == 7.0  # type: ignore[attr-defined]


def test_routing_timeout_is_every_adapters_default() -> None:
    """Without an entry timeout the adapter uses routing.timeout, as does the manager."""
    pm = manager_from_settings(routing(f"{{name: a, provider: openai, api_key: {KEY}}}",
                                       extra="  timeout: 12s\n"))
    assert pm.timeout == 12.0
    assert pm.deployments["a"].provider._timeout.read == 12.0  # type: ignore[attr-defined]


def test_timeout_defaults_to_the_orchestrator_default() -> None:
    """Without routing.timeout calls are bounded by orchestrator.default_timeout."""
    pm = manager_from_settings(routing("{name: m, provider: mock}",
                                       top="orchestrator: {default_timeout: 9s}\n"))
    assert pm.timeout == 9.0


def test_concurrency_defaults_to_concurrent_number() -> None:
    """Without routing.max_concurrency the manager takes concurrent_number."""
    pm = manager_from_settings(routing("{name: m, provider: mock}",
                                       top="concurrent_number: 7\n"))
    assert pm._slots is not None
    assert pm._slots._value == 7


def test_routing_max_concurrency_wins_over_concurrent_number() -> None:
    """routing.max_concurrency, when set, is the manager's cap."""
    pm = manager_from_settings(routing("{name: m, provider: mock}",
                                       extra="  max_concurrency: 3\n",
                                       top="concurrent_number: 7\n"))
    assert pm._slots is not None
    assert pm._slots._value == 3


def test_limits_weight_and_price_reach_the_deployment() -> None:
    """rpm, tpm, max_concurrency, weight and price are the deployment's."""
    pm = manager_from_settings(routing(
        "{name: m, provider: mock, weight: 3, rpm: 60, tpm: 1000, max_concurrency: 2, "
        "price: {input_per_million: 2.5, output_per_million: 10}}"))
    deployment = pm.deployments["m"]
    assert deployment.weight == 3
    assert deployment.limiter.limits == Limits(rpm=60, tpm=1000, max_concurrency=2)
    assert deployment.price == ModelPrice(2.5, 10.0)


def test_policies_reach_the_manager() -> None:
    """Strategy, retry, breaker, max_wait and health options come from routing."""
    pm = manager_from_settings(routing("{name: m, provider: mock}", extra=(
        "  strategy: weighted_round_robin\n  max_wait: 2s\n"
        "  health_interval: 1m\n  health_probe: chat\n"
        "  retry: {max_attempts: 5, deadline: null}\n"
        "  breaker: {failure_threshold: 9, cooldown: 1s, max_cooldown: 2s}\n")))
    assert isinstance(pm.strategy, WeightedRoundRobin)
    assert pm.retry == RetryPolicy(max_attempts=5, deadline=None)
    assert pm.breaker_policy == BreakerPolicy(failure_threshold=9, cooldown=1.0,
                                              max_cooldown=2.0)
    assert (pm.max_wait, pm.health_interval, pm.health_probe) == (2.0, 60.0, "chat")


def test_default_model_is_the_first_declared_model() -> None:
    """Without PRIMARY_MODEL the default is the first entry's first public model."""
    pm = manager_from_settings(routing("{name: m, provider: mock, models: {fast: upstream}}",
                                       "{name: n, provider: mock, models: [other]}"))
    assert pm.default_model == "fast"


def test_primary_model_is_the_default_when_set() -> None:
    """PRIMARY_MODEL stays the default model over declared deployments."""
    pm = manager_from_settings(routing("{name: m, provider: mock, models: [a, b]}",
                                       top="primary_model: b\n"))
    assert pm.default_model == "b"


def test_azure_entry_uses_its_version_and_deployment_name() -> None:
    """An Azure entry takes its api_version and sends the upstream (deployment) name."""
    pm = manager_from_settings(routing(
        f"{{name: az, provider: azure, api_key: {KEY}, api_base: https://r.openai.azure.com, "
        "api_version: 2024-06-01, models: {gpt-4o: prod-4o}}"))
    provider = pm.deployments["az"].provider
    assert isinstance(provider, AzureOpenAIProvider)
    assert (provider.api_version, provider.default_model) == ("2024-06-01", "prod-4o")
    assert pm.deployments["az"].upstream_model("gpt-4o") == "prod-4o"


def test_anthropic_entry_uses_its_base_url() -> None:
    """An entry's api_base replaces the vendor's default base URL."""
    pm = manager_from_settings(routing(
        f"{{name: c, provider: anthropic, api_key: {ANTHROPIC_KEY}, "
        "api_base: https://proxy.example.test}"))
    provider = pm.deployments["c"].provider
    assert isinstance(provider, AnthropicProvider)
    assert provider.base_url.startswith("https://proxy.example.test")


async def test_alias_routes_over_its_deployments() -> None:
    """A request for an alias is served by one of the deployments it names."""
    pm = manager_from_settings(routing("{name: m, provider: mock, models: [x]}",
                                       "{name: n, provider: mock, models: [y]}",
                                       extra="  aliases: {fast: [n]}\n"))
    resp = await pm.chat(ask("fast"))
    assert (resp.metadata["deployment"], resp.metadata["model_group"]) == ("n", "fast")


# --- without routing.deployments ---------------------------------------------------------------


def test_model_variables_setup_takes_routing_policies() -> None:
    """Without deployments the PRIMARY_MODEL setup is kept and the routing policies apply."""
    settings = Settings.from_yaml(
        f"primary_model: gpt-4o\nproviders:\n  openai:\n    api_key: {KEY}\n"
        "routing:\n  strategy: least_in_flight\n  retry: {max_attempts: 2}\n", env={})
    pm = manager_from_settings(settings)
    assert list(pm.deployments) == ["openai:gpt-4o"]
    assert pm.retry.max_attempts == 2
    assert isinstance(pm.strategy, LeastInFlight)


def test_model_variables_fallback_to_unserved_model_is_refused() -> None:
    """Without deployments, a fallback to a model no deployment serves is an error."""
    settings = Settings.from_yaml(
        f"primary_model: gpt-4o\nproviders:\n  openai:\n    api_key: {KEY}\n"
        "routing:\n  fallbacks: {gpt-4o: [claude-x]}\n", env={})
    with pytest.raises(ConfigurationError, match=r"routing\.fallbacks\.gpt-4o\[0\]: "
                                                 "fallback 'claude-x'"):
        manager_from_settings(settings)


# --- end to end ------------------------------------------------------------------------------


def e2e_settings(stub: StubServer, tmp_path: Path) -> Settings:
    """E2E_YAML loaded from a file, its keys and base URLs from the environment."""
    path = tmp_path / "chainweave.yaml"
    path.write_text(E2E_YAML)
    return load_settings(path, env={"KEY_A": KEY, "KEY_B": OTHER_KEY, "STUB": stub.url})


async def test_yaml_manager_routes_around_a_failing_deployment(stub: StubServer,
                                                               tmp_path: Path) -> None:
    """A YAML-declared manager answers through ``b`` while ``a`` fails 500, with its policies."""
    stub.route("POST", "/a/v1/chat/completions", error_reply(500, "down", type_="server_error"))
    stub.route("POST", "/b/v1/chat/completions", Reply(json=completion("from b")))
    async with httpx.AsyncClient() as client:
        pm = manager_from_settings(e2e_settings(stub, tmp_path), client=client)
        answers = [(await pm.chat(ask())).content for _ in range(4)]
    hits = [r for r in stub.requests if r.path == "/a/v1/chat/completions"]
    assert answers == ["from b"] * 4
    assert isinstance(pm.strategy, RoundRobin)
    assert (pm.retry.max_attempts, pm.retry.base_delay, pm.retry.jitter) == (4, 0.01, False)
    assert (pm.breaker_policy.failure_threshold, pm.breaker_policy.cooldown) == (2, 60.0)
    assert len(hits) == 2  # the breaker opened after failure_threshold failures
    assert pm.status()["a"]["breaker"] == "open"
    assert hits[0].json["model"] == "upstream-a"
    assert hits[0].headers["authorization"] == f"Bearer {KEY}"
    assert stub.requests[-1].headers["authorization"] == f"Bearer {OTHER_KEY}"


async def test_yaml_fallback_answers_when_the_model_fails(stub: StubServer,
                                                          tmp_path: Path) -> None:
    """When every deployment of gpt-4o fails, the fallback model from YAML answers."""
    stub.route("POST", "/a/v1/chat/completions", error_reply(500, "down", type_="server_error"))
    stub.route("POST", "/b/v1/chat/completions", Reply(json=completion("fallback")))
    async with httpx.AsyncClient() as client:
        pm = manager_from_settings(e2e_settings(stub, tmp_path), client=client)
        resp = await pm.chat(ask("gpt-4o"))
    assert resp.content == "fallback"
    assert resp.metadata["model_group"] == "gpt-4o-mini"
