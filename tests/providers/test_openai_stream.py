"""The OpenAI adapter's streaming against a real local server: SSE in irregular pieces."""

from __future__ import annotations

import pytest

from chainweave.errors import (
    MalformedResponseError,
    ProviderUnavailableError,
    RateLimitError,
    StreamInterruptedError,
)
from chainweave.providers.openai import OpenAICompatibleProvider, OpenAIProvider
from chainweave.types import ChatRequest, Message, StreamChunk, ToolCall
from tests.providers.openai_wire import KEY, chunk, error_reply, sse_reply, text_stream
from tests.stubserver import StubServer, sse_event

PATH = "/v1/chat/completions"


def make(stub: StubServer, **kwargs: object) -> OpenAIProvider:
    """An adapter pointed at the stub server."""
    return OpenAIProvider(api_key=KEY, base_url=f"{stub.url}/v1", **kwargs)  # type: ignore[arg-type]


def ask(content: str = "Capital of France?") -> ChatRequest:
    """A one-message request for gpt-4o-mini."""
    return ChatRequest(model="gpt-4o-mini", messages=[Message.user(content)])


async def collect(provider: OpenAIProvider, request: ChatRequest) -> list[StreamChunk]:
    """Every chunk of a stream."""
    return [c async for c in provider.stream(request)]


async def test_stream_yields_deltas_then_a_final_chunk_with_usage(stub: StubServer) -> None:
    """Text arrives as deltas; the last chunk has finish reason and usage."""
    stub.route("POST", PATH, sse_reply(text_stream("Par", "is", ".")))
    async with make(stub) as provider:
        chunks = await collect(provider, ask())
    assert "".join(c.delta for c in chunks) == "Paris."
    assert all(c.finish_reason is None for c in chunks[:-1])
    assert chunks[-1].finish_reason == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 15
    sent = stub.requests[0].json
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}


async def test_stream_usage_can_be_turned_off(stub: StubServer) -> None:
    """Servers that reject stream_options are not sent it."""
    stub.route("POST", PATH, sse_reply(text_stream("ok", usage=False)))
    async with make(stub, stream_usage=False) as provider:
        chunks = await collect(provider, ask())
    assert "stream_options" not in stub.requests[0].json
    assert chunks[-1].usage is None


async def test_stream_assembles_tool_call_fragments(stub: StubServer) -> None:
    """Tool-call fragments for two interleaved calls join into whole calls."""
    def frag(index: int, **fn: str) -> dict[str, object]:
        return {"tool_calls": [{"index": index, **({"id": f"call_{index}", "type": "function"}
                                                    if "name" in fn else {}),
                                "function": fn}]}
    events = [
        sse_event(chunk({"role": "assistant", "content": None})),
        sse_event(chunk(frag(0, name="get_weather", arguments=""))),
        sse_event(chunk(frag(1, name="get_time", arguments='{"tz"'))),
        sse_event(chunk(frag(0, arguments='{"city":'))),
        sse_event(chunk(frag(1, arguments=':"UTC"}'))),
        sse_event(chunk(frag(0, arguments='"Paris"}'))),
        sse_event(chunk({}, finish="tool_calls")),
        sse_event("[DONE]"),
    ]
    stub.route("POST", PATH, sse_reply(events))
    async with make(stub) as provider:
        chunks = await collect(provider, ask())
    final = chunks[-1]
    assert final.finish_reason == "tool_calls"
    assert final.tool_calls == [
        ToolCall(id="call_0", name="get_weather", arguments='{"city":"Paris"}'),
        ToolCall(id="call_1", name="get_time", arguments='{"tz":"UTC"}'),
    ]
    assert sum(len(c.tool_call_deltas) for c in chunks) == 5


async def test_stream_ignores_sse_comments(stub: StubServer) -> None:
    """Keep-alive comments (OpenRouter's ``: OPENROUTER PROCESSING``) are skipped."""
    events = [": OPENROUTER PROCESSING\n\n", *text_stream("hi")]
    stub.route("POST", PATH, sse_reply(events))
    async with make(stub) as provider:
        chunks = await collect(provider, ask())
    assert "".join(c.delta for c in chunks) == "hi"


async def test_stream_without_done_marker_is_an_error(stub: StubServer) -> None:
    """A stream that ends before ``[DONE]`` raises instead of returning a short answer."""
    stub.route("POST", PATH, sse_reply(text_stream("Par", "is", done=False, usage=False)))
    async with make(stub) as provider:
        with pytest.raises(StreamInterruptedError) as info:
            await collect(provider, ask())
    assert info.value.retryable
    assert info.value.details["partial_content"] == "Paris"


async def test_stream_dropped_connection_is_an_interruption(stub: StubServer) -> None:
    """A connection cut mid-stream raises StreamInterruptedError after the partial text."""
    reply = sse_reply(text_stream("a" * 40, "b" * 40))
    assert reply.chunks is not None
    reply.drop_after = len(reply.chunks) // 2
    stub.route("POST", PATH, reply)
    got: list[str] = []

    async def consume(provider: OpenAIProvider) -> None:
        async for c in provider.stream(ask()):
            got.append(c.delta)

    async with make(stub) as provider:
        with pytest.raises(StreamInterruptedError):
            await consume(provider)
    assert "".join(got).startswith("a")


async def test_stream_error_status_is_mapped_before_any_chunk(stub: StubServer) -> None:
    """An error status on a stream request raises the mapped error."""
    stub.route("POST", PATH, error_reply(429, "slow down", type_="requests",
                                         headers={"retry-after": "3"}))
    async with make(stub) as provider:
        with pytest.raises(RateLimitError) as info:
            await collect(provider, ask())
    assert info.value.retry_after == 3.0


async def test_stream_error_event_is_raised(stub: StubServer) -> None:
    """An error object sent as a stream event raises the mapped error."""
    events = [sse_event(chunk({"content": "x"})),
              sse_event({"error": {"message": "upstream overloaded", "code": 502}})]
    stub.route("POST", PATH, sse_reply(events))
    async with make(stub) as provider:
        with pytest.raises(ProviderUnavailableError, match="upstream overloaded") as info:
            await collect(provider, ask())
    assert info.value.status_code == 502


async def test_stream_malformed_chunk_is_an_error(stub: StubServer) -> None:
    """A chunk that is not JSON raises MalformedResponseError."""
    stub.route("POST", PATH, sse_reply([sse_event("{not json"), sse_event("[DONE]")]))
    async with make(stub) as provider:
        with pytest.raises(MalformedResponseError):
            await collect(provider, ask())


async def test_closing_a_stream_early_releases_the_connection(stub: StubServer) -> None:
    """Breaking out of a stream closes it so the pool connection is freed."""
    stub.route("POST", PATH, sse_reply(text_stream(*("w " * 50).split())))
    async with make(stub) as provider:
        for _ in range(3):
            stream = provider.stream(ask())
            async for _chunk in stream:
                break
            await stream.aclose()  # type: ignore[attr-defined]
        resp_chunks = await collect(provider, ask())
    assert resp_chunks[-1].finish_reason == "stop"


async def test_stream_interruption_details_say_what_arrived(stub: StubServer) -> None:
    """A dropped stream's error carries the partial text and the chunk count."""
    reply = sse_reply(text_stream("a" * 40, "b" * 40))
    assert reply.chunks is not None
    reply.drop_after = len(reply.chunks) // 2
    stub.route("POST", PATH, reply)
    async with make(stub) as provider:
        with pytest.raises(StreamInterruptedError) as info:
            await collect(provider, ask())
    details = info.value.details
    assert details["partial_content"].startswith("a")
    assert details["chunks"] >= 1


async def test_compatible_server_without_done_after_finish_is_complete(stub: StubServer) -> None:
    """A compatible server that ends cleanly after a finish reason, with no [DONE], is fine."""
    stub.route("POST", PATH, sse_reply(text_stream("ok", done=False)))
    async with OpenAICompatibleProvider(base_url=f"{stub.url}/v1") as provider:
        chunks = await collect(provider, ask())
    assert "".join(c.delta for c in chunks) == "ok"
    assert chunks[-1].finish_reason == "stop"


async def test_compatible_server_ending_before_a_finish_is_interrupted(stub: StubServer) -> None:
    """Without [DONE] and without a finish reason the stream was cut short."""
    events = [sse_event(chunk({"content": "par"})), sse_event(chunk({"content": "tial"}))]
    stub.route("POST", PATH, sse_reply(events))
    async with OpenAICompatibleProvider(base_url=f"{stub.url}/v1") as provider:
        with pytest.raises(StreamInterruptedError):
            await collect(provider, ask())


async def test_openai_itself_still_needs_done(stub: StubServer) -> None:
    """OpenAI's own API always sends [DONE]; its absence there is an interruption."""
    stub.route("POST", PATH, sse_reply(text_stream("ok", done=False)))
    async with make(stub) as provider:
        with pytest.raises(StreamInterruptedError):
            await collect(provider, ask())


async def test_streamed_refusal_is_a_content_filter_finish(stub: StubServer) -> None:
    """Refusal deltas arrive in ``refusal`` and the stream finishes as content_filter."""
    events = [sse_event(chunk({"role": "assistant", "content": None, "refusal": ""})),
              sse_event(chunk({"refusal": "I can't help "})),
              sse_event(chunk({"refusal": "with that."})),
              sse_event(chunk({}, finish="stop")), sse_event("[DONE]")]
    stub.route("POST", PATH, sse_reply(events))
    async with make(stub) as provider:
        chunks = await collect(provider, ask())
    assert "".join(c.refusal or "" for c in chunks) == "I can't help with that."
    assert (chunks[-1].finish_reason, chunks[-1].raw_finish_reason) == (
        "content_filter", "refusal")


async def test_only_choice_zero_is_streamed(stub: StubServer) -> None:
    """With several choices (``n`` > 1) the others are not merged into choice 0."""
    def two(first: str, second: str) -> str:
        body = chunk({"content": first})
        body["choices"].append({"index": 1, "delta": {"content": second},
                                "finish_reason": None})
        return sse_event(body)
    events = [two("A", "B"), two("a", "b"), sse_event(chunk({}, finish="stop")),
              sse_event("[DONE]")]
    stub.route("POST", PATH, sse_reply(events))
    async with make(stub) as provider:
        chunks = await collect(provider, ask())
    assert "".join(c.delta for c in chunks) == "Aa"


async def test_tool_fragments_that_never_name_a_tool_are_malformed(stub: StubServer) -> None:
    """Fragments with no name anywhere are the server's fault, not a validation error."""
    events = [sse_event(chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]})),
              sse_event(chunk({}, finish="tool_calls")), sse_event("[DONE]")]
    stub.route("POST", PATH, sse_reply(events))
    async with make(stub) as provider:
        with pytest.raises(MalformedResponseError, match="do not add up"):
            await collect(provider, ask())
