"""The Anthropic Messages adapter, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from chainweave import errors
from chainweave.providers.anthropic import JSON_OBJECT_INSTRUCTION, AnthropicProvider
from chainweave.types import ChatRequest, Message, ToolCall
from tests.providers.anthropic_wire import (
    JSON_SCHEMA,
    KEY,
    MESSAGES,
    MODEL,
    SCHEMA,
    WEATHER,
    ask,
    error_body,
    message,
)
from tests.stubserver import Reply, StubServer


async def sent_body(provider: AnthropicProvider, stub: StubServer,
                    request: ChatRequest) -> dict[str, Any]:
    """Send ``request`` and return the JSON body the server received."""
    stub.route("POST", MESSAGES, Reply(json=message()))
    await provider.chat(request)
    body: dict[str, Any] = stub.requests[-1].json
    return body


# --- headers and request body ----------------------------------------------------------


async def test_sends_key_and_version_headers(provider: AnthropicProvider,
                                            stub: StubServer) -> None:
    """Every call carries x-api-key, anthropic-version and a JSON content type."""
    await sent_body(provider, stub, ask())
    headers = stub.requests[-1].headers
    assert headers["x-api-key"] == KEY
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["content-type"] == "application/json"
    assert "anthropic-beta" not in headers


async def test_sends_beta_header_comma_joined(stub: StubServer) -> None:
    """Beta names are sent comma-joined in anthropic-beta."""
    async with AnthropicProvider(api_key=KEY, base_url=stub.url, default_model=MODEL,
                                 beta=["prompt-caching-2024-07-31", "pdfs-2024-09-25"]) as p:
        await sent_body(p, stub, ask())
    assert stub.requests[-1].headers["anthropic-beta"] == (
        "prompt-caching-2024-07-31,pdfs-2024-09-25")


async def test_base_url_ending_in_v1_is_accepted(stub: StubServer) -> None:
    """A base URL that already ends in /v1 does not get a second /v1."""
    async with AnthropicProvider(api_key=KEY, base_url=f"{stub.url}/v1/",
                                 default_model=MODEL) as p:
        await sent_body(p, stub, ask())
    assert stub.requests[-1].path == MESSAGES


async def test_system_messages_become_top_level_system(provider: AnthropicProvider,
                                                       stub: StubServer) -> None:
    """System messages are joined with blank lines into the system field."""
    request = ChatRequest(messages=[Message.system("Be terse."), Message.system("Use SI."),
                                    Message.user("hi")])
    body = await sent_body(provider, stub, request)
    assert body["system"] == "Be terse.\n\nUse SI."
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]


@pytest.mark.parametrize(("asked", "sent"), [(None, 4096), (77, 77)])
async def test_max_tokens_defaults_when_request_sets_none(
        provider: AnthropicProvider, stub: StubServer, asked: int | None, sent: int) -> None:
    """Anthropic requires max_tokens: the request's value, else the adapter's default."""
    assert (await sent_body(provider, stub, ask(max_tokens=asked)))["max_tokens"] == sent


def test_non_positive_default_max_tokens_is_a_configuration_error() -> None:
    """default_max_tokens below 1 is refused when the adapter is built."""
    with pytest.raises(errors.ConfigurationError, match="default_max_tokens"):
        AnthropicProvider(api_key=KEY, default_max_tokens=0)


async def test_sampling_parameters_and_stop_sequences(provider: AnthropicProvider,
                                                      stub: StubServer) -> None:
    """temperature, top_p, top_k pass through; stop becomes stop_sequences."""
    request = ask(temperature=0.3, top_p=0.9, top_k=40, stop=["END", "###"])
    body = await sent_body(provider, stub, request)
    assert (body["temperature"], body["top_p"], body["top_k"]) == (0.3, 0.9, 40)
    assert body["stop_sequences"] == ["END", "###"]
    assert "stream" not in body


@pytest.mark.parametrize("temperature", [1.01, 1.5, 2.0])
async def test_temperature_above_one_is_invalid_request_before_sending(
        provider: AnthropicProvider, stub: StubServer, temperature: float) -> None:
    """Anthropic takes temperature 0..1: above 1 is refused locally, nothing is sent."""
    stub.route("POST", MESSAGES, Reply(json=message()))
    with pytest.raises(errors.InvalidRequestError) as info:
        await provider.chat(ask(temperature=temperature))
    assert (info.value.field, info.value.provider, info.value.model) == (
        "temperature", "anthropic", MODEL)
    assert not info.value.retryable
    assert stub.requests == []


@pytest.mark.parametrize("temperature", [0.0, 1.0])
async def test_temperature_at_anthropic_bounds_is_sent(
        provider: AnthropicProvider, stub: StubServer, temperature: float) -> None:
    """0 and 1, the ends of Anthropic's range, are sent as they are."""
    assert (await sent_body(provider, stub, ask(temperature=temperature)))["temperature"] == (
        temperature)


async def test_penalties_and_seed_are_dropped_and_logged(
        provider: AnthropicProvider, stub: StubServer, caplog: pytest.LogCaptureFixture) -> None:
    """Unsupported penalties and seed are left out and logged at debug, not refused."""
    caplog.set_level(logging.DEBUG, logger="chainweave.providers.anthropic")
    body = await sent_body(provider, stub, ask(frequency_penalty=0.5, presence_penalty=0.1,
                                               seed=42))
    assert not {"frequency_penalty", "presence_penalty", "seed"} & body.keys()
    assert "frequency_penalty, presence_penalty, seed" in caplog.text


async def test_user_becomes_metadata_user_id(provider: AnthropicProvider,
                                             stub: StubServer) -> None:
    """The request's user is sent as metadata.user_id."""
    body = await sent_body(provider, stub, ask(user="u-123"))
    assert body["metadata"] == {"user_id": "u-123"}


async def test_extra_body_is_merged_last(provider: AnthropicProvider, stub: StubServer) -> None:
    """extra_body adds vendor fields and overrides mapped ones."""
    request = ask(max_tokens=10, extra_body={"max_tokens": 20, "thinking": {"type": "enabled"}})
    body = await sent_body(provider, stub, request)
    assert body["max_tokens"] == 20
    assert body["thinking"] == {"type": "enabled"}


@pytest.mark.parametrize(("choice", "wire"), [
    ("auto", {"type": "auto"}),
    ("none", {"type": "none"}),
    ("required", {"type": "any"}),
    ({"type": "tool", "name": "get_weather"}, {"type": "tool", "name": "get_weather"}),
])
async def test_tools_and_tool_choice_are_mapped(provider: AnthropicProvider, stub: StubServer,
                                                choice: Any, wire: dict[str, str]) -> None:
    """Tools become name/description/input_schema; tool_choice takes Anthropic's shape."""
    body = await sent_body(provider, stub, ask(tools=[WEATHER], tool_choice=choice))
    assert body["tools"] == [{"name": "get_weather", "description": "Weather for a city",
                              "input_schema": WEATHER.parameters}]
    assert body["tool_choice"] == wire


async def test_tool_use_and_tool_result_round_trip(provider: AnthropicProvider,
                                                   stub: StubServer) -> None:
    """A tool_use reply, sent back with its result, becomes tool_use and tool_result blocks."""
    use = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}
    stub.route("POST", MESSAGES, Reply(json=message(use, stop_reason="tool_use")))
    first = await provider.chat(ask("weather?", tools=[WEATHER]))
    history = [Message.user("weather?"), first.message, Message.tool("toolu_1", "-3C")]
    await provider.chat(ChatRequest(messages=history, tools=[WEATHER]))
    sent = stub.requests[-1].json["messages"]
    assert sent[1] == {"role": "assistant", "content": [use]}
    assert sent[2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "-3C"}]}


async def test_consecutive_tool_results_merge_into_one_user_message(
        provider: AnthropicProvider, stub: StubServer) -> None:
    """Two tool results in a row are sent as one user turn with two tool_result blocks."""
    calls = [ToolCall(id="t1", name="get_weather", arguments='{"city":"A"}'),
             ToolCall(id="t2", name="get_weather", arguments='{"city":"B"}')]
    history = [Message.user("both?"), Message.assistant("Checking.", calls),
               Message.tool("t1", "1C"), Message.tool("t2", "2C")]
    body = await sent_body(provider, stub, ChatRequest(messages=history, tools=[WEATHER]))
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][1]["content"][0] == {"type": "text", "text": "Checking."}
    assert [b["tool_use_id"] for b in body["messages"][2]["content"]] == ["t1", "t2"]


async def test_consecutive_same_role_messages_merge(provider: AnthropicProvider,
                                                    stub: StubServer) -> None:
    """Two user messages in a row become one user turn, since turns must alternate."""
    request = ChatRequest(messages=[Message.user("one"), Message.user("two")])
    body = await sent_body(provider, stub, request)
    assert body["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "one"}, {"type": "text", "text": "two"}]}]


async def test_empty_reply_appended_to_history_is_not_sent(provider: AnthropicProvider,
                                                            stub: StubServer) -> None:
    """An empty reply's message is dropped: Anthropic rejects empty text blocks."""
    stub.route("POST", MESSAGES, Reply(json=message({"type": "text", "text": ""})))
    first = await provider.chat(ask("one"))
    history = [Message.user("one"), first.message, Message.user("two")]
    await provider.chat(ChatRequest(messages=history))
    assert stub.requests[-1].json["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "one"}, {"type": "text", "text": "two"}]}]


@pytest.mark.parametrize(("middle", "sent"), [
    (Message.assistant(""), None),
    (Message(role="assistant", content=[{"type": "text", "text": ""}]), None),
    (Message(role="assistant", content=[{"type": "text", "text": ""},
                                        {"type": "text", "text": "Sure."}]),
     [{"type": "text", "text": "Sure."}]),
    (Message.assistant("", [ToolCall(id="t1", name="get_weather", arguments="{}")]),
     [{"type": "tool_use", "id": "t1", "name": "get_weather", "input": {}}]),
], ids=["empty-string", "empty-part", "empty-part-and-text", "empty-text-with-tool-call"])
async def test_empty_text_blocks_are_dropped(provider: AnthropicProvider, stub: StubServer,
                                             middle: Message,
                                             sent: list[dict[str, Any]] | None) -> None:
    """Empty text becomes no block; a message left without blocks is not sent."""
    history = [Message.user("hi"), middle, Message.user("again")]
    body = await sent_body(provider, stub, ChatRequest(messages=history))
    turns = [(m["role"], m["content"]) for m in body["messages"]]
    if sent is None:
        assert turns == [("user", [{"type": "text", "text": "hi"},
                                   {"type": "text", "text": "again"}])]
    else:
        assert turns[1] == ("assistant", sent)
        assert len(turns) == 3


@pytest.mark.parametrize(("url", "source"), [
    ("https://example.com/cat.png", {"type": "url", "url": "https://example.com/cat.png"}),
    ("data:image/png;base64,iVBORw0KGgo=",
     {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}),
])
async def test_image_parts_become_image_blocks(provider: AnthropicProvider, stub: StubServer,
                                               url: str, source: dict[str, str]) -> None:
    """An https image is a url source; a data: URL is a base64 source with its media type."""
    parts = [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": url}]
    request = ChatRequest(messages=[Message(role="user", content=parts)])
    body = await sent_body(provider, stub, request)
    assert body["messages"][0]["content"][1] == {"type": "image", "source": source}


async def test_data_url_without_base64_is_invalid_request(provider: AnthropicProvider) -> None:
    """A data: URL that is not base64 is refused before anything is sent."""
    parts = [{"type": "image_url", "image_url": "data:image/png,rawbytes"}]
    with pytest.raises(errors.InvalidRequestError) as info:
        await provider.chat(ChatRequest(messages=[Message(role="user", content=parts)]))
    assert (info.value.provider, info.value.model) == ("anthropic", MODEL)


async def test_json_object_adds_system_instruction(provider: AnthropicProvider,
                                                   stub: StubServer) -> None:
    """response_format json_object asks for one JSON object in the system prompt."""
    request = ChatRequest(messages=[Message.system("Be terse."), Message.user("hi")],
                          response_format="json_object")
    body = await sent_body(provider, stub, request)
    assert body["system"] == f"Be terse.\n\n{JSON_OBJECT_INSTRUCTION}"


async def test_json_schema_sends_a_forced_tool(provider: AnthropicProvider,
                                               stub: StubServer) -> None:
    """response_format json_schema adds a tool with the schema and forces it."""
    body = await sent_body(provider, stub, ask(response_format=JSON_SCHEMA))
    assert body["tools"][0]["name"] == "weather_report"
    assert body["tools"][0]["input_schema"] == SCHEMA
    assert body["tool_choice"] == {"type": "tool", "name": "weather_report"}


async def test_json_schema_answer_is_the_tool_input_as_content(provider: AnthropicProvider,
                                                               stub: StubServer) -> None:
    """The forced tool's input comes back as JSON text with finish_reason stop."""
    use = {"type": "tool_use", "id": "toolu_9", "name": "weather_report",
           "input": {"city": "Paris", "temp": 21}}
    stub.route("POST", MESSAGES, Reply(json=message(use, stop_reason="tool_use")))
    response = await provider.chat(ask(response_format=JSON_SCHEMA))
    assert json.loads(response.content) == {"city": "Paris", "temp": 21}
    assert (response.finish_reason, response.tool_calls) == ("stop", [])
    assert response.raw_finish_reason == "tool_use"


# --- responses -------------------------------------------------------------------------


async def test_text_blocks_are_joined_and_thinking_ignored(provider: AnthropicProvider,
                                                           stub: StubServer) -> None:
    """Text blocks are concatenated into content; thinking blocks are left out."""
    blocks = [{"type": "thinking", "thinking": "hmm", "signature": "s"},
              {"type": "text", "text": "Hello, "}, {"type": "text", "text": "world."}]
    stub.route("POST", MESSAGES, Reply(json=message(*blocks)))
    response = await provider.chat(ask())
    assert response.content == "Hello, world."
    assert (response.id, response.model, response.provider) == ("msg_01", MODEL, "anthropic")


async def test_tool_use_block_becomes_tool_call(provider: AnthropicProvider,
                                                stub: StubServer) -> None:
    """A tool_use block becomes a ToolCall whose arguments are the input as JSON."""
    use = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Rome"}}
    stub.route("POST", MESSAGES, Reply(json=message(use, stop_reason="tool_use")))
    response = await provider.chat(ask(tools=[WEATHER]))
    assert response.tool_calls == [ToolCall(id="toolu_1", name="get_weather",
                                            arguments='{"city": "Rome"}')]
    assert response.finish_reason == "tool_calls"


async def test_usage_counts_cache_tokens_and_prices_them(provider: AnthropicProvider,
                                                         stub: StubServer) -> None:
    """Prompt tokens include cache writes and reads; cost uses the model's price."""
    usage = {"input_tokens": 100, "cache_creation_input_tokens": 20,
             "cache_read_input_tokens": 30, "output_tokens": 50}
    stub.route("POST", MESSAGES, Reply(json=message(usage=usage)))
    response = await provider.chat(ask())
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (150, 50)
    assert response.usage.total_tokens == 200
    assert response.usage.cost_usd == pytest.approx((150 * 3.0 + 50 * 15.0) / 1e6)


@pytest.mark.parametrize(("raw", "normalized"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
    ("tool_use", "tool_calls"), ("refusal", "content_filter"),
])
async def test_stop_reasons_are_normalized(provider: AnthropicProvider, stub: StubServer,
                                           raw: str, normalized: str) -> None:
    """stop_reason maps onto finish_reason and is kept in raw_finish_reason."""
    stub.route("POST", MESSAGES, Reply(json=message(stop_reason=raw)))
    response = await provider.chat(ask())
    assert (response.finish_reason, response.raw_finish_reason) == (normalized, raw)


async def test_latency_is_measured(provider: AnthropicProvider, stub: StubServer) -> None:
    """latency_ms covers the server's time to answer."""
    stub.route("POST", MESSAGES, Reply(json=message(), delay=0.05))
    assert (await provider.chat(ask())).latency_ms >= 40


@pytest.mark.parametrize("reply", [
    Reply(body=b'{"id": "msg_01", "content": [', headers={"content-type": "application/json"}),
    Reply(json={"unexpected": True}),
    Reply(json=message({"type": "tool_use", "id": "toolu_1", "input": {}})),
], ids=["not-json", "not-a-message", "nameless-tool"])
async def test_malformed_body_is_malformed_response(provider: AnthropicProvider,
                                                    stub: StubServer, reply: Reply) -> None:
    """A 200 body that is not JSON, or not a readable message, is MalformedResponseError."""
    stub.route("POST", MESSAGES, reply)
    with pytest.raises(errors.MalformedResponseError) as info:
        await provider.chat(ask())
    assert (info.value.provider, info.value.model, info.value.retryable) == (
        "anthropic", MODEL, True)


# --- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "kind", "cls", "retryable"), [
    (400, "invalid_request_error", errors.InvalidRequestError, False),
    (401, "authentication_error", errors.AuthenticationError, False),
    (403, "permission_error", errors.AuthenticationError, False),
    (404, "not_found_error", errors.ModelNotFoundError, False),
    (404, "invalid_request_error", errors.ModelNotFoundError, False),
    (413, "request_too_large", errors.RequestTooLargeError, False),
    (429, "rate_limit_error", errors.RateLimitError, True),
    (500, "api_error", errors.ProviderUnavailableError, True),
    (529, "overloaded_error", errors.ProviderUnavailableError, True),
    (418, "teapot_error", errors.InvalidRequestError, False),
])
async def test_error_statuses_map_to_classes(
        provider: AnthropicProvider, stub: StubServer, status: int, kind: str,
        cls: type[errors.ProviderError], retryable: bool) -> None:
    """Each status and error type raises its class with the call's context."""
    stub.route("POST", MESSAGES, Reply(status, json=error_body(kind, "nope")))
    with pytest.raises(cls) as info:
        await provider.chat(ask())
    assert type(info.value) is cls
    assert (info.value.status_code, info.value.retryable) == (status, retryable)
    assert (info.value.provider, info.value.model) == ("anthropic", MODEL)
    assert info.value.details["error_type"] == kind
    assert "nope" in str(info.value)


async def test_529_without_json_body_is_unavailable(provider: AnthropicProvider,
                                                    stub: StubServer) -> None:
    """A 529 with a plain-text body is still ProviderUnavailableError, with the text."""
    stub.route("POST", MESSAGES, Reply(529, body=b"Overloaded, try later"))
    with pytest.raises(errors.ProviderUnavailableError, match="Overloaded, try later"):
        await provider.chat(ask())


def _in(seconds: int) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


@pytest.mark.parametrize(("headers", "low", "high"), [
    (lambda: {"retry-after": "17"}, 17, 17),
    (lambda: {"retry-after": format_datetime(_in(30), usegmt=True)}, 20, 30),
    (lambda: {"anthropic-ratelimit-tokens-remaining": "0",
              "anthropic-ratelimit-tokens-reset": _in(40).isoformat()}, 30, 40),
], ids=["seconds", "http-date", "anthropic-reset"])
async def test_rate_limit_retry_after(provider: AnthropicProvider, stub: StubServer,
                                      headers: Any, low: float, high: float) -> None:
    """retry_after comes from Retry-After (seconds or HTTP-date) or the ratelimit reset."""
    stub.route("POST", MESSAGES, Reply(429, json=error_body("rate_limit_error"), headers=headers()))
    with pytest.raises(errors.RateLimitError) as info:
        await provider.chat(ask())
    assert info.value.retry_after is not None
    assert low <= info.value.retry_after <= high


async def test_spend_limit_is_quota_exceeded(provider: AnthropicProvider,
                                             stub: StubServer) -> None:
    """A 429 for a reached spend limit is QuotaExceededError, which is not retryable."""
    body = error_body("rate_limit_error", "spend limit reached")
    body["error"]["details"] = {"error_code": "enforced_spend_limit_reached"}
    stub.route("POST", MESSAGES, Reply(429, json=body))
    with pytest.raises(errors.QuotaExceededError) as info:
        await provider.chat(ask())
    assert not info.value.retryable


async def test_connection_reset_is_connection_error(provider: AnthropicProvider,
                                                    stub: StubServer) -> None:
    """A connection reset before any reply raises ProviderConnectionError."""
    stub.route("POST", MESSAGES, Reply(reset=True))
    with pytest.raises(errors.ProviderConnectionError) as info:
        await provider.chat(ask())
    assert (info.value.provider, info.value.model, info.value.retryable) == (
        "anthropic", MODEL, True)


async def test_slow_reply_is_timeout_error(provider: AnthropicProvider,
                                           stub: StubServer) -> None:
    """A reply slower than the request's timeout raises ProviderTimeoutError."""
    stub.route("POST", MESSAGES, Reply(json=message(), delay=0.3))
    with pytest.raises(errors.ProviderTimeoutError) as info:
        await provider.chat(ask(timeout=0.05))
    assert (info.value.provider, info.value.retryable) == ("anthropic", True)


# --- models and health -----------------------------------------------------------------


def model_page(*ids: str, has_more: bool) -> dict[str, Any]:
    """One page of GET /v1/models."""
    data = [{"type": "model", "id": i, "display_name": i.title(),
             "created_at": "2024-10-22T00:00:00Z"} for i in ids]
    return {"data": data, "has_more": has_more, "first_id": ids[0], "last_id": ids[-1]}


async def test_list_models_follows_pagination(provider: AnthropicProvider,
                                              stub: StubServer) -> None:
    """Pages are fetched with after_id until has_more is false."""
    stub.route("GET", "/v1/models", Reply(json=model_page("claude-a", "claude-b", has_more=True)),
               Reply(json=model_page("claude-c", has_more=False)))
    models = await provider.list_models()
    assert [m.id for m in models] == ["claude-a", "claude-b", "claude-c"]
    assert stub.requests[-1].query["after_id"] == "claude-b"
    assert (models[0].display_name, models[0].provider) == ("Claude-A", "anthropic")
    assert models[0].created == int(datetime(2024, 10, 22, tzinfo=UTC).timestamp())


@pytest.mark.parametrize(("reply", "healthy", "error_type"), [
    (Reply(json=model_page("claude-a", has_more=False)), True, None),
    (Reply(401, json=error_body("authentication_error", "bad key")), False,
     "authentication_error"),
])
async def test_health_reports_without_raising(provider: AnthropicProvider, stub: StubServer,
                                              reply: Reply, healthy: bool,
                                              error_type: str | None) -> None:
    """health() is healthy when models list, and reports an error instead of raising."""
    stub.route("GET", "/v1/models", reply)
    status = await provider.health()
    assert (status.healthy, status.error_type, status.provider) == (
        healthy, error_type, "anthropic")


# --- secrets ---------------------------------------------------------------------------


def test_api_key_not_in_repr() -> None:
    """The adapter's repr masks the key."""
    assert KEY not in repr(AnthropicProvider(api_key=KEY))


async def test_api_key_not_in_errors(provider: AnthropicProvider, stub: StubServer) -> None:
    """A key echoed back in an error body is redacted from str and repr."""
    stub.route("POST", MESSAGES, Reply(401, json=error_body("authentication_error",
                                                       f"invalid x-api-key {KEY}")))
    with pytest.raises(errors.AuthenticationError) as info:
        await provider.chat(ask())
    assert KEY not in str(info.value)
    assert KEY not in repr(info.value)
    assert KEY not in json.dumps(info.value.to_dict())


async def test_api_key_not_in_logs(provider: AnthropicProvider, stub: StubServer,
                                   caplog: pytest.LogCaptureFixture) -> None:
    """Debug logs of a call, a dropped parameter and an error never show the key."""
    caplog.set_level(logging.DEBUG)
    stub.route("POST", MESSAGES, Reply(json=message()),
               Reply(400, json=error_body("invalid_request_error", f"bad {KEY}")))
    await provider.chat(ask(seed=1))
    with pytest.raises(errors.InvalidRequestError):
        await provider.chat(ask())
    assert caplog.records
    assert KEY not in caplog.text
