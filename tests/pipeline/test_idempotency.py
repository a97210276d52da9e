"""The idempotency stage, over the in-memory and the Redis backend."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainweave.errors import (
    IdempotencyConflictError,
    InputValidationError,
    ProviderUnavailableError,
)
from chainweave.pipeline import Call, Pipeline
from chainweave.pipeline.backends import RedisBackend, StoreBackend
from chainweave.pipeline.cache import ResponseCache
from chainweave.pipeline.idempotency import Idempotency
from chainweave.streaming import StreamAccumulator
from chainweave.testing import FunctionProvider, MockProvider
from chainweave.types import ChatModel, ChatRequest, ChatResponse, StreamChunk
from tests.pipeline.conftest import BACKENDS, BackendFactory, unique_prefix

SECRET_PROMPT = "my account number is 12345678"


def _request(text: str = "hello", request_id: str | None = "req-1", **fields: Any
             ) -> ChatRequest:
    return ChatRequest.from_prompt(text, model="m", request_id=request_id, **fields)


@pytest.fixture
def stage(make_backend: BackendFactory) -> Idempotency:
    """An idempotency stage over the parametrised backend, polling often."""
    return Idempotency(make_backend(), poll_interval=0.01)


class Gate:
    """A provider whose calls wait until the test opens the gate."""

    def __init__(self, reply: str | Exception = "answer") -> None:
        self.opened = asyncio.Event()
        self.calls = 0
        self.reply = reply
        self.provider = FunctionProvider(self._answer)

    async def _answer(self, request: ChatRequest) -> str:
        self.calls += 1
        await self.opened.wait()
        if isinstance(self.reply, Exception):
            raise self.reply
        return f"{self.reply}: {request.messages[-1].text}"


async def _chat(stage: Idempotency, request: ChatRequest,
                model: ChatModel) -> tuple[ChatResponse, Call]:
    call = Call.for_request(request)
    return await stage.chat(request, call, model.chat), call


async def _stream(stage: Idempotency, request: ChatRequest,
                  model: ChatModel) -> tuple[list[StreamChunk], Call]:
    call = Call.for_request(request, streaming=True)
    return [chunk async for chunk in stage.stream(request, call, model.stream)], call


def _text(chunks: list[StreamChunk]) -> str:
    accumulator = StreamAccumulator()
    for chunk in chunks:
        accumulator.add(chunk)
    return accumulator.text


async def _settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def _until(condition: Callable[[], bool]) -> None:
    """Wait (a few seconds at most) until ``condition`` holds, e.g. a call has started."""
    for _ in range(5000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("the condition never held")


# --- chat ------------------------------------------------------------------------------


async def test_without_request_id_passes_through(stage: Idempotency) -> None:
    """Requests without request_id are never deduplicated."""
    provider = MockProvider()
    for _ in range(2):
        response, call = await _chat(stage, _request(request_id=None), provider)
        assert not (response.cached)
        assert not (call.replayed)
    assert provider.call_count == 2


async def test_repeat_is_replayed(stage: Idempotency) -> None:
    """A repeated request_id with the same payload is answered without a provider call."""
    provider = MockProvider(["first answer", "second answer"])
    first, first_call = await _chat(stage, _request(), provider)
    again, again_call = await _chat(stage, _request(metadata={"retry": 1}), provider)
    assert provider.call_count == 1
    assert (first.cached, first_call.replayed) == (False, False)
    assert (again.cached, again_call.replayed) == (True, True)
    assert again.content == "first answer"
    assert again.model_copy(update={"cached": False}) == first


async def test_repeat_behind_a_cache_is_replayed_as_the_cache_stored_it(
        make_backend: BackendFactory) -> None:
    """In front of the response cache, a repeat gets the response the cache stored."""
    cache = ResponseCache(make_backend())
    pipeline = Pipeline(MockProvider(["first answer"]), [Idempotency(make_backend()), cache])
    request = _request(temperature=0)
    first = await pipeline.chat(request)
    again = await pipeline.chat(request)
    assert (first.cached, again.cached) == (False, True)
    assert again.model_copy(update={"cached": False}) == first
    stored = await cache.backend.get(cache.key(request))
    assert stored is not None
    assert ChatResponse.model_validate_json(stored) == again


async def test_other_ids_are_separate(stage: Idempotency) -> None:
    """Each request_id is answered once, however similar the payloads."""
    provider = MockProvider()
    await _chat(stage, _request(request_id="a"), provider)
    await _chat(stage, _request(request_id="b"), provider)
    assert provider.call_count == 2


async def test_same_id_other_payload_conflicts(stage: Idempotency) -> None:
    """The same request_id with another payload raises a 409 naming the id, not the text."""
    provider = MockProvider()
    await _chat(stage, _request("first"), provider)
    with pytest.raises(IdempotencyConflictError) as info:
        await _chat(stage, _request(SECRET_PROMPT), provider)
    error = info.value
    assert error.status_code == 409
    assert "req-1" in error.message
    assert error.details == {"request_id": "req-1"}
    assert SECRET_PROMPT not in str(error)
    assert "12345678" not in repr(error.to_dict())
    assert provider.call_count == 1


async def test_repeats_wait_for_the_call_in_flight(stage: Idempotency) -> None:
    """Repeats arriving while the first call runs wait and get its response."""
    gate = Gate()
    tasks = [asyncio.create_task(_chat(stage, _request(), gate.provider)) for _ in range(20)]
    await _settle()
    gate.opened.set()
    results = await asyncio.gather(*tasks)
    assert gate.calls == 1
    assert {response.content for response, _ in results} == {"answer: hello"}
    assert sum(not call.replayed for _, call in results) == 1


async def test_conflict_while_in_flight(stage: Idempotency) -> None:
    """Another payload under a request_id still in flight conflicts at once."""
    gate = Gate()
    first = asyncio.create_task(_chat(stage, _request("first"), gate.provider))
    await _settle()
    with pytest.raises(IdempotencyConflictError):
        await _chat(stage, _request("second"), gate.provider)
    gate.opened.set()
    response, _ = await first
    assert response.content == "answer: first"
    assert gate.calls == 1


async def test_failure_reaches_waiters_and_is_not_stored(stage: Idempotency) -> None:
    """When the first call fails, its waiters get that error, and a retry calls again."""
    error = ProviderUnavailableError("down", provider="p")
    gate = Gate(error)
    tasks = [asyncio.create_task(_chat(stage, _request(), gate.provider)) for _ in range(5)]
    await _settle()
    gate.opened.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results == [error] * 5
    assert gate.calls == 1
    gate.reply = "recovered"
    response, call = await _chat(stage, _request(), gate.provider)
    assert (response.content, call.replayed) == ("recovered: hello", False)
    assert gate.calls == 2


async def test_cancelled_first_call_hands_over_to_a_waiter(stage: Idempotency) -> None:
    """When the first caller is cancelled, a waiter makes the call; nothing is lost."""
    gate = Gate()
    first = asyncio.create_task(_chat(stage, _request(), gate.provider))
    # Cancel inside the provider call: on Python 3.11, asyncio.wait_for (used by the
    # Redis client) can swallow a cancellation that lands as a reply arrives.
    await _until(lambda: gate.calls == 1)
    waiter = asyncio.create_task(_chat(stage, _request(), gate.provider))
    await _settle()
    first.cancel()
    await _settle()
    gate.opened.set()
    response, call = await waiter
    assert first.cancelled()
    assert (response.content, call.replayed) == ("answer: hello", False)
    assert gate.calls == 2
    replay, replay_call = await _chat(stage, _request(), gate.provider)
    assert replay_call.replayed
    assert replay.content == "answer: hello"
    assert gate.calls == 2


async def test_results_expire_after_ttl(make_backend: BackendFactory) -> None:
    """After ttl seconds the request_id is free again and the call is made anew."""
    stage = Idempotency(make_backend(), ttl=0.05)
    provider = MockProvider()
    await _chat(stage, _request(), provider)
    await asyncio.sleep(0.2)
    response, call = await _chat(stage, _request("a different payload"), provider)
    assert not call.replayed
    assert "a different payload" in response.content
    assert provider.call_count == 2


async def test_error_finish_is_not_stored(stage: Idempotency) -> None:
    """A response with finish_reason "error" is returned but not stored."""
    failed = ChatResponse(id="x", model="m", provider="p", finish_reason="error")
    provider = MockProvider([failed, "fine"])
    first, _ = await _chat(stage, _request(), provider)
    second, call = await _chat(stage, _request(), provider)
    assert first.finish_reason == "error"
    assert (second.content, call.replayed) == ("fine", False)


async def test_corrupted_entry_is_logged_and_replaced(caplog: pytest.LogCaptureFixture,
                                                      stage: Idempotency) -> None:
    """A stored entry that cannot be read is logged, dropped, and the call made."""
    await stage.backend.set("idem:req-1", '{"v": 1, "state": "done"', 60)
    provider = MockProvider(["fresh"])
    with caplog.at_level(logging.WARNING, logger="chainweave.pipeline.idempotency"):
        response, _ = await _chat(stage, _request(), provider)
    assert response.content == "fresh"
    assert "corrupted" in caplog.text
    again, call = await _chat(stage, _request(), provider)
    assert call.replayed
    assert again.content == "fresh"


async def test_works_inside_a_pipeline(make_backend: BackendFactory) -> None:
    """In a Pipeline, a retried request_id returns the stored response."""
    provider = MockProvider()
    async with Pipeline(provider, [Idempotency(make_backend())]) as pipeline:
        first = await pipeline.chat(_request())
        again = await pipeline.chat(_request())
    assert (first.cached, again.cached) == (False, True)
    assert provider.call_count == 1


# --- several processes sharing one store -----------------------------------------------


async def test_other_process_waits_for_the_claim(make_backend: BackendFactory) -> None:
    """A second stage on the same store waits for the first's call and replays it."""
    backend = make_backend()
    first, second = (Idempotency(backend, poll_interval=0.01) for _ in range(2))
    gate, other = Gate(), MockProvider()
    running = asyncio.create_task(_chat(first, _request(), gate.provider))
    await _until(lambda: gate.calls == 1)
    waiting = asyncio.create_task(_chat(second, _request(), other))
    await asyncio.sleep(0.03)  # let it poll the claim a few times
    with pytest.raises(IdempotencyConflictError):
        await _chat(second, _request("another payload"), other)
    gate.opened.set()
    (response, _), (replayed, call) = await asyncio.gather(running, waiting)
    assert call.replayed
    assert replayed.content == response.content
    assert (gate.calls, other.call_count) == (1, 0)


async def test_expired_claim_is_taken_over(make_backend: BackendFactory) -> None:
    """When a claim outlives wait_timeout, a waiting process makes the call itself,
    and the stalled owner later releases nothing that is not its own."""
    backend = make_backend()
    stalled = Idempotency(backend, wait_timeout=0.1, poll_interval=0.01)
    taker = Idempotency(backend, poll_interval=0.01)
    gate, other = Gate(), MockProvider(["taken over"])
    stuck = asyncio.create_task(_chat(stalled, _request(), gate.provider))
    await _until(lambda: gate.calls == 1)
    response, call = await _chat(taker, _request(), other)
    assert (response.content, call.replayed) == ("taken over", False)
    stuck.cancel()
    await asyncio.gather(stuck, return_exceptions=True)
    replay, replay_call = await _chat(Idempotency(backend), _request(), MockProvider())
    assert replay_call.replayed
    assert replay.content == "taken over"


async def test_waiter_takes_over_a_call_past_wait_timeout(stage: Idempotency) -> None:
    """A repeat waiting on a first call that runs past wait_timeout makes the call."""
    stage = Idempotency(stage.backend, wait_timeout=0.1, poll_interval=0.01)
    hang = asyncio.Event()
    calls: list[str] = []

    async def answer(request: ChatRequest) -> str:
        calls.append(request.messages[-1].text)
        if len(calls) == 1:
            await hang.wait()  # the first call never ends
        return f"answer {len(calls)}"

    provider = FunctionProvider(answer)
    stuck = asyncio.create_task(_chat(stage, _request(), provider))
    await _until(lambda: len(calls) == 1)
    async with asyncio.timeout(30):  # a guard: without the takeover this would hang
        response, call = await _chat(stage, _request(), provider)
    assert (response.content, call.replayed) == ("answer 2", False)
    stuck.cancel()
    await asyncio.gather(stuck, return_exceptions=True)
    replay, replay_call = await _chat(stage, _request(), provider)
    assert replay_call.replayed
    assert replay.content == "answer 2"


# --- streams ---------------------------------------------------------------------------

LONG = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"


async def test_stream_is_stored_and_replayed_as_stream(stage: Idempotency) -> None:
    """A first stream passes through and is stored; its repeat is replayed as a stream."""
    provider = MockProvider([LONG])
    live, live_call = await _stream(stage, _request(), provider)
    replay, replay_call = await _stream(stage, _request(), provider)
    assert provider.call_count == 1
    assert (live_call.replayed, replay_call.replayed) == (False, True)
    assert _text(live) == _text(replay) == LONG
    assert len(replay) > 2
    assert all(chunk.cached for chunk in replay)
    response, call = await _chat(stage, _request(), provider)
    assert (response.content, call.replayed, provider.call_count) == (LONG, True, 1)


async def test_chat_result_replays_as_stream(stage: Idempotency) -> None:
    """A stream repeating a chat's request_id is the chat's response, streamed."""
    provider = MockProvider([LONG])
    await _chat(stage, _request(), provider)
    chunks, call = await _stream(stage, _request(), provider)
    assert (_text(chunks), call.replayed, provider.call_count) == (LONG, True, 1)


async def test_stream_conflict(stage: Idempotency) -> None:
    """A stream reusing a request_id with another payload raises the conflict."""
    provider = MockProvider()
    await _chat(stage, _request("first"), provider)
    with pytest.raises(IdempotencyConflictError):
        await _stream(stage, _request("second"), provider)


async def test_stream_without_request_id_passes_through(stage: Idempotency) -> None:
    """A stream without request_id is the inner stream, never stored."""
    provider = MockProvider()
    for _ in range(2):
        chunks, call = await _stream(stage, _request(request_id=None), provider)
        assert not call.replayed
        assert not any(chunk.cached for chunk in chunks)
    assert provider.call_count == 2


async def test_waiter_gets_the_streams_result(stage: Idempotency) -> None:
    """A chat repeating a request_id whose stream is running waits for it to end."""
    provider = MockProvider([LONG], chunk_delay=0.01)
    stream_task = asyncio.create_task(_stream(stage, _request(), provider))
    await asyncio.sleep(0.02)
    response, call = await _chat(stage, _request(), provider)
    chunks, _ = await stream_task
    assert (response.content, call.replayed) == (LONG, True)
    assert _text(chunks) == LONG
    assert provider.call_count == 1


class Source:
    """A stream source that records closing and can break midway."""

    def __init__(self, fail: bool = False) -> None:
        self.fail, self.calls, self.closed = fail, 0, False

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        self.calls += 1
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[StreamChunk]:
        try:
            yield StreamChunk(delta="partial ", provider="src")
            if self.fail:
                raise ProviderUnavailableError("broke", provider="src")
            yield StreamChunk(finish_reason="stop")
        finally:
            self.closed = True


async def test_abandoned_stream_is_not_stored(stage: Idempotency) -> None:
    """A stream its consumer stops reading is closed, not stored, and its id freed."""
    source, request = Source(), _request()
    stream = stage.stream(request, Call.for_request(request), source.stream)
    async for _ in stream:
        break
    await stream.aclose()  # type: ignore[attr-defined]
    assert source.closed
    chunks, call = await _stream(stage, request, source)  # type: ignore[arg-type]
    assert not call.replayed
    assert source.calls == 2
    assert _text(chunks) == "partial "


async def test_broken_stream_is_not_stored(stage: Idempotency) -> None:
    """A stream that raised stores nothing: a retry streams from the provider again."""
    source, request = Source(fail=True), _request()
    for _ in range(2):
        with pytest.raises(ProviderUnavailableError):
            await _stream(stage, request, source)  # type: ignore[arg-type]
    assert source.calls == 2
    assert source.closed


# --- settings --------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "kwargs"), [
    ("ttl", {"ttl": 0}), ("ttl", {"ttl": float("nan")}), ("max_size", {"max_size": 0}),
    ("wait_timeout", {"wait_timeout": -1}), ("poll_interval", {"poll_interval": 0}),
    ("backend", {"backend": "redis://x"}),
])
def test_bad_settings_are_refused(field: str, kwargs: dict[str, Any]) -> None:
    """Bad settings raise InputValidationError naming the setting."""
    with pytest.raises(InputValidationError) as info:
        Idempotency(**kwargs)
    assert info.value.field == field


def test_default_backend_is_a_store() -> None:
    """Without a backend, an in-memory store is used."""
    assert isinstance(Idempotency().backend, StoreBackend)


# --- property --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", BACKENDS)
@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from([0, 1]),
                          st.integers(0, 6)), min_size=1, max_size=24),
       st.integers(0, 4))
def test_idempotency_under_concurrency(kind: str, redis_url: str,
                                       tasks: list[tuple[str, int, int]],
                                       provider_yields: int) -> None:
    """Random interleavings of tasks over a few request_ids and two payloads: one
    provider call per request_id, the other payload conflicts, and everyone with the
    winning payload gets the same response."""
    asyncio.run(_interleaving(kind, redis_url, tasks, provider_yields))


async def _interleaving(kind: str, redis_url: str, tasks: list[tuple[str, int, int]],
                        provider_yields: int) -> None:
    backend = RedisBackend(redis_url, prefix=unique_prefix()) if kind == "redis" else None
    stage = Idempotency(backend, poll_interval=0.001)
    try:
        await _check_interleaving(stage, tasks, provider_yields)
    finally:
        await stage.aclose()


async def _check_interleaving(stage: Idempotency, tasks: list[tuple[str, int, int]],
                              provider_yields: int) -> None:
    calls: Counter[str] = Counter()
    counter = iter(range(10**6))

    async def answer(request: ChatRequest) -> str:
        calls[str(request.request_id)] += 1
        for _ in range(provider_yields):
            await asyncio.sleep(0)
        return f"{request.messages[-1].text}#{next(counter)}"

    provider = FunctionProvider(answer)

    async def one(request_id: str, payload: int, delay: int) -> tuple[str, int, object]:
        for _ in range(delay):
            await asyncio.sleep(0)
        request = _request(f"payload-{payload}", request_id=request_id)
        try:
            return request_id, payload, (await _chat(stage, request, provider))[0].content
        except IdempotencyConflictError as error:
            return request_id, payload, error

    outcomes = await asyncio.gather(*(one(*task) for task in tasks))
    for request_id in {request_id for request_id, _, _ in tasks}:
        mine = [(payload, result) for rid, payload, result in outcomes if rid == request_id]
        answers = {result for _, result in mine if isinstance(result, str)}
        [winner] = {payload for payload, result in mine if isinstance(result, str)}
        assert calls[request_id] == 1
        assert len(answers) == 1
        assert next(iter(answers)).startswith(f"payload-{winner}#")
        assert all(isinstance(result, IdempotencyConflictError)
                   for payload, result in mine if payload != winner)
