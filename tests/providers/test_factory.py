"""``from_env``: the environment and settings files select and configure the provider."""

from __future__ import annotations

from pathlib import Path

import pytest

from chainweave.errors import ConfigurationError
from chainweave.providers import (
    AnthropicProvider,
    AzureOpenAIProvider,
    FallbackProvider,
    MockProvider,
    OpenAICompatibleProvider,
    OpenAIProvider,
    OpenRouterProvider,
    from_env,
)
from chainweave.types import ChatRequest, Message
from tests.providers.openai_wire import KEY, completion
from tests.stubserver import Reply, StubServer

ANTHROPIC_KEY = "sk-ant-test-0123456789abcdefghij"


def test_nothing_configured_is_the_offline_mock() -> None:
    """With no key and no base URL the provider is the offline mock."""
    assert isinstance(from_env({}), MockProvider)


async def test_offline_mock_answers_deterministically() -> None:
    """The default provider answers without a network, the same way each time."""
    provider = from_env({})
    request = ChatRequest(messages=[Message.user("The future of AI is")])
    first, second = await provider.chat(request), await provider.chat(request)
    assert first.content == second.content
    assert first.content


@pytest.mark.parametrize(
    ("env", "cls"),
    [
        ({"OPENAI_API_KEY": KEY}, OpenAIProvider),
        ({"LLM_API_KEY": KEY}, OpenAIProvider),
        ({"ANTHROPIC_API_KEY": ANTHROPIC_KEY}, AnthropicProvider),
        ({"OPENROUTER_API_KEY": KEY}, OpenRouterProvider),
        ({"AZURE_API_KEY": KEY, "AZURE_API_BASE": "https://r.openai.azure.com",
          "PRIMARY_MODEL": "gpt-4o"}, AzureOpenAIProvider),
        ({"LLM_API_BASE": "http://127.0.0.1:11434/v1"}, OpenAICompatibleProvider),
        ({"LLM_PROVIDER": "mock", "OPENAI_API_KEY": KEY}, MockProvider),
    ],
)
def test_keys_and_llm_provider_select_the_adapter(env: dict[str, str], cls: type) -> None:
    """Each vendor's variables build that vendor's adapter."""
    assert type(from_env(env)) is cls


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"LLM_PROVIDER": "openai"}, "OPENAI_API_KEY"),
        ({"LLM_PROVIDER": "anthropic"}, "ANTHROPIC_API_KEY"),
        ({"LLM_PROVIDER": "openrouter"}, "OPENROUTER_API_KEY"),
        ({"LLM_PROVIDER": "azure", "AZURE_API_KEY": KEY}, "AZURE_API_BASE"),
        ({"LLM_PROVIDER": "azure"}, "AZURE_API_KEY"),
        ({"LLM_PROVIDER": "azure", "AZURE_API_KEY": KEY,
          "AZURE_API_BASE": "https://r.openai.azure.com"}, "PRIMARY_MODEL"),
        ({"LLM_PROVIDER": "openai_compatible"}, "LLM_API_BASE"),
        ({"LLM_PROVIDER": "fallback"}, "PRIMARY_MODEL"),
    ],
)
def test_missing_required_variable_is_named(env: dict[str, str], variable: str) -> None:
    """A provider chosen without its required variable raises ConfigurationError naming it."""
    with pytest.raises(ConfigurationError, match=variable):
        from_env(env)


def test_openrouter_headers_and_models_come_from_env() -> None:
    """OpenRouter's base URL, app headers and primary model are read from seed 003's names."""
    provider = from_env({"LLM_PROVIDER": "openrouter", "OPENROUTER_API_KEY": KEY,
                         "OPENROUTER_BASE_URL": "https://gw.example.test/api/v1",
                         "OPENROUTER_HEADERS_X_TITLE": "AI-HR",
                         "OPENROUTER_HEADERS_REFERER": "http://localhost:5173",
                         "LLM_MODEL": "anthropic/claude-3.5-sonnet:beta"})
    assert isinstance(provider, OpenRouterProvider)
    assert provider.base_url == "https://gw.example.test/api/v1"
    assert (provider.x_title, provider.referer) == ("AI-HR", "http://localhost:5173")
    assert provider.default_model == "anthropic/claude-3.5-sonnet:beta"


def test_azure_version_and_deployment_from_env() -> None:
    """Azure's API version and base come from AZURE_* variables."""
    provider = from_env({"AZURE_API_KEY": KEY, "AZURE_API_BASE": "https://r.openai.azure.com",
                         "AZURE_API_VERSION": "2024-06-01", "PRIMARY_MODEL": "prod-4o"})
    assert isinstance(provider, AzureOpenAIProvider)
    assert (provider.api_version, provider.default_model) == ("2024-06-01", "prod-4o")


def test_default_timeout_reaches_the_adapter() -> None:
    """LLM_DEFAULT_TIMEOUT sets the adapter's HTTP timeout."""
    provider = from_env({"OPENAI_API_KEY": KEY, "LLM_DEFAULT_TIMEOUT": "45s"})
    assert isinstance(provider, OpenAIProvider)
    assert provider._timeout.read == 45.0


def test_fallback_puts_each_model_on_its_vendor() -> None:
    """PRIMARY_MODEL and SECONDARY_MODEL become ordered targets on the right vendors."""
    provider = from_env({"LLM_PROVIDER": "fallback", "PRIMARY_MODEL": "gpt-4o",
                         "SECONDARY_MODEL": "claude-3-5-haiku-latest",
                         "OPENAI_API_KEY": KEY, "ANTHROPIC_API_KEY": ANTHROPIC_KEY})
    assert isinstance(provider, FallbackProvider)
    assert [(type(t.provider), t.model) for t in provider.targets] == [
        (OpenAIProvider, "gpt-4o"), (AnthropicProvider, "claude-3-5-haiku-latest")]


async def test_env_configured_adapter_talks_to_its_base(stub: StubServer) -> None:
    """OPENAI_API_BASE and PRIMARY_MODEL drive a real call to that server."""
    stub.route("POST", "/v1/chat/completions", Reply(json=completion("from env")))
    provider = from_env({"OPENAI_API_KEY": KEY, "OPENAI_API_BASE": f"{stub.url}/v1",
                         "PRIMARY_MODEL": "gpt-4o"})
    assert isinstance(provider, OpenAIProvider)
    async with provider:
        resp = await provider.chat(ChatRequest(messages=[Message.user("hi")]))
    assert resp.content == "from env"
    assert stub.requests[0].json["model"] == "gpt-4o"


async def test_yaml_settings_file_with_env_interpolation(stub: StubServer,
                                                         tmp_path: Path) -> None:
    """A seed-002-shaped YAML file with ${VAR} builds a working provider."""
    stub.route("POST", "/v1/chat/completions", Reply(json=completion("from yaml")))
    path = tmp_path / "chainweave.yaml"
    path.write_text(
        "provider: openai\n"
        "providers:\n"
        "  openai:\n"
        "    api_key: ${OPENAI_API_KEY}\n"
        "    api_base: ${BASE:-http://unused.invalid/v1}\n"
        "    model: gpt-4o-mini\n"
        "orchestrator:\n"
        "  default_timeout: 20s\n"
    )
    provider = from_env({"OPENAI_API_KEY": KEY, "BASE": f"{stub.url}/v1"}, config=path)
    assert isinstance(provider, OpenAIProvider)
    async with provider:
        resp = await provider.chat(ChatRequest(messages=[Message.user("hi")]))
    assert resp.content == "from yaml"
    assert stub.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_yaml_missing_variable_names_it_and_the_file(tmp_path: Path) -> None:
    """An unset ${VAR} in the settings file is an error naming the variable and file."""
    path = tmp_path / "chainweave.yaml"
    path.write_text("providers:\n  openai:\n    api_key: ${NOT_SET_ANYWHERE}\n")
    with pytest.raises(ConfigurationError, match="NOT_SET_ANYWHERE") as info:
        from_env({}, config=path)
    assert "chainweave.yaml" in str(info.value)


def test_manager_from_settings_routes_primary_then_secondary() -> None:
    """PRIMARY_MODEL and SECONDARY_MODEL become deployments, the secondary the fallback."""
    from chainweave.config import Settings
    from chainweave.providers.factory import manager_from_settings

    settings = Settings.from_env({
        "PRIMARY_MODEL": "gpt-4o", "SECONDARY_MODEL": "claude-3-5-haiku-latest",
        "OPENAI_API_KEY": KEY, "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
        "LLM_CONCURRENT_NUMBER": "7", "LLM_DEFAULT_TIMEOUT": "12s"})
    pm = manager_from_settings(settings)
    assert sorted(pm.deployments) == ["anthropic:claude-3-5-haiku-latest", "openai:gpt-4o"]
    assert isinstance(pm.deployments["openai:gpt-4o"].provider, OpenAIProvider)
    assert pm.default_model == "gpt-4o"
    assert pm.timeout == 12.0
    assert pm._slots is not None
    assert pm._slots._value == 7


async def test_manager_from_settings_falls_back_to_secondary_vendor(stub: StubServer) -> None:
    """When the primary's vendor fails, the secondary model answers through its vendor."""
    from chainweave.config import Settings
    from chainweave.providers.factory import manager_from_settings

    stub.route("POST", "/openai/v1/chat/completions", Reply(500, json={
        "error": {"message": "down", "type": "server_error"}}))
    stub.route("POST", "/router/v1/chat/completions", Reply(json=completion("secondary")))
    settings = Settings.from_env({
        "PRIMARY_MODEL": "gpt-4o", "SECONDARY_MODEL": "meta/llama-3.1-70b",
        "OPENAI_API_KEY": KEY, "OPENAI_API_BASE": f"{stub.url}/openai/v1",
        "OPENROUTER_API_KEY": KEY, "OPENROUTER_BASE_URL": f"{stub.url}/router/v1"})
    pm = manager_from_settings(settings)
    resp = await pm.chat(ChatRequest(messages=[Message.user("hi")]))
    await pm.aclose()
    assert resp.content == "secondary"
    assert resp.metadata["model_group"] == "meta/llama-3.1-70b"


async def test_manager_from_empty_settings_is_the_offline_mock() -> None:
    """With nothing configured the manager routes to the offline mock."""
    from chainweave.config import Settings
    from chainweave.providers.factory import manager_from_settings

    pm = manager_from_settings(Settings.from_env({}))
    resp = await pm.chat(ChatRequest(messages=[Message.user("hello")]))
    assert resp.provider == "mock"
