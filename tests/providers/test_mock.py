"""MockProvider: prompt-derived answers, scripts, streaming, latency and failures."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator

import pytest

from chainweave.errors import (
    ExecutionError,
    InputValidationError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    StreamInterruptedError,
    error_for_status,
)
from chainweave.providers.mock import MockFailure, MockProvider, MockReply, default_text
from chainweave.streaming import StreamAccumulator
from chainweave.tokens import estimate_text_tokens, estimate_tokens
from chainweave.types import (
    ChatModel,
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    StreamChunk,
    ToolCall,
    Usage,
)


def ask(prompt: str = "What is the capital of France?", **params: object) -> ChatRequest:
    return ChatRequest.from_prompt(prompt, **params)


async def collect(provider: MockProvider, request: ChatRequest) -> list[StreamChunk]:
    return [chunk async for chunk in provider.stream(request)]


async def drain(stream: AsyncIterator[StreamChunk], received: list[StreamChunk]) -> None:
    async for chunk in stream:
        received.append(chunk)


WEATHER = ToolCall(id="call_1", name="get_weather",
                   arguments={"city": "Paris", "units": "celsius", "days": 3})


# --- prompt-derived answers ------------------------------------------------------------


async def test_default_text_is_deterministic() -> None:
    """The same request gets the same text, from one provider or two."""
    first = await MockProvider().chat(ask())
    again = await MockProvider().chat(ask())
    assert first.content == again.content
    assert first.content == default_text(ask())


async def test_default_text_differs_by_prompt() -> None:
    """Different prompts get different texts."""
    provider = MockProvider()
    a = await provider.chat(ask("Tell me about cats"))
    b = await provider.chat(ask("Tell me about dogs"))
    assert a.content != b.content


async def test_default_text_echoes_a_bounded_slice_of_the_last_user_message() -> None:
    """The text quotes the last user message, cut short when long."""
    long_prompt = "word " * 100
    request = ChatRequest(messages=[{"role": "user", "content": "first question"},
                                    {"role": "assistant", "content": "an answer"},
                                    {"role": "user", "content": long_prompt}])
    response = await MockProvider().chat(request)
    assert "word word" in response.content
    assert "first question" not in response.content
    assert len(response.content) < 120


async def test_default_reply_reports_usage_finish_reason_and_latency() -> None:
    """A default answer has estimated usage, finish_reason stop and a latency."""
    response = await MockProvider(name="offline").chat(ask())
    assert response.finish_reason == "stop"
    assert response.provider == "offline"
    request = ask()
    assert response.usage.prompt_tokens == estimate_tokens(request.messages, request.model)
    assert response.usage.completion_tokens == estimate_text_tokens(response.content)
    assert response.usage.total_tokens == (response.usage.prompt_tokens
                                           + response.usage.completion_tokens)
    assert response.latency_ms >= 0


async def test_model_is_the_requested_one_or_the_default() -> None:
    """The response names the requested model, or default_model when none is asked."""
    provider = MockProvider(default_model="mock-large")
    assert (await provider.chat(ask())).model == "mock-large"
    assert (await provider.chat(ask(model="gpt-4o"))).model == "gpt-4o"


def test_mock_provider_speaks_chat_model() -> None:
    """MockProvider satisfies the ChatModel protocol."""
    assert isinstance(MockProvider(), ChatModel)


# --- scripts ---------------------------------------------------------------------------


async def test_scripted_replies_come_in_order() -> None:
    """Each call takes the next scripted reply."""
    provider = MockProvider(["one", MockReply("two"), MockReply(content="three")])
    contents = [(await provider.chat(ask())).content for _ in range(3)]
    assert contents == ["one", "two", "three"]


async def test_chat_response_reply_is_returned_as_given() -> None:
    """A scripted ChatResponse comes back unchanged from chat."""
    given = ChatResponse(id="r1", model="m", provider="p", content="exact",
                         usage=Usage(prompt_tokens=7, completion_tokens=3))
    assert await MockProvider([given]).chat(ask()) == given


async def test_exhausted_repeat_repeats_the_last_reply() -> None:
    """By default, calls past the script get its last reply."""
    provider = MockProvider(["a", "b"])
    contents = [(await provider.chat(ask())).content for _ in range(4)]
    assert contents == ["a", "b", "b", "b"]


async def test_exhausted_cycle_starts_over() -> None:
    """With exhausted='cycle', calls past the script start it again."""
    provider = MockProvider(["a", "b"], exhausted="cycle")
    contents = [(await provider.chat(ask())).content for _ in range(5)]
    assert contents == ["a", "b", "a", "b", "a"]


async def test_exhausted_default_answers_from_the_prompt() -> None:
    """With exhausted='default', calls past the script get the prompt-derived text."""
    provider = MockProvider(["a"], exhausted="default")
    await provider.chat(ask())
    assert (await provider.chat(ask())).content == default_text(ask())


async def test_exhausted_error_raises_an_execution_error() -> None:
    """With exhausted='error', a call past the script fails and says why."""
    provider = MockProvider(["a"], exhausted="error")
    await provider.chat(ask())
    with pytest.raises(ExecutionError, match="no scripted reply left: 1 were given"):
        await provider.chat(ask())


async def test_concurrent_chats_take_each_reply_exactly_once() -> None:
    """Fifty concurrent chats over fifty scripted replies use every reply once."""
    replies = [MockReply(f"reply {i}", latency=0.001 * (i % 5)) for i in range(50)]
    provider = MockProvider(replies, exhausted="error")
    responses = await asyncio.gather(*(provider.chat(ask(f"q{i}")) for i in range(50)))
    assert sorted(r.content for r in responses) == sorted(f"reply {i}" for i in range(50))
    assert provider.remaining == 0
    assert provider.call_count == 50


async def test_requests_are_recorded_and_reset_forgets_them() -> None:
    """Requests are kept in order; reset() clears them and rewinds the script."""
    provider = MockProvider(["a", "b"])
    first, second = ask("one"), ask("two")
    await provider.chat(first)
    [chunk async for chunk in provider.stream(second)]
    assert provider.requests == [first, second]
    assert provider.call_count == 2
    provider.reset()
    assert provider.requests == []
    assert (await provider.chat(first)).content == "a"


def test_a_script_item_of_another_type_is_rejected() -> None:
    """A script item that is not a reply, failure or exception is refused up front."""
    with pytest.raises(InputValidationError, match=r"replies\.1"):
        MockProvider(["ok", 42])  # type: ignore[list-item]


async def test_tool_calls_may_be_given_in_wire_shape() -> None:
    """A MockReply accepts tool calls as OpenAI-shaped dicts."""
    wire = {"id": "call_1", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    response = await MockProvider([MockReply(tool_calls=[wire])]).chat(ask())  # type: ignore[list-item]
    assert response.tool_calls == [ToolCall(id="call_1", name="get_weather",
                                            arguments='{"city": "Oslo"}')]
    assert response.finish_reason == "tool_calls"


def test_chunks_must_join_up_to_content() -> None:
    """A MockReply whose chunks disagree with its content is refused."""
    with pytest.raises(InputValidationError, match="join up to content"):
        MockReply("hello", chunks=["bye"])


# --- failures --------------------------------------------------------------------------

STATUSES = [400, 401, 402, 403, 404, 408, 413, 422, 429, 500, 502, 503, 529]


@pytest.mark.parametrize("status", STATUSES)
async def test_status_failure_raises_what_an_http_adapter_raises(status: int) -> None:
    """MockFailure(status) raises error_for_status's class and fields for that status."""
    provider = MockProvider([MockFailure(status=status, retry_after=1.5, message="nope")],
                            name="openai")
    expected = error_for_status(status, "openai: nope", retry_after=1.5, provider="openai",
                                model="gpt-4o")
    with pytest.raises(ProviderError) as caught:
        await provider.chat(ask(model="gpt-4o"))
    assert type(caught.value) is type(expected)
    assert caught.value.to_dict() == expected.to_dict()


async def test_rate_limit_failure_is_retryable_with_retry_after() -> None:
    """A 429 failure is a retryable RateLimitError carrying retry_after."""
    with pytest.raises(RateLimitError) as caught:
        await MockProvider([MockFailure(status=429, retry_after=2.0)]).chat(ask())
    assert caught.value.status_code == 429
    assert caught.value.retryable is True
    assert caught.value.retry_after == 2.0
    assert caught.value.provider == "mock"


async def test_timeout_failure_raises_provider_timeout() -> None:
    """MockFailure.timeout() raises a retryable ProviderTimeoutError without a status."""
    with pytest.raises(ProviderTimeoutError) as caught:
        await MockProvider([MockFailure.timeout()]).chat(ask(model="m"))
    assert caught.value.retryable is True
    assert caught.value.status_code is None
    assert caught.value.model == "m"


async def test_reset_failure_raises_connection_error() -> None:
    """MockFailure.reset() raises a retryable ProviderConnectionError."""
    with pytest.raises(ProviderConnectionError, match="connection reset") as caught:
        await MockProvider([MockFailure.reset()]).chat(ask())
    assert caught.value.retryable is True


async def test_failure_in_a_stream_raises_before_any_chunk() -> None:
    """A scripted failure makes stream raise before it yields anything."""
    provider = MockProvider([MockFailure(status=503)])
    received: list[StreamChunk] = []
    with pytest.raises(ProviderError) as caught:
        await drain(provider.stream(ask()), received)
    assert caught.value.status_code == 503
    assert received == []


async def test_exception_instance_is_raised_as_is() -> None:
    """A scripted exception instance is raised unchanged."""
    boom = RuntimeError("boom")
    with pytest.raises(RuntimeError) as caught:
        await MockProvider([boom]).chat(ask())
    assert caught.value is boom


async def test_failures_then_success_follow_the_script() -> None:
    """A script can fail twice and then answer, as a flaky provider would."""
    provider = MockProvider([MockFailure(status=503), MockFailure.timeout(), "finally"])
    for expected in (ProviderError, ProviderTimeoutError):
        with pytest.raises(expected):
            await provider.chat(ask())
    assert (await provider.chat(ask())).content == "finally"


@pytest.mark.parametrize("status", [None, 200, 302, 600])
def test_a_failure_needs_an_error_status(status: int | None) -> None:
    """MockFailure refuses a status that is not an HTTP error."""
    with pytest.raises(InputValidationError, match="HTTP error status"):
        MockFailure(status=status)


# --- streaming -------------------------------------------------------------------------


async def test_stream_splits_text_into_words() -> None:
    """Without chunks, the text streams a word at a time and joins up exactly."""
    chunks = await collect(MockProvider(["The quick  brown fox"]), ask())
    deltas = [c.delta for c in chunks if c.delta]
    assert deltas == ["The ", "quick  ", "brown ", "fox"]


async def test_stream_uses_the_given_chunks() -> None:
    """A reply's chunks are streamed as given."""
    chunks = await collect(MockProvider([MockReply(chunks=["Hel", "lo", "!"])]), ask())
    assert [c.delta for c in chunks if c.delta] == ["Hel", "lo", "!"]


async def test_only_the_last_chunk_carries_finish_reason_and_usage() -> None:
    """The last chunk has finish_reason and usage; the others have neither."""
    chunks = await collect(MockProvider(["a b c"]), ask())
    *body, last = chunks
    assert last.finish_reason == "stop"
    assert last.usage is not None
    assert last.usage.completion_tokens > 0
    assert all(c.finish_reason is None and c.usage is None for c in body)


async def test_stream_tool_calls_arrive_as_fragments_and_assemble() -> None:
    """Tool calls stream as fragments that assemble into the calls; finish is tool_calls."""
    second = ToolCall(id="call_2", name="lookup", arguments='{"q": "x"}')
    provider = MockProvider([MockReply("Checking.", tool_calls=[WEATHER, second])])
    chunks = await collect(provider, ask())
    accumulator = StreamAccumulator()
    for chunk in chunks:
        accumulator.add(chunk)
    fragments = [f for c in chunks for f in c.tool_call_deltas if f.index == 0]
    assert len(fragments) > 2
    assert accumulator.tool_calls() == [WEATHER, second]
    assert chunks[-1].tool_calls == [WEATHER, second]
    assert chunks[-1].finish_reason == "tool_calls"


async def test_stream_adds_up_to_what_chat_returns() -> None:
    """Streaming a request assembles into the response chat gives for it."""
    reply = MockReply("Sunny in Paris.", tool_calls=[WEATHER])
    response = await MockProvider([reply]).chat(ask())
    accumulator = StreamAccumulator()
    for chunk in await collect(MockProvider([reply]), ask()):
        accumulator.add(chunk)
    streamed = accumulator.response(provider="mock", model="mock")
    assert streamed.content == response.content
    assert streamed.tool_calls == response.tool_calls
    assert streamed.usage == response.usage
    assert streamed.finish_reason == response.finish_reason


async def test_truncated_stream_raises_after_n_chunks() -> None:
    """truncate_after=N yields N chunks, then a StreamInterruptedError with the partial text."""
    provider = MockProvider([MockReply("one two three four", truncate_after=2)])
    received: list[StreamChunk] = []
    with pytest.raises(StreamInterruptedError) as caught:
        await drain(provider.stream(ask()), received)
    assert [c.delta for c in received] == ["one ", "two "]
    assert caught.value.details["partial_content"] == "one two "
    assert caught.value.retryable is True


async def test_truncation_past_the_text_still_never_finishes() -> None:
    """A truncation point past the last chunk still raises instead of finishing."""
    provider = MockProvider([MockReply("short reply", truncate_after=100)])
    received: list[StreamChunk] = []
    with pytest.raises(StreamInterruptedError):
        await drain(provider.stream(ask()), received)
    assert all(c.finish_reason is None for c in received)


async def test_truncated_reply_in_chat_raises_connection_error() -> None:
    """chat of a truncated reply fails instead of returning a short answer."""
    with pytest.raises(ProviderConnectionError, match="ended early"):
        await MockProvider([MockReply("cut off", truncate_after=1)]).chat(ask())


async def test_chunk_delay_spaces_the_chunks() -> None:
    """chunk_delay waits between chunks."""
    provider = MockProvider(["a b c"], chunk_delay=0.02)
    started = time.perf_counter()
    await collect(provider, ask())
    assert time.perf_counter() - started >= 0.06


# --- latency ---------------------------------------------------------------------------


async def test_provider_latency_delays_every_answer() -> None:
    """latency= makes each call wait at least that long."""
    started = time.perf_counter()
    await MockProvider(latency=0.05).chat(ask())
    assert time.perf_counter() - started >= 0.045


async def test_reply_latency_overrides_the_provider_latency() -> None:
    """A fast reply started after a slow one finishes first."""
    provider = MockProvider([MockReply("slow", latency=0.1), MockReply("fast", latency=0.0)],
                            latency=0.05)
    finished: list[str] = []

    async def call() -> None:
        finished.append((await provider.chat(ask())).content)

    await asyncio.gather(call(), call())
    assert finished == ["fast", "slow"]


async def test_a_request_timeout_shorter_than_the_latency_times_out() -> None:
    """A request whose timeout is below the latency fails with ProviderTimeoutError."""
    started = time.perf_counter()
    with pytest.raises(ProviderTimeoutError):
        await MockProvider(latency=5.0).chat(ask(timeout=0.01))
    assert time.perf_counter() - started < 4.0


async def test_failure_latency_delays_the_failure() -> None:
    """A failure with latency raises only after waiting."""
    started = time.perf_counter()
    with pytest.raises(ProviderTimeoutError):
        await MockProvider([MockFailure.timeout(latency=0.05)]).chat(ask())
    assert time.perf_counter() - started >= 0.045


# --- embeddings, models, health, lifecycle ----------------------------------------------


async def test_embeddings_are_deterministic_unit_vectors() -> None:
    """Each text embeds to a unit vector; the same text always to the same one."""
    provider = MockProvider(embedding_dimensions=16)
    first = await provider.embed(EmbeddingRequest(input=["apple", "pear", "apple"]))
    again = await MockProvider(embedding_dimensions=16).embed(EmbeddingRequest(input="apple"))
    apple, pear, apple_again = first.embeddings
    assert len(apple) == 16
    assert math.isclose(math.fsum(x * x for x in apple), 1.0, rel_tol=1e-9)
    assert apple == apple_again == again.embeddings[0]
    assert apple != pear


async def test_embedding_dimensions_come_from_the_request() -> None:
    """A request's dimensions set the vector length."""
    response = await MockProvider().embed(EmbeddingRequest(input="x", dimensions=5))
    assert len(response.embeddings[0]) == 5


async def test_health_reports_the_healthy_flag() -> None:
    """health() reports healthy until the flag is turned off."""
    provider = MockProvider()
    assert (await provider.health()).healthy is True
    provider.healthy = False
    status = await provider.health()
    assert status.healthy is False
    assert status.error_type == "provider_unavailable"


async def test_list_models_reports_the_configured_models() -> None:
    """list_models() names the given models, or the default model."""
    assert [m.id for m in await MockProvider(default_model="m1").list_models()] == ["m1"]
    models = await MockProvider(models=["a", "b"]).list_models()
    assert [(m.id, m.provider) for m in models] == [("a", "mock"), ("b", "mock")]


async def test_async_context_manager_closes_the_provider() -> None:
    """Leaving ``async with`` closes the provider."""
    async with MockProvider() as provider:
        assert provider.closed is False
    assert provider.closed is True
