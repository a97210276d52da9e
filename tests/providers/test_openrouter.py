"""The OpenRouter adapter: its base URL, app headers, vendor model names and errors."""

from __future__ import annotations

import pytest

from chainweave.errors import ProviderUnavailableError, QuotaExceededError, RateLimitError
from chainweave.providers.openrouter import OpenRouterProvider
from chainweave.types import ChatRequest, Message
from tests.providers.openai_wire import KEY, completion, sse_reply, text_stream
from tests.stubserver import Reply, StubServer

PATH = "/api/v1/chat/completions"


def make(stub: StubServer, **kwargs: object) -> OpenRouterProvider:
    """An adapter pointed at the stub server's OpenRouter-like root."""
    return OpenRouterProvider(api_key=KEY, base_url=f"{stub.url}/api/v1", **kwargs)  # type: ignore[arg-type]


def ask(model: str = "anthropic/claude-3.5-sonnet") -> ChatRequest:
    """A one-message request for a vendor-prefixed model."""
    return ChatRequest(model=model, messages=[Message.user("Hello, how are you?")])


def test_default_base_url_is_openrouter() -> None:
    """Without a base URL the adapter targets OpenRouter's API root."""
    assert OpenRouterProvider(api_key=KEY).base_url == "https://openrouter.ai/api/v1"


async def test_sends_app_headers_and_vendor_model_name(stub: StubServer) -> None:
    """HTTP-Referer and X-Title go with the bearer key; the model name is kept whole."""
    stub.route("POST", PATH, Reply(json=completion(model="anthropic/claude-3.5-sonnet")))
    async with make(stub, referer="http://localhost:5173", x_title="AI-HR") as provider:
        resp = await provider.chat(ask())
    sent = stub.requests[0]
    assert sent.headers["http-referer"] == "http://localhost:5173"
    assert sent.headers["x-title"] == "AI-HR"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json["model"] == "anthropic/claude-3.5-sonnet"
    assert resp.provider == "openrouter"


async def test_vendor_prefixed_model_is_priced(stub: StubServer) -> None:
    """``openai/gpt-4o-mini`` is priced like ``gpt-4o-mini`` when no cost is reported."""
    stub.route("POST", PATH, Reply(json=completion(model="openai/gpt-4o-mini")))
    async with make(stub) as provider:
        resp = await provider.chat(ask("openai/gpt-4o-mini"))
    assert resp.usage.cost_usd == pytest.approx((12 * 0.15 + 3 * 0.60) / 1e6)


async def test_top_k_is_sent(stub: StubServer) -> None:
    """OpenRouter accepts top_k, so it is forwarded."""
    stub.route("POST", PATH, Reply(json=completion()))
    async with make(stub) as provider:
        await provider.chat(ask().model_copy(update={"top_k": 40}))
    assert stub.requests[0].json["top_k"] == 40


async def test_streams_through_processing_comments(stub: StubServer) -> None:
    """OpenRouter's keep-alive comments do not disturb the stream."""
    stub.route("POST", PATH, sse_reply([": OPENROUTER PROCESSING\n\n",
                                        ": OPENROUTER PROCESSING\n\n", *text_stream("Hi", "!")]))
    async with make(stub) as provider:
        chunks = [c async for c in provider.stream(ask())]
    assert "".join(c.delta for c in chunks) == "Hi!"
    assert chunks[-1].finish_reason == "stop"


async def test_credit_exhaustion_is_quota_exceeded(stub: StubServer) -> None:
    """OpenRouter's 402 with a numeric code is a non-retryable quota error."""
    stub.route("POST", PATH, Reply(402, json={"error": {
        "code": 402, "message": "Insufficient credits", "metadata": {}}}))
    async with make(stub) as provider:
        with pytest.raises(QuotaExceededError) as info:
            await provider.chat(ask())
    assert not info.value.retryable
    assert info.value.status_code == 402


async def test_rate_limit_with_retry_after(stub: StubServer) -> None:
    """A 429 from OpenRouter carries its Retry-After."""
    stub.route("POST", PATH, Reply(429, json={"error": {"code": 429, "message": "Rate limited"}},
                                   headers={"retry-after": "12"}))
    async with make(stub) as provider:
        with pytest.raises(RateLimitError) as info:
            await provider.chat(ask())
    assert info.value.retry_after == 12.0


async def test_upstream_error_in_stream_chunk(stub: StubServer) -> None:
    """An upstream failure reported inside the stream raises the mapped error."""
    stub.route("POST", PATH, sse_reply([
        'data: {"error": {"code": 503, "message": "Provider returned error"}}\n\n']))
    async with make(stub) as provider:
        with pytest.raises(ProviderUnavailableError, match="Provider returned error"):
            _ = [c async for c in provider.stream(ask())]
