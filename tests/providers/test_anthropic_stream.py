"""The Anthropic Messages adapter's streaming, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json

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
    start,
    text_block,
    tool_block,
)
from tests.stubserver import Reply, StubServer, sse_chunks, sse_event


async def collect(provider: AnthropicProvider, request: ChatRequest) -> list[StreamChunk]:
    """Every chunk of a stream."""
    return [chunk async for chunk in provider.stream(request)]


async def until_error(provider: AnthropicProvider, request: ChatRequest,
                      ) -> tuple[list[StreamChunk], errors.ProviderError]:
    """The chunks a stream yields before it fails, and the error it fails with."""
    received: list[StreamChunk] = []
    try:
        async for chunk in provider.stream(request):
            received.append(chunk)
    except errors.ProviderError as exc:
        return received, exc
    pytest.fail("the stream ended without an error")


def progress_of(received: list[StreamChunk]) -> dict[str, object]:
    """The progress keys every adapter's interruption details share."""
    return {"partial_content": "".join(c.delta for c in received), "chunks": len(received)}


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
    assert {d.index for d in deltas} == {0, 1}
    assert chunks[-1].finish_reason == "tool_calls"
    assert chunks[-1].tool_calls == [
        ToolCall(id="toolu_1", name="get_weather", arguments='{"city": "Oslo"}'),
        ToolCall(id="toolu_2", name="get_weather", arguments='{"city": "Rome"}')]


async def test_stream_tool_call_indices_count_tool_calls_from_zero(
        provider: AnthropicProvider, stub: StubServer) -> None:
    """Tool-call deltas are numbered 0, 1, ... by tool call, not by content block."""
    thinking = block(0, {"type": "thinking", "thinking": ""},
                     [{"type": "thinking_delta", "thinking": "hmm"}])
    events = [start(), *thinking, *text_block(1, "Checking both."),
              *tool_block(2, "toolu_a", "get_weather", '{"city": ', '"Oslo"}'),
              *tool_block(3, "toolu_b", "get_weather", '{"city": "Rome"}'),
              *finish("tool_use")]
    stub.route("POST", MESSAGES, Reply(chunks=sse_chunks(events)))
    chunks = await collect(provider, ask(tools=[WEATHER]))
    deltas = [d for c in chunks for d in c.tool_call_deltas]
    assert [(d.index, d.id) for d in deltas if d.id] == [(0, "toolu_a"), (1, "toolu_b")]
    assert [(d.index, d.arguments) for d in deltas if d.arguments] == [
        (0, '{"city": '), (0, '"Oslo"}'), (1, '{"city": "Rome"}')]
    assert [c.id for c in chunks[-1].tool_calls] == ["toolu_a", "toolu_b"]


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


@pytest.mark.parametrize("before", [[], ["Part", "ial"]], ids=["no-output", "partial-output"])
async def test_stream_error_event_carries_progress_details(
        provider: AnthropicProvider, stub: StubServer, before: list[str]) -> None:
    """An error event's error says how much had been yielded, like an interruption."""
    events = [start(), *(text_block(0, *before) if before else []),
              sse_event(error_body("overloaded_error", "Overloaded"), "error")]
    stub.route("POST", MESSAGES, Reply(chunks=sse_chunks(events)))
    received, error = await until_error(provider, ask())
    assert isinstance(error, errors.ProviderUnavailableError)
    assert len(received) == len(before)
    assert {k: error.details.get(k) for k in ("partial_content", "chunks")} == (
        progress_of(received))
    assert error.details["partial_content"] == "".join(before)
    assert error.details["error_type"] == "overloaded_error"


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


def _cut_after_text(events: list[str]) -> Reply:
    """A reply that sends ``events`` whole, then drops the connection."""
    return Reply(chunks=["".join(events).encode(), b"event: content_block_delta\n"],
                 drop_after=1)


@pytest.mark.parametrize("reply", [
    _cut_after_text([start(), *text_block(0, "A long ", "answer")]),
    Reply(chunks=sse_chunks([start(), *text_block(0, "A long ", "answer"), finish()[0]])),
], ids=["dropped-connection", "no-message-stop"])
async def test_stream_interruption_details_match_other_adapters(
        provider: AnthropicProvider, stub: StubServer, reply: Reply) -> None:
    """details always hold partial_content (the text so far) and chunks (how many)."""
    stub.route("POST", MESSAGES, reply)
    received, error = await until_error(provider, ask())
    assert isinstance(error, errors.StreamInterruptedError)
    assert len(received) == 2
    assert {k: error.details.get(k) for k in ("partial_content", "chunks")} == (
        progress_of(received))
    assert error.details["partial_content"] == "A long answer"
    assert error.details["text_chars"] == len("A long answer")


@pytest.mark.parametrize("temperature", [1.01, 2.0])
async def test_stream_temperature_above_one_is_refused_before_sending(
        provider: AnthropicProvider, stub: StubServer, temperature: float) -> None:
    """A stream with temperature above Anthropic's 1.0 fails locally, sending nothing."""
    with pytest.raises(errors.InvalidRequestError) as info:
        await collect(provider, ask(temperature=temperature))
    assert (info.value.field, info.value.provider, info.value.model) == (
        "temperature", "anthropic", MODEL)
    assert stub.requests == []


async def test_stream_error_status_is_mapped(provider: AnthropicProvider,
                                             stub: StubServer) -> None:
    """An error status before the stream starts maps like a plain call's."""
    stub.route("POST", MESSAGES, Reply(429, json=error_body("rate_limit_error"),
                                       headers={"retry-after": "3"}))
    with pytest.raises(errors.RateLimitError) as info:
        await collect(provider, ask())
    assert (info.value.status_code, info.value.retry_after) == (429, 3.0)


async def test_drop_after_message_stop_is_a_complete_answer(
        provider: AnthropicProvider, stub: StubServer) -> None:
    """A connection lost after message_stop does not turn a whole answer into an error."""
    stub.route("POST", MESSAGES, _cut_after_text([start(), *text_block(0, "Done."), *finish()]))
    chunks = await collect(provider, ask())
    assert "".join(c.delta for c in chunks) == "Done."
    assert chunks[-1].finish_reason == "stop"
