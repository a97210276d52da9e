"""The OpenAI adapter against a real local server speaking OpenAI's wire format."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from chainweave.errors import (
    AuthenticationError,
    ContentFilteredError,
    InvalidRequestError,
    MalformedResponseError,
    ModelNotFoundError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    QuotaExceededError,
    RateLimitError,
    RequestTooLargeError,
)
from chainweave.providers.openai import OpenAICompatibleProvider, OpenAIProvider
from chainweave.types import (
    ChatRequest,
    EmbeddingRequest,
    Message,
    StreamChunk,
    Tool,
    ToolCall,
)
from tests.providers.openai_wire import (
    KEY,
    completion,
    error_reply,
)
from tests.stubserver import Reply, StubServer

PATH = "/v1/chat/completions"


def make(stub: StubServer, **kwargs: object) -> OpenAIProvider:
    """An adapter pointed at the stub server."""
    options: dict[str, object] = {"api_key": KEY, "base_url": f"{stub.url}/v1"}
    options.update(kwargs)
    return OpenAIProvider(**options)  # type: ignore[arg-type]


def ask(content: str = "Capital of France?", **params: object) -> ChatRequest:
    """A one-message request for gpt-4o-mini."""
    return ChatRequest(model="gpt-4o-mini", messages=[Message.user(content)], **params)  # type: ignore[arg-type]


async def collect(provider: OpenAIProvider, request: ChatRequest) -> list[StreamChunk]:
    """Every chunk of a stream."""
    return [c async for c in provider.stream(request)]


# --- chat -------------------------------------------------------------------------------


async def test_chat_returns_content_usage_and_cost(stub: StubServer) -> None:
    """A completion's text, finish reason, usage and priced cost come back typed."""
    stub.route("POST", PATH, Reply(json=completion("Paris.")))
    async with make(stub) as provider:
        resp = await provider.chat(ask())
    assert resp.content == "Paris."
    assert resp.finish_reason == "stop"
    assert resp.provider == "openai"
    assert resp.model == "gpt-4o-mini"
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens, resp.usage.total_tokens) == (
        12, 3, 15)
    assert resp.usage.cost_usd == pytest.approx((12 * 0.15 + 3 * 0.60) / 1e6)
    assert resp.latency_ms > 0


async def test_chat_sends_bearer_key_and_request_fields(stub: StubServer) -> None:
    """Every set request field reaches the wire under OpenAI's name."""
    stub.route("POST", PATH, Reply(json=completion()))
    request = ask(temperature=0.2, max_tokens=50, top_p=0.9, stop="END", seed=7,
                  frequency_penalty=0.5, presence_penalty=-0.5, user="u1",
                  response_format={"type": "json_object"}, extra_body={"logprobs": True})
    async with make(stub, organization="org-1", project="proj-1") as provider:
        await provider.chat(request)
    sent = stub.requests[0]
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["openai-organization"] == "org-1"
    assert sent.headers["openai-project"] == "proj-1"
    assert sent.json == {
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Capital of France?"}],
        "temperature": 0.2, "max_completion_tokens": 50, "top_p": 0.9, "frequency_penalty": 0.5,
        "presence_penalty": -0.5, "seed": 7, "user": "u1", "stop": ["END"],
        "response_format": {"type": "json_object"}, "logprobs": True,
    }


async def test_top_k_is_dropped_for_openai_and_sent_for_compatible(stub: StubServer) -> None:
    """OpenAI rejects top_k, so it is left out there and sent to compatible servers."""
    stub.route("POST", PATH, Reply(json=completion()))
    async with make(stub) as openai:
        await openai.chat(ask(top_k=5))
    async with OpenAICompatibleProvider(base_url=f"{stub.url}/v1") as compatible:
        await compatible.chat(ask(top_k=5))
    assert "top_k" not in stub.requests[0].json
    assert stub.requests[1].json["top_k"] == 5
    assert "authorization" not in stub.requests[1].headers


async def test_json_schema_response_format_is_sent_with_schema_key(stub: StubServer) -> None:
    """A json_schema response format goes out in OpenAI's nested shape."""
    stub.route("POST", PATH, Reply(json=completion('{"city": "Paris"}')))
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    request = ask(response_format={"type": "json_schema",
                                   "json_schema": {"name": "answer", "schema": schema,
                                                   "strict": True}})
    async with make(stub) as provider:
        resp = await provider.chat(request)
    assert stub.requests[0].json["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}
    assert json.loads(resp.content) == {"city": "Paris"}


async def test_tools_and_tool_calls_round_trip(stub: StubServer) -> None:
    """Tools go out in OpenAI's shape and the model's tool calls come back whole."""
    call = {"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
    stub.route("POST", PATH, Reply(json=completion(None, finish="tool_calls", tool_calls=[call])))
    tool = Tool(name="get_weather", description="Weather",
                parameters={"type": "object", "properties": {"city": {"type": "string"}}})
    history = [
        Message.user("Weather?"),
        Message.assistant(tool_calls=[ToolCall(id="call_0", name="get_weather",
                                               arguments='{"city":"Rome"}')]),
        Message.tool("call_0", "sunny"),
    ]
    request = ChatRequest(model="gpt-4o-mini", messages=history, tools=[tool],
                          tool_choice={"type": "function", "function": {"name": "get_weather"}})
    async with make(stub) as provider:
        resp = await provider.chat(request)
    assert resp.finish_reason == "tool_calls"
    assert resp.tool_calls == [ToolCall(id="call_1", name="get_weather",
                                        arguments='{"city":"Paris"}')]
    sent = stub.requests[0].json
    assert sent["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather", "parameters": tool.parameters}}]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["messages"][1] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_0", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}}]}
    assert sent["messages"][2] == {"role": "tool", "content": "sunny", "tool_call_id": "call_0"}


async def test_legacy_function_call_reply_becomes_tool_call(stub: StubServer) -> None:
    """An old-style ``function_call`` reply is normalised to a tool call."""
    body = completion(None, finish="function_call")
    body["choices"][0]["message"]["function_call"] = {"name": "lookup", "arguments": "{}"}
    stub.route("POST", PATH, Reply(json=body))
    async with make(stub) as provider:
        resp = await provider.chat(ask())
    assert resp.finish_reason == "tool_calls"
    assert resp.tool_calls[0].name == "lookup"


async def test_image_parts_are_sent_as_content_parts(stub: StubServer) -> None:
    """Multi-part content keeps OpenAI's text and image_url parts."""
    stub.route("POST", PATH, Reply(json=completion()))
    message = Message(role="user", content=[
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.test/a.png", "detail": "low"}},
    ])
    async with make(stub) as provider:
        await provider.chat(ChatRequest(model="gpt-4o", messages=[message]))
    assert stub.requests[0].json["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.test/a.png", "detail": "low"}},
    ]


async def test_default_model_is_used_when_request_names_none(stub: StubServer) -> None:
    """A request without a model goes out with the adapter's default model."""
    stub.route("POST", PATH, Reply(json=completion()))
    async with make(stub, default_model="gpt-4o-mini") as provider:
        await provider.chat(ChatRequest(messages=[Message.user("hi")]))
    assert stub.requests[0].json["model"] == "gpt-4o-mini"


async def test_no_model_anywhere_is_a_clear_error(stub: StubServer) -> None:
    """Without a request model or a default, nothing is sent and the error says why."""
    async with make(stub) as provider:
        with pytest.raises(InvalidRequestError, match="no model") as info:
            await provider.chat(ChatRequest(messages=[Message.user("hi")]))
    assert info.value.field == "model"
    assert stub.requests == []


async def test_length_and_content_filter_finish_reasons(stub: StubServer) -> None:
    """OpenAI's finish reasons map onto the normalised vocabulary."""
    stub.route("POST", PATH, Reply(json=completion("cut", finish="length")),
               Reply(json=completion("", finish="content_filter")))
    async with make(stub) as provider:
        first = await provider.chat(ask())
        second = await provider.chat(ask())
    assert (first.finish_reason, second.finish_reason) == ("length", "content_filter")


async def test_reported_cost_wins_over_price_table(stub: StubServer) -> None:
    """A cost the server reports in usage (as OpenRouter does) is used as is."""
    stub.route("POST", PATH, Reply(json=completion(usage={
        "prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12, "cost": 0.0042})))
    async with make(stub) as provider:
        resp = await provider.chat(ask())
    assert resp.usage.cost_usd == pytest.approx(0.0042)


async def test_unknown_model_has_no_cost(stub: StubServer) -> None:
    """Without a known price the cost stays unknown rather than zero."""
    stub.route("POST", PATH, Reply(json=completion(model="my-local-llama")))
    async with make(stub) as provider:
        resp = await provider.chat(ask().model_copy(update={"model": "my-local-llama"}))
    assert resp.usage.cost_usd is None
    assert resp.usage.total_tokens == 15


# --- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "cls", "retryable"),
    [
        (error_reply(400, "bad param"), InvalidRequestError, False),
        (error_reply(401, "Incorrect API key provided: sk-test-abc...", code="invalid_api_key"),
         AuthenticationError, False),
        (error_reply(403, "forbidden"), AuthenticationError, False),
        (error_reply(404, "The model `gpt-9` does not exist", code="model_not_found"),
         ModelNotFoundError, False),
        (error_reply(408, "timeout"), ProviderTimeoutError, True),
        (error_reply(413, "too large"), RequestTooLargeError, False),
        (error_reply(429, "quota", type_="insufficient_quota", code="insufficient_quota"),
         QuotaExceededError, False),
        (error_reply(400, "filtered", code="content_filter"), ContentFilteredError, False),
        (error_reply(500, "server error", type_="server_error"), ProviderUnavailableError, True),
        (error_reply(503, "overloaded"), ProviderUnavailableError, True),
        (Reply(502, body=b"<html>Bad gateway</html>"), ProviderUnavailableError, True),
    ],
)
async def test_error_statuses_map_to_typed_errors(
    stub: StubServer, reply: Reply, cls: type[ProviderError], retryable: bool
) -> None:
    """Each vendor error status and code raises its class with context."""
    stub.route("POST", PATH, reply)
    async with make(stub) as provider:
        with pytest.raises(cls) as info:
            await provider.chat(ask())
    err = info.value
    assert type(err) is cls
    assert err.retryable is retryable
    assert err.status_code == reply.status
    assert (err.provider, err.model) == ("openai", "gpt-4o-mini")


async def test_rate_limit_reads_retry_after_seconds(stub: StubServer) -> None:
    """A 429 carries Retry-After seconds as retry_after."""
    stub.route("POST", PATH, error_reply(429, "Rate limit reached", type_="requests",
                                         code="rate_limit_exceeded",
                                         headers={"retry-after": "7"}))
    async with make(stub) as provider:
        with pytest.raises(RateLimitError) as info:
            await provider.chat(ask())
    assert info.value.retry_after == 7.0
    assert info.value.retryable


async def test_rate_limit_reads_retry_after_http_date(stub: StubServer) -> None:
    """A 429 with an HTTP-date Retry-After becomes seconds from now."""
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    stub.route("POST", PATH, error_reply(429, "later", headers={"retry-after": when}))
    async with make(stub) as provider:
        with pytest.raises(RateLimitError) as info:
            await provider.chat(ask())
    assert info.value.retry_after is not None
    assert 25 <= info.value.retry_after <= 31


async def test_rate_limit_reads_openai_reset_headers(stub: StubServer) -> None:
    """Without Retry-After, the exhausted limit's reset duration is used."""
    stub.route("POST", PATH, error_reply(429, "tokens", headers={
        "x-ratelimit-remaining-requests": "10", "x-ratelimit-reset-requests": "1s",
        "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6m0s"}))
    async with make(stub) as provider:
        with pytest.raises(RateLimitError) as info:
            await provider.chat(ask())
    assert info.value.retry_after == 360.0


async def test_malformed_json_body_is_its_own_error(stub: StubServer) -> None:
    """A 200 whose body is not JSON raises MalformedResponseError."""
    stub.route("POST", PATH, Reply(body=b"<html>proxy page</html>",
                                   headers={"content-type": "text/html"}))
    async with make(stub) as provider:
        with pytest.raises(MalformedResponseError, match="not JSON"):
            await provider.chat(ask())


async def test_completion_missing_choices_is_malformed(stub: StubServer) -> None:
    """A JSON body without choices raises MalformedResponseError."""
    stub.route("POST", PATH, Reply(json={"id": "x", "object": "chat.completion"}))
    async with make(stub) as provider:
        with pytest.raises(MalformedResponseError):
            await provider.chat(ask())


async def test_error_in_a_200_body_is_raised(stub: StubServer) -> None:
    """An error object in a 200 body (as OpenRouter sends) raises by its code."""
    stub.route("POST", PATH, Reply(json={"error": {"message": "No credits", "code": 402}}))
    async with make(stub) as provider:
        with pytest.raises(QuotaExceededError, match="No credits"):
            await provider.chat(ask())


async def test_connection_reset_is_a_connection_error(stub: StubServer) -> None:
    """A reset connection raises ProviderConnectionError, which is retryable."""
    stub.route("POST", PATH, Reply(reset=True))
    async with make(stub) as provider:
        with pytest.raises(ProviderConnectionError) as info:
            await provider.chat(ask())
    assert info.value.retryable


async def test_refused_connection_is_a_connection_error() -> None:
    """Nothing listening on the port raises ProviderConnectionError."""
    async with OpenAIProvider(api_key=KEY, base_url="http://127.0.0.1:9/v1") as provider:
        with pytest.raises(ProviderConnectionError):
            await provider.chat(ask())


async def test_stream_refused_before_response_is_a_connection_error(stub: StubServer) -> None:
    """A stream whose connection resets before any response is a connection error."""
    stub.route("POST", PATH, Reply(reset=True))
    async with make(stub) as provider:
        with pytest.raises(ProviderConnectionError):
            await collect(provider, ask())


async def test_slow_server_times_out(stub: StubServer) -> None:
    """A server slower than the timeout raises ProviderTimeoutError."""
    stub.route("POST", PATH, Reply(json=completion(), delay=0.5))
    async with make(stub, timeout=0.05) as provider:
        with pytest.raises(ProviderTimeoutError):
            await provider.chat(ask())


async def test_request_timeout_overrides_the_adapter_timeout(stub: StubServer) -> None:
    """A request's own timeout applies to that call."""
    stub.route("POST", PATH, Reply(json=completion(), delay=0.5))
    async with make(stub, timeout=30) as provider:
        with pytest.raises(ProviderTimeoutError):
            await provider.chat(ask(timeout=0.05))


# --- secrets ----------------------------------------------------------------------------


async def test_key_never_leaks_into_errors_reprs_or_logs(
    stub: StubServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The API key appears in no exception, repr or log line, even when echoed back."""
    stub.route("POST", PATH, error_reply(401, f"Incorrect API key provided: {KEY}",
                                         code="invalid_api_key"))
    caplog.set_level(logging.DEBUG)
    async with make(stub) as provider:
        with pytest.raises(AuthenticationError) as info:
            await provider.chat(ask())
        rendered = [str(info.value), repr(info.value), json.dumps(info.value.to_dict()),
                    repr(provider), caplog.text]
    for text in rendered:
        assert KEY not in text
    assert "Incorrect API key provided" in str(info.value)


# --- embeddings, models, health, clients ---------------------------------------------------


async def test_embeddings_come_back_in_input_order(stub: StubServer) -> None:
    """Vectors are ordered by index whatever order the server sends."""
    stub.route("POST", "/v1/embeddings", Reply(json={
        "object": "list", "model": "text-embedding-3-small",
        "data": [{"object": "embedding", "index": 1, "embedding": [0.0, 1.0]},
                 {"object": "embedding", "index": 0, "embedding": [1.0, 0.0]}],
        "usage": {"prompt_tokens": 4, "total_tokens": 4}}))
    async with make(stub) as provider:
        resp = await provider.embed(EmbeddingRequest(model="text-embedding-3-small",
                                                     input=["a", "b"], dimensions=2))
    assert resp.embeddings == [[1.0, 0.0], [0.0, 1.0]]
    assert resp.usage.prompt_tokens == 4
    assert stub.requests[0].json == {"model": "text-embedding-3-small", "input": ["a", "b"],
                                     "encoding_format": "float", "dimensions": 2}


async def test_list_models_and_health(stub: StubServer) -> None:
    """``/models`` lists models and a healthy server reports healthy."""
    stub.route("GET", "/v1/models", Reply(json={"object": "list", "data": [
        {"id": "gpt-4o-mini", "object": "model", "created": 1, "owned_by": "openai"}]}))
    async with make(stub) as provider:
        models = await provider.list_models()
        health = await provider.health()
    assert [m.id for m in models] == ["gpt-4o-mini"]
    assert models[0].owned_by == "openai"
    assert health.healthy
    assert health.error is None


async def test_health_reports_unhealthy_without_raising(stub: StubServer) -> None:
    """A failing server gives an unhealthy status with the error type."""
    stub.route("GET", "/v1/models", error_reply(401, "bad key", code="invalid_api_key"))
    async with make(stub) as provider:
        health = await provider.health()
    assert not health.healthy
    assert health.error_type == "authentication_error"


async def test_injected_client_is_shared_and_left_open(stub: StubServer) -> None:
    """An injected client serves several adapters and is not closed by them."""
    stub.route("POST", PATH, Reply(json=completion()))
    async with httpx.AsyncClient() as client:
        first = make(stub, client=client)
        second = OpenAICompatibleProvider(base_url=f"{stub.url}/v1", client=client)
        await first.chat(ask())
        await second.chat(ask())
        await first.aclose()
        await second.aclose()
        assert not client.is_closed
        assert first.client is client


async def test_owned_client_is_closed_by_aclose(stub: StubServer) -> None:
    """An adapter closes the client it made itself."""
    stub.route("POST", PATH, Reply(json=completion()))
    provider = make(stub)
    await provider.chat(ask())
    client = provider.client
    await provider.aclose()
    assert client.is_closed


def test_compatible_provider_requires_base_url() -> None:
    """An OpenAI-compatible adapter without a base URL is refused at construction."""
    with pytest.raises(InvalidRequestError, match="base_url"):
        OpenAICompatibleProvider()


async def test_adapter_client_runs_on_the_chosen_transport(
    stub: StubServer, http_transport: str
) -> None:
    """The adapter's own client uses the transport this test run selected."""
    stub.route("POST", PATH, Reply(json=completion()))
    async with make(stub) as provider:
        await provider.chat(ask())
        kind = type(provider.client._transport).__name__
    assert kind == {"httpx": "AsyncHTTPTransport", "aiohttp": "AiohttpTransport"}[http_transport]


async def test_refusal_is_a_content_filter_finish_with_its_text(stub: StubServer) -> None:
    """A structured-output refusal is kept in ``refusal`` and finishes as content_filter."""
    body = completion(None)
    body["choices"][0]["message"]["refusal"] = "I can't help with that."
    stub.route("POST", PATH, Reply(json=body))
    async with make(stub) as provider:
        resp = await provider.chat(ask())
    assert resp.refusal == "I can't help with that."
    assert (resp.finish_reason, resp.raw_finish_reason) == ("content_filter", "refusal")


async def test_only_choice_zero_is_returned(stub: StubServer) -> None:
    """With several choices the response is choice 0, whatever order they arrive in."""
    body = completion("first")
    body["choices"].insert(0, {"index": 1, "finish_reason": "length",
                               "message": {"role": "assistant", "content": "second"}})
    stub.route("POST", PATH, Reply(json=body))
    async with make(stub) as provider:
        resp = await provider.chat(ask())
    assert (resp.content, resp.finish_reason) == ("first", "stop")


async def test_tool_call_without_id_gets_one(stub: StubServer) -> None:
    """A server that sends a null tool-call id does not sink the whole completion."""
    call = {"id": None, "type": "function", "function": {"name": "f", "arguments": "{}"}}
    stub.route("POST", PATH, Reply(json=completion(None, finish="tool_calls",
                                                   tool_calls=[call])))
    async with make(stub) as provider:
        resp = await provider.chat(ask())
    assert resp.tool_calls[0].id == "call_0"
    assert resp.tool_calls[0].name == "f"


async def test_max_tokens_field_per_server(stub: StubServer) -> None:
    """OpenAI gets max_completion_tokens; compatible servers get max_tokens."""
    stub.route("POST", PATH, Reply(json=completion()))
    async with make(stub) as openai:
        await openai.chat(ask(max_tokens=9))
    async with OpenAICompatibleProvider(base_url=f"{stub.url}/v1") as compatible:
        await compatible.chat(ask(max_tokens=9))
    assert stub.requests[0].json["max_completion_tokens"] == 9
    assert "max_tokens" not in stub.requests[0].json
    assert stub.requests[1].json["max_tokens"] == 9


async def test_embedding_request_timeout_applies(stub: StubServer) -> None:
    """An embedding request's own timeout bounds that call."""
    stub.route("POST", "/v1/embeddings", Reply(json={"data": []}, delay=0.5))
    async with make(stub, timeout=30) as provider:
        with pytest.raises(ProviderTimeoutError):
            await provider.embed(EmbeddingRequest(model="text-embedding-3-small", input="x",
                                                  timeout=0.05))
