"""What every HTTP adapter shares: keys, clients, loops, timeouts, error context."""

from __future__ import annotations

import asyncio
import gc
import json

import httpx
import pytest

from chainweave._internal.sync import run_sync
from chainweave.errors import ConfigurationError, ProviderConnectionError, ProviderTimeoutError
from chainweave.providers import AzureOpenAIProvider, OpenAIProvider
from chainweave.types import ChatRequest, Message
from tests.providers.openai_wire import completion
from tests.stubserver import Reply, StubServer

PATH = "/v1/chat/completions"
KEY = "sk-proj-newline0123456789abcdefghij"


def ask() -> ChatRequest:
    """A one-message request."""
    return ChatRequest(model="gpt-4o-mini", messages=[Message.user("hi")])


async def test_key_with_trailing_newline_is_stripped(stub: StubServer) -> None:
    """A key read from a secrets file with its newline still works."""
    stub.route("POST", PATH, Reply(json=completion()))
    async with OpenAIProvider(api_key=f"{KEY}\n", base_url=f"{stub.url}/v1") as provider:
        await provider.chat(ask())
    assert stub.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_key_with_control_characters_is_refused_without_showing_it() -> None:
    """A key with a control character inside is a ConfigurationError that hides it."""
    bad = "0123456789abcdef\x00fedcba9876543210"
    with pytest.raises(ConfigurationError, match="control characters") as info:
        AzureOpenAIProvider(api_key=bad, base_url="https://r.openai.azure.com")
    assert bad not in str(info.value)
    assert info.value.field == "api_key"


def test_extra_header_with_control_characters_is_refused() -> None:
    """A header value HTTP would refuse is caught at construction."""
    with pytest.raises(ConfigurationError, match="X-Team"):
        OpenAIProvider(api_key=KEY, headers={"X-Team": "a\nb"})


def test_entra_token_is_redacted_from_repr_and_errors() -> None:
    """An Azure Entra token is registered as a secret like a key."""
    token = "eyJ0eXAiOiJKV1QiLCJhbGciOi.entra.token.value"
    provider = AzureOpenAIProvider(azure_ad_token=token, base_url="https://r.openai.azure.com")
    err = ProviderConnectionError(f"failed with {token}")
    assert token not in repr(provider)
    assert token not in str(err)


async def test_transport_error_carries_no_request_with_headers(stub: StubServer) -> None:
    """A mapped transport error keeps no chained httpx exception holding the key."""
    stub.route("POST", PATH, Reply(reset=True))
    async with OpenAIProvider(api_key=KEY, base_url=f"{stub.url}/v1") as provider:
        with pytest.raises(ProviderConnectionError) as info:
            await provider.chat(ask())
    assert info.value.__context__ is None
    assert info.value.__cause__ is None


async def test_injected_client_keeps_its_own_timeout(stub: StubServer) -> None:
    """An injected client's timeout applies when the adapter is given none."""
    stub.route("POST", PATH, Reply(json=completion(), delay=1.0))
    async with httpx.AsyncClient(timeout=0.1) as client:
        provider = OpenAIProvider(api_key=KEY, base_url=f"{stub.url}/v1", client=client)
        with pytest.raises(ProviderTimeoutError):
            await provider.chat(ask())


def test_run_sync_twice_reuses_the_adapter(stub: StubServer) -> None:
    """Two blocking calls through the sync bridge both succeed on one adapter."""
    stub.route("POST", PATH, Reply(json=completion("hello")))
    provider = OpenAIProvider(api_key=KEY, base_url=f"{stub.url}/v1")
    first = run_sync(provider.chat(ask()))
    second = run_sync(provider.chat(ask()))
    run_sync(provider.aclose())
    assert (first.content, second.content) == ("hello", "hello")


# The first client is left open on a loop that is gone, as the user left it; its sockets
# are reported unclosed when collected, which is the right warning for that mistake.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_adapter_survives_a_second_event_loop(
    stub: StubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second ``asyncio.run`` gets a fresh client instead of 'Event loop is closed'."""
    monkeypatch.setenv("CHAINWEAVE_HTTP_TRANSPORT", "httpx")
    stub.route("POST", PATH, Reply(json=completion("again")))
    provider = OpenAIProvider(api_key=KEY, base_url=f"{stub.url}/v1")

    async def once(close: bool) -> str:
        content = (await provider.chat(ask())).content
        if close:
            await provider.aclose()
        return content

    # The first loop ends with the client still open, as a script's asyncio.run would.
    assert [asyncio.run(once(False)), asyncio.run(once(True))] == ["again", "again"]
    assert json.loads(stub.requests[1].body)["model"] == "gpt-4o-mini"
    gc.collect()
