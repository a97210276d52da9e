"""The Azure OpenAI adapter: deployment URLs, api-key header, api-version, Azure errors."""

from __future__ import annotations

import logging

import pytest

from chainweave.errors import (
    AuthenticationError,
    ConfigurationError,
    ContentFilteredError,
    ModelNotFoundError,
    RateLimitError,
)
from chainweave.providers.azure import DEFAULT_AZURE_API_VERSION, AzureOpenAIProvider
from chainweave.types import ChatRequest, EmbeddingRequest, Message
from tests.providers.openai_wire import completion, sse_reply, text_stream
from tests.stubserver import Reply, StubServer

AZURE_KEY = "0123456789abcdef0123456789abcdef"


def make(stub: StubServer, **kwargs: object) -> AzureOpenAIProvider:
    """An adapter pointed at the stub server as if it were a resource endpoint."""
    options: dict[str, object] = {"api_key": AZURE_KEY, "base_url": stub.url}
    options.update(kwargs)
    return AzureOpenAIProvider(**options)  # type: ignore[arg-type]


def ask(model: str = "gpt-4o") -> ChatRequest:
    """A one-message request."""
    return ChatRequest(model=model, messages=[Message.user("hi")])


async def test_chat_uses_deployment_url_key_header_and_version(stub: StubServer) -> None:
    """Calls go to the deployment path with api-key and api-version, without model in body."""
    stub.route("POST", "/openai/deployments/gpt-4o/chat/completions",
               Reply(json=completion(model="gpt-4o")))
    async with make(stub, api_version="2024-06-01") as provider:
        resp = await provider.chat(ask())
    sent = stub.requests[0]
    assert sent.headers["api-key"] == AZURE_KEY
    assert "authorization" not in sent.headers
    assert sent.query == {"api-version": "2024-06-01"}
    assert "model" not in sent.json
    assert resp.provider == "azure"
    assert resp.content == "Paris."


async def test_default_api_version(stub: StubServer) -> None:
    """Without an api_version the documented default is sent."""
    stub.route("POST", "/openai/deployments/gpt-4o/chat/completions", Reply(json=completion()))
    async with make(stub) as provider:
        await provider.chat(ask())
    assert stub.requests[0].query["api-version"] == DEFAULT_AZURE_API_VERSION


async def test_deployment_map_renames_models(stub: StubServer) -> None:
    """A model mapped to a deployment name is called by that deployment."""
    stub.route("POST", "/openai/deployments/prod-4o-mini/chat/completions",
               Reply(json=completion()))
    async with make(stub, deployments={"gpt-4o-mini": "prod-4o-mini"}) as provider:
        await provider.chat(ask("gpt-4o-mini"))
    assert stub.requests[0].path == "/openai/deployments/prod-4o-mini/chat/completions"


async def test_entra_token_is_sent_as_bearer(stub: StubServer) -> None:
    """An Entra ID token replaces the api-key header."""
    stub.route("POST", "/openai/deployments/gpt-4o/chat/completions", Reply(json=completion()))
    token = "eyJ0eXAiOiJKV1QiLCJhbGciOi.fake.token"
    async with AzureOpenAIProvider(azure_ad_token=token, base_url=stub.url) as provider:
        await provider.chat(ask())
    assert stub.requests[0].headers["authorization"] == f"Bearer {token}"
    assert "api-key" not in stub.requests[0].headers


async def test_streaming_through_deployment(stub: StubServer) -> None:
    """Streams use the same deployment URL and end with usage."""
    stub.route("POST", "/openai/deployments/gpt-4o/chat/completions",
               sse_reply(text_stream("Hel", "lo")))
    async with make(stub) as provider:
        chunks = [c async for c in provider.stream(ask())]
    assert "".join(c.delta for c in chunks) == "Hello"
    assert chunks[-1].usage is not None


async def test_embeddings_use_deployment_url(stub: StubServer) -> None:
    """Embeddings go to the deployment's embeddings path."""
    stub.route("POST", "/openai/deployments/embed-small/embeddings", Reply(json={
        "data": [{"index": 0, "embedding": [0.5]}], "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 1, "total_tokens": 1}}))
    async with make(stub) as provider:
        resp = await provider.embed(EmbeddingRequest(model="embed-small", input="x"))
    assert resp.embeddings == [[0.5]]
    assert "model" not in stub.requests[0].json


async def test_content_filter_error_is_typed(stub: StubServer) -> None:
    """Azure's content_filter 400 raises ContentFilteredError."""
    stub.route("POST", "/openai/deployments/gpt-4o/chat/completions", Reply(400, json={
        "error": {"message": "The response was filtered", "type": None, "param": "prompt",
                  "code": "content_filter", "status": 400,
                  "innererror": {"code": "ResponsibleAIPolicyViolation"}}}))
    async with make(stub) as provider:
        with pytest.raises(ContentFilteredError) as info:
            await provider.chat(ask())
    assert info.value.status_code == 400


async def test_missing_deployment_is_model_not_found(stub: StubServer) -> None:
    """Azure's DeploymentNotFound raises ModelNotFoundError."""
    stub.route("POST", "/openai/deployments/nope/chat/completions", Reply(404, json={
        "error": {"code": "DeploymentNotFound", "message": "The API deployment does not exist"}}))
    async with make(stub) as provider:
        with pytest.raises(ModelNotFoundError):
            await provider.chat(ask("nope"))


async def test_rate_limit_retry_after(stub: StubServer) -> None:
    """Azure's 429 carries Retry-After."""
    stub.route("POST", "/openai/deployments/gpt-4o/chat/completions", Reply(429, json={
        "error": {"code": "429", "message": "Requests have exceeded the rate limit"}},
        headers={"retry-after": "4"}))
    async with make(stub) as provider:
        with pytest.raises(RateLimitError) as info:
            await provider.chat(ask())
    assert info.value.retry_after == 4.0


async def test_list_models_uses_versioned_models_path(stub: StubServer) -> None:
    """Health and model listing call ``/openai/models`` with the api-version."""
    stub.route("GET", "/openai/models", Reply(json={"data": [{"id": "gpt-4o"}]}))
    async with make(stub) as provider:
        health = await provider.health()
    assert health.healthy
    assert stub.requests[0].query == {"api-version": DEFAULT_AZURE_API_VERSION}


def test_needs_a_key_or_token() -> None:
    """Without a key or a token the adapter refuses to build, naming AZURE_API_KEY."""
    with pytest.raises(ConfigurationError, match="AZURE_API_KEY"):
        AzureOpenAIProvider(base_url="https://res.openai.azure.com")


async def test_azure_key_never_logged_or_shown(stub: StubServer,
                                              caplog: pytest.LogCaptureFixture) -> None:
    """The Azure key (not sk- shaped) is redacted because it was registered."""
    stub.route("POST", "/openai/deployments/gpt-4o/chat/completions", Reply(401, json={
        "error": {"code": "401", "message": f"Access denied due to invalid key {AZURE_KEY}"}}))
    caplog.set_level(logging.DEBUG)
    async with make(stub) as provider:
        with pytest.raises(AuthenticationError) as info:
            await provider.chat(ask())
        texts = [str(info.value), repr(info.value), repr(provider), caplog.text]
    assert all(AZURE_KEY not in t for t in texts)
    assert "Access denied" in texts[0]


async def test_cost_uses_the_model_behind_the_deployment(stub: StubServer) -> None:
    """A deployment named anything is priced by the model the response reports."""
    stub.route("POST", "/openai/deployments/prod-chat/chat/completions",
               Reply(json=completion(model="gpt-4o-mini")))
    async with make(stub) as provider:
        resp = await provider.chat(ask("prod-chat"))
    assert resp.usage.cost_usd is not None
    assert resp.usage.cost_usd > 0
