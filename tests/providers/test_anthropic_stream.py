"""The Anthropic Messages adapter's streaming, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from chainweave import errors
from chainweave.providers.anthropic import AnthropicProvider
from chainweave.types import ChatRequest, StreamChunk, ToolCall
from tests.providers.anthropic_wire import (
    JSON_SCHEMA,
    MESSAGES,
    MODEL,
    WEATHER,
    ask,
    block,
    error_body,
    ev,
    finish,
    make_provider,
    start,
    text_block,
    tool_block,
)
from tests.stubserver import Reply, StubServer, sse_chunks, sse_event


@pytest.fixture
async def provider(stub: StubServer) -> AsyncIterator[AnthropicProvider]:
    """An adapter pointed at the stub server."""
    adapter = make_provider(stub)
    yield adapter
    await adapter.aclose()


async def collect(provider: AnthropicProvider, request: ChatRequest) -> list[StreamChunk]:
    """Every chunk of a stream."""
    return [chunk async for chunk in provider.stream(request)]


# --- streaming -------------------------------------------------------------------------


async def test_stream_text_arrives_in_irregular_chunks(provider: AnthropicProvider,
                                                       stub: StubServer) -> None:
    """Text deltas split at odd byte boundaries are decoded into the whole text."""
    events = [start(), *text_block(0, "Hel", "lo, ", "wörld"), *finish()]
    stub.route("POST", MESSAGES, Reply(chunks=sse_chunks(events, max_piece=5)))
    chunks = await collect(provider, ask())
    assert "".join(c.delta for c in chunks) == "Hello, wörld"
    assert stub.requests[-1].json["stream"] is True


async def test_stream_final_chunk_has_finish_reason_and_usage(provider: AnthropicProvider,
                                                              stub: StubServer) -> None:
    """Only the last chunk carries finish_reason, and it carries usage from both ends."""
    events = [start(input_tokens=12), *text_block(0, "Hi"), *finish("max_tokens", 9)]
    stub.route("POST", MESSAGES, Reply(chunks=sse_chunks(events)))
    chunks = await collect(provider, ask())
    assert [c.finish_reason for c in chunks] == [None, "length"]
    last = chunks[-1]
    assert last.raw_finish_reason == "max_tokens"
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (12, 9)
    assert (last.id, last.model, last.provider) == ("msg_s1", MODEL, "anthropic")


async def test_stream_tool_call_fragments_are_assembled(provider: AnthropicProvider,
                                                        stub: StubServer) -> None:
    """input_json_delta fragments become ToolCallDeltas and whole calls at the end."""
    events = [start(), *text_block(0, "Let me check."),
              *tool_block(1, "toolu_1", "get_weather", "", '{"ci', 'ty": "Os', 'lo"}'),
              *tool_block(2, "toolu_2", "get_weather", '{"city": "Rome"}'),
              *finish("tool_use")]
    stub.route("POST", MESSAGES, Reply(chunks=sse_chunks(events, seed=3)))
    chunks = await collect(provider, ask(tools=[WEATHER]))
    deltas = [d for c in chunks for d in c.tool_call_deltas]
    assert {d.index for d in deltas} == {1, 2}
    assert chunks[-1].finish_reason == "tool_calls"
    assert chunks[-1].tool_calls == [
        ToolCall(id="toolu_1", name="get_weather", arguments='{"city": "Oslo"}'),
        ToolCall(id="toolu_2", name="get_weather", arguments='{"city": "Rome"}')]


async def test_stream_ignores_ping_and_thinking_events(provider: AnthropicProvider,
                                                       stub: StubServer) -> None:
    """ping events and thinking deltas add nothing to the stream."""
    ping = ev("ping")
    thinking = block(0, {"type": "thinking", "thinking": ""},
                     [{"type": "thinking_delta", "thinking": "secret"}])
    events = [start(), ping, *thinking, ping, *text_block(1, "ok"), ping, *finish()]
    stub.route("POST", MESSAGES, Reply(chunks=sse_chunks(events)))
    chunks = await collect(provider, ask())
    assert [(c.delta, c.finish_reason) for c in chunks] == [("ok", None), ("", "stop")]


async def test_stream_json_schema_streams_the_tool_input_as_text(
        provider: AnthropicProvider, stub: StubServer) -> None:
    """With json_schema, the forced tool's JSON streams as text and ends with stop."""
    events = [start(), *tool_block(0, "toolu_9", "weather_report", '{"city": ', '"Paris"}'),
              *finish("tool_use")]
    stub.route("POST", MESSAGES, Reply(chunks=sse_chunks(events)))
    chunks = await collect(provider, ask(response_format=JSON_SCHEMA))
    assert json.loads("".join(c.delta for c in chunks)) == {"city": "Paris"}
    assert (chunks[-1].finish_reason, chunks[-1].tool_calls) == ("stop", [])


async def test_stream_error_event_raises_mapped_error(provider: AnthropicProvider,
                                                      stub: StubServer) -> None:
    """An overloaded_error event mid-stream raises a retryable ProviderUnavailableError."""
    events = [start(), *text_block(0, "Partial"),
              sse_event(error_body("overloaded_error", "Overloaded"), "error")]
    stub.route("POST", MESSAGES, Reply(chunks=sse_chunks(events)))
    with pytest.raises(errors.ProviderUnavailableError) as info:
        await collect(provider, ask())
    assert (info.value.retryable, info.value.status_code) == (True, None)
    assert (info.value.provider, info.value.model) == ("anthropic", MODEL)
    assert "Overloaded" in str(info.value)


async def test_stream_unreadable_event_is_malformed(provider: AnthropicProvider,
                                                    stub: StubServer) -> None:
    """An event whose data is not JSON raises MalformedResponseError."""
    events = [start(), "event: content_block_delta\ndata: {not json\n\n", *finish()]
    stub.route("POST", MESSAGES, Reply(chunks=sse_chunks(events)))
    with pytest.raises(errors.MalformedResponseError) as info:
        await collect(provider, ask())
    assert (info.value.provider, info.value.model) == ("anthropic", MODEL)


async def test_stream_without_message_stop_is_interrupted(provider: AnthropicProvider,
                                                          stub: StubServer) -> None:
    """A stream that ends cleanly but without message_stop raises StreamInterruptedError."""
    events = [start(), *text_block(0, "Half an ans"), finish()[0]]
    stub.route("POST", MESSAGES, Reply(chunks=sse_chunks(events)))
    with pytest.raises(errors.StreamInterruptedError) as info:
        await collect(provider, ask())
    assert info.value.details["text_chars"] == len("Half an ans")
    assert info.value.retryable


async def test_stream_dropped_connection_is_interrupted(provider: AnthropicProvider,
                                                        stub: StubServer) -> None:
    """A connection dropped mid-stream raises StreamInterruptedError with progress."""
    chunks = sse_chunks([start(), *text_block(0, "A long answer"), *finish()])
    stub.route("POST", MESSAGES, Reply(chunks=chunks, drop_after=len(chunks) // 2))
    with pytest.raises(errors.StreamInterruptedError) as info:
        await collect(provider, ask())
    assert "text_chars" in info.value.details
    assert info.value.provider == "anthropic"


async def test_stream_error_status_is_mapped(provider: AnthropicProvider,
                                             stub: StubServer) -> None:
    """An error status before the stream starts maps like a plain call's."""
    stub.route("POST", MESSAGES, Reply(429, json=error_body("rate_limit_error"),
                                       headers={"retry-after": "3"}))
    with pytest.raises(errors.RateLimitError) as info:
        await collect(provider, ask())
    assert (info.value.status_code, info.value.retry_after) == (429, 3.0)
