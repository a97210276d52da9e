"""The streaming stage: text coalescing, ordering, usage merging, errors, backpressure, close."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from typing import cast

import pytest

from chainweave.errors import InputValidationError, ProviderConnectionError
from chainweave.pipeline.base import Call, Pipeline
from chainweave.pipeline.streaming import StreamingProcessor
from chainweave.testing import MockProvider, MockReply
from chainweave.types import ChatRequest, StreamChunk, ToolCall, ToolCallDelta, Usage

REQUEST = ChatRequest.from_prompt("hi")
NEVER = 3600.0  # a flush interval no test reaches: size decides
GUARD = 5.0  # a safety net against a hang, never a measurement

Step = StreamChunk | Exception | asyncio.Event


class Upstream:
    """A scripted upstream: chunks, exceptions to raise, events to wait on (silence).

    Attributes:
        sent: Chunks yielded so far.
        closed: Whether the generator's ``finally`` ran.
    """

    def __init__(self, steps: Sequence[Step], *, forever: bool = False) -> None:
        self.steps, self.forever = list(steps), forever
        self.sent = 0
        self.closed = False

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        try:
            for step in self.steps:
                if isinstance(step, asyncio.Event):
                    await step.wait()
                elif isinstance(step, Exception):
                    raise step
                else:
                    self.sent += 1
                    yield step
            while self.forever:
                self.sent += 1
                yield StreamChunk(delta="x")
        finally:
            self.closed = True


def text(*parts: str) -> list[StreamChunk]:
    """Text chunks."""
    return [StreamChunk(delta=part) for part in parts]


def run(stage: StreamingProcessor, upstream: Upstream) -> AsyncIterator[StreamChunk]:
    """The stage's stream over ``upstream``."""
    call = Call.for_request(REQUEST, streaming=True)
    return stage.stream(REQUEST, call, upstream.stream)


async def collect(stage: StreamingProcessor, upstream: Upstream) -> list[StreamChunk]:
    """Every chunk the stage sends."""
    return [chunk async for chunk in run(stage, upstream)]


def closer(stream: AsyncIterator[StreamChunk]) -> aclosing[AsyncGenerator[StreamChunk, None]]:
    """``aclosing`` for a stream typed as a plain AsyncIterator."""
    return aclosing(cast(AsyncGenerator[StreamChunk, None], stream))


def other_tasks() -> set[asyncio.Task[object]]:
    """Tasks alive besides the test's own."""
    return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]


# --- construction ------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"buffer_size": 0}, "buffer_size"),
    ({"flush_interval": 0}, "flush_interval"),
    ({"flush_interval": float("inf")}, "flush_interval"),
    ({"max_pending": 0}, "max_pending"),
    ({"errors": "ignore"}, "errors"),
])
def test_bad_settings_name_the_field(kwargs: dict[str, object], field: str) -> None:
    """Out-of-range settings are refused, naming the field."""
    with pytest.raises(InputValidationError) as caught:
        StreamingProcessor(**kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field


# --- coalescing --------------------------------------------------------------------------


async def test_text_is_sent_once_buffer_size_characters_are_held() -> None:
    """Small deltas are joined until buffer_size characters are buffered."""
    upstream = Upstream([*text("abc", "def", "ghi", "jkl", "mn"),
                         StreamChunk(finish_reason="stop")])
    chunks = await collect(StreamingProcessor(10, NEVER), upstream)
    assert [c.delta for c in chunks] == ["abcdefghijkl", "mn", ""]
    assert chunks[-1].finish_reason == "stop"


async def test_coalesced_chunk_keeps_the_stream_identity() -> None:
    """A joined chunk keeps the id, model and provider of the text it joins."""
    parts = [StreamChunk(delta=d, id="c1", model="m", provider="p") for d in ("ab", "cd")]
    chunks = await collect(StreamingProcessor(4, NEVER), Upstream(parts))
    assert [(c.delta, c.id, c.model, c.provider) for c in chunks] == [("abcd", "c1", "m", "p")]


async def test_text_is_flushed_on_time_while_the_upstream_is_silent() -> None:
    """Buffered text goes out after flush_interval even when nothing else arrives."""
    gate = asyncio.Event()
    upstream = Upstream([*text("hel", "lo"), gate, *text(" world"),
                         StreamChunk(finish_reason="stop")])
    async with closer(run(StreamingProcessor(1000, 0.01), upstream)) as stream:
        first = await asyncio.wait_for(anext(stream), GUARD)
        assert first.delta == "hello"
        assert not gate.is_set()  # it came while the upstream was still waiting
        gate.set()
        rest = [chunk async for chunk in stream]
    assert [c.delta for c in rest] == [" world", ""]


# --- order -------------------------------------------------------------------------------


async def test_tool_call_fragments_pass_through_in_order() -> None:
    """Text buffered before a tool-call fragment is sent before it."""
    call = ToolCall(id="t1", name="lookup", arguments='{"q": 1}')
    fragments = [StreamChunk(tool_call_deltas=[ToolCallDelta(index=0, id="t1", name="lookup")]),
                 StreamChunk(tool_call_deltas=[ToolCallDelta(index=0, arguments='{"q": 1}')])]
    upstream = Upstream([*text("Let me ", "check"), *fragments,
                         StreamChunk(finish_reason="tool_calls", tool_calls=[call])])
    chunks = await collect(StreamingProcessor(1000, NEVER), upstream)
    assert chunks[0].delta == "Let me check"
    assert chunks[1:3] == fragments
    assert chunks[3].finish_reason == "tool_calls"
    assert chunks[3].tool_calls == [call]
    assert len(chunks) == 4


async def test_refusal_passes_through_after_the_text_before_it() -> None:
    """Refusal text is not held back, and comes after the text that preceded it."""
    upstream = Upstream([*text("I ", "see. "), StreamChunk(refusal="I can't help with that"),
                         StreamChunk(finish_reason="content_filter")])
    chunks = await collect(StreamingProcessor(1000, NEVER), upstream)
    assert [(c.delta, c.refusal) for c in chunks[:2]] == [("I see. ", None),
                                                          ("", "I can't help with that")]
    assert chunks[-1].finish_reason == "content_filter"


async def test_text_on_the_finish_chunk_comes_before_the_last_chunk() -> None:
    """A finish chunk that also carries text: the text is sent, then a bare last chunk."""
    upstream = Upstream([*text("a"), StreamChunk(delta="b", finish_reason="stop")])
    chunks = await collect(StreamingProcessor(1000, NEVER), upstream)
    assert [(c.delta, c.finish_reason) for c in chunks] == [("ab", None), ("", "stop")]


# --- the last chunk ----------------------------------------------------------------------


async def test_usage_after_the_finish_chunk_is_merged_into_it() -> None:
    """OpenAI's include_usage chunk (after finish) ends up on the one last chunk."""
    usage = Usage(prompt_tokens=5, completion_tokens=2)
    upstream = Upstream([*text("hi"), StreamChunk(finish_reason="length"),
                         StreamChunk(usage=usage)])
    chunks = await collect(StreamingProcessor(1000, NEVER), upstream)
    assert [(c.delta, c.finish_reason, c.usage) for c in chunks] == [
        ("hi", None, None), ("", "length", usage)]


async def test_usage_without_a_finish_chunk_still_arrives_last() -> None:
    """A usage report with no finish chunk at all is sent at the end."""
    usage = Usage(total_tokens=9)
    chunks = await collect(StreamingProcessor(1000, NEVER),
                           Upstream([StreamChunk(usage=usage), *text("a", "b")]))
    assert [(c.delta, c.usage) for c in chunks] == [("ab", None), ("", usage)]


async def test_through_a_pipeline_over_mock_provider() -> None:
    """Over a real upstream: same text in fewer chunks; the last has finish and usage."""
    reply = MockReply(chunks=["one ", "two ", "three ", "four ", "five"])
    pipeline = Pipeline(MockProvider([reply]), [StreamingProcessor(9, NEVER)])
    chunks = [chunk async for chunk in pipeline.stream(REQUEST)]
    assert [c.delta for c in chunks] == ["one two three ", "four five", ""]
    assert chunks[-1].finish_reason == "stop"
    assert chunks[-1].usage is not None


async def test_chat_passes_straight_through() -> None:
    """A chat call is not touched."""
    response = await Pipeline(MockProvider(["hello"]), [StreamingProcessor()]).chat(REQUEST)
    assert response.content == "hello"


# --- errors ------------------------------------------------------------------------------


async def test_upstream_error_is_raised_after_the_buffered_text() -> None:
    """errors="raise": the text that arrived is sent, then the upstream's own exception."""
    failure = ProviderConnectionError("reset", provider="p")
    upstream = Upstream([*text("par", "tial"), failure])
    received: list[str] = []

    async def drain() -> None:
        async for chunk in run(StreamingProcessor(1000, NEVER), upstream):
            received.append(chunk.delta)

    with pytest.raises(ProviderConnectionError) as caught:
        await drain()
    assert caught.value is failure
    assert received == ["partial"]


async def test_upstream_error_becomes_a_last_error_chunk() -> None:
    """errors="event": the stream ends with finish_reason="error" and a StreamError."""
    usage = Usage(total_tokens=3)
    upstream = Upstream([*text("par"), StreamChunk(usage=usage),
                         ProviderConnectionError("reset", provider="p")])
    chunks = await collect(StreamingProcessor(1000, NEVER, errors="event"), upstream)
    assert [c.delta for c in chunks] == ["par", ""]
    last = chunks[-1]
    assert last.finish_reason == "error"
    assert last.error is not None
    assert (last.error.error_code, last.error.retryable) == ("CONNECTION_FAILED", True)
    assert last.usage == usage


async def test_unknown_upstream_error_becomes_internal_error_event() -> None:
    """A non-chainweave exception is reported as internal_error."""
    chunks = await collect(StreamingProcessor(errors="event"),
                           Upstream([RuntimeError("boom")]))
    assert len(chunks) == 1
    assert chunks[0].error is not None
    assert chunks[0].error.error_type == "internal_error"


# --- backpressure and cleanup ------------------------------------------------------------


async def test_producer_stays_at_most_max_pending_ahead_of_a_slow_consumer() -> None:
    """A consumer that lags never lets more than max_pending chunks pile up."""
    upstream = Upstream(text(*["x"] * 200))
    lags: list[int] = []
    received = 0
    async for _ in run(StreamingProcessor(1, NEVER, max_pending=4), upstream):
        received += 1
        for _ in range(10):  # a slow consumer: the producer gets every chance to run
            await asyncio.sleep(0)
        lags.append(upstream.sent - received)
    assert received == 200
    # Four queued, plus the one the producer holds while it waits for room.
    assert max(lags) == 4 + 1


async def test_closing_early_closes_the_upstream_and_leaves_no_task() -> None:
    """aclose() cancels the producer and runs the upstream's finally before returning."""
    upstream = Upstream([], forever=True)
    stream = run(StreamingProcessor(1, NEVER, max_pending=2), upstream)
    async with closer(stream) as chunks:
        await anext(chunks)
        await anext(chunks)
    assert upstream.closed
    assert other_tasks() == set()


async def test_breaking_off_while_the_upstream_is_silent_closes_it() -> None:
    """A producer waiting inside a silent upstream is cancelled there, and it closes."""
    upstream = Upstream([*text("a"), asyncio.Event()])  # the event is never set
    async with closer(run(StreamingProcessor(1, NEVER), upstream)) as chunks:
        async for chunk in chunks:
            assert chunk.delta == "a"
            break
    assert upstream.closed
    assert other_tasks() == set()


async def test_cancelling_the_consumer_propagates_and_cleans_up() -> None:
    """A cancelled consumer gets CancelledError; the upstream is closed behind it."""
    upstream = Upstream([*text("a"), asyncio.Event()])
    reading = asyncio.Event()

    async def consume() -> None:
        async with closer(run(StreamingProcessor(1, NEVER), upstream)) as chunks:
            async for _ in chunks:
                reading.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(reading.wait(), GUARD)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert upstream.closed
    assert other_tasks() == set()
