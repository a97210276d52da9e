"""The response cache stage, over the in-memory and the Redis backend."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from chainweave.errors import InputValidationError, ProviderUnavailableError
from chainweave.pipeline import Call, Pipeline
from chainweave.pipeline.backends import MemoryBackend, RedisBackend, StoreBackend
from chainweave.pipeline.cache import ResponseCache, is_cacheable, replay_chunks
from chainweave.streaming import StreamAccumulator
from chainweave.testing import MockFailure, MockProvider, MockReply, capture_spans
from chainweave.types import (
    ChatModel,
    ChatRequest,
    ChatResponse,
    StreamChunk,
    StreamError,
    ToolCall,
    Usage,
)
from tests.pipeline.conftest import BACKENDS, BackendFactory, unique_prefix
from tests.strategies import chat_requests

LONG_TEXT = ("The quick brown fox jumps over the lazy dog while the cache keeps every word "
             "of this answer for the next identical request to replay.")


def _request(text: str = "hello", **fields: Any) -> ChatRequest:
    fields.setdefault("temperature", 0)
    return ChatRequest.from_prompt(text, model="m", **fields)


@pytest.fixture
def cache(make_backend: BackendFactory) -> ResponseCache:
    """A cache over the parametrised backend."""
    return ResponseCache(make_backend())


async def _chat(stage: ResponseCache, request: ChatRequest,
                model: ChatModel) -> tuple[ChatResponse, Call]:
    call = Call.for_request(request)
    return await stage.chat(request, call, model.chat), call


async def _stream(stage: ResponseCache, request: ChatRequest,
                  model: ChatModel) -> tuple[list[StreamChunk], Call]:
    call = Call.for_request(request, streaming=True)
    return [chunk async for chunk in stage.stream(request, call, model.stream)], call


# --- chat ------------------------------------------------------------------------------


async def test_miss_then_hit(cache: ResponseCache) -> None:
    """The second identical request is answered from the cache, marked cached."""
    provider = MockProvider(["answer"])
    first, first_call = await _chat(cache, _request(), provider)
    second, second_call = await _chat(cache, _request(), provider)
    assert provider.call_count == 1
    assert (first.cached, first_call.cached) == (False, False)
    assert (second.cached, second_call.cached) == (True, True)
    assert second.model_copy(update={"cached": False}) == first


async def test_volatile_fields_share_an_entry(cache: ResponseCache) -> None:
    """Requests differing only in request_id, user, timeout or metadata share an entry."""
    provider = MockProvider()
    await _chat(cache, _request(request_id="a", user="u1"), provider)
    response, _ = await _chat(cache, _request(request_id="b", user="u2", timeout=9,
                                              metadata={"trace": "t"}), provider)
    assert response.cached
    assert provider.call_count == 1


async def test_different_requests_do_not_share(cache: ResponseCache) -> None:
    """A different prompt or parameter is a different entry."""
    provider = MockProvider()
    await _chat(cache, _request("one"), provider)
    await _chat(cache, _request("two"), provider)
    await _chat(cache, _request("one", max_tokens=5), provider)
    assert provider.call_count == 3


@pytest.mark.parametrize(("fields", "cached"), [
    ({"temperature": 0}, True),
    ({"temperature": None}, False),
    ({"temperature": 0.7}, False),
    ({"temperature": 0.7, "metadata": {"cache": True}}, True),
    ({"temperature": None, "metadata": {"cache": True}}, True),
    ({"temperature": 0, "metadata": {"cache": False}}, False),
    ({"temperature": 0, "metadata": {"cache": "no"}}, True),
])
async def test_which_requests_are_cached(cache: ResponseCache, fields: dict[str, Any],
                                         cached: bool) -> None:
    """temperature 0 is cached; metadata cache=True opts in, cache=False opts out."""
    provider = MockProvider()
    request = _request(**fields)
    assert is_cacheable(request) is cached
    await _chat(cache, request, provider)
    second, _ = await _chat(cache, request, provider)
    assert second.cached is cached
    assert provider.call_count == (1 if cached else 2)


async def test_errors_are_not_cached(cache: ResponseCache) -> None:
    """A failed call stores nothing: the next identical request calls again."""
    provider = MockProvider([MockFailure(status=503), "recovered"])
    with pytest.raises(ProviderUnavailableError):
        await _chat(cache, _request(), provider)
    response, _ = await _chat(cache, _request(), provider)
    assert (response.content, response.cached) == ("recovered", False)
    assert provider.call_count == 2


async def test_error_finish_is_not_cached(cache: ResponseCache) -> None:
    """A response with finish_reason "error" is returned but not stored."""
    failed = ChatResponse(id="x", model="m", provider="p", finish_reason="error")
    provider = MockProvider([failed, "fine"])
    first, _ = await _chat(cache, _request(), provider)
    second, _ = await _chat(cache, _request(), provider)
    assert first.finish_reason == "error"
    assert (second.content, second.cached) == ("fine", False)


async def test_concurrent_identical_requests_make_one_call(cache: ResponseCache) -> None:
    """A hundred concurrent identical requests make exactly one provider call."""
    provider = MockProvider(["shared"], latency=0.02)
    results = await asyncio.gather(*(_chat(cache, _request(), provider) for _ in range(100)))
    assert provider.call_count == 1
    assert {response.content for response, _ in results} == {"shared"}
    assert cache.stats()["coalesced"] >= 1


async def test_concurrent_failure_reaches_everyone_and_is_not_stored(
        cache: ResponseCache) -> None:
    """When the shared call fails, every concurrent caller gets the error; none is stored."""
    provider = MockProvider([MockFailure(status=503, latency=0.02), "later"])
    results = await asyncio.gather(*(_chat(cache, _request(), provider) for _ in range(10)),
                                   return_exceptions=True)
    assert all(isinstance(result, ProviderUnavailableError) for result in results)
    assert provider.call_count == 1
    response, _ = await _chat(cache, _request(), provider)
    assert response.content == "later"


async def test_corrupted_entry_is_a_logged_miss(caplog: pytest.LogCaptureFixture,
                                                cache: ResponseCache) -> None:
    """A stored entry that is not a response is logged, missed, and overwritten."""
    request = _request()
    await cache.backend.set(cache.key(request), "{not json", 60)
    provider = MockProvider(["fresh"])
    with caplog.at_level(logging.WARNING, logger="chainweave.pipeline.cache"):
        response, _ = await _chat(cache, request, provider)
    assert (response.content, response.cached) == ("fresh", False)
    assert "could not be read" in caplog.text
    again, _ = await _chat(cache, request, provider)
    assert again.cached
    assert cache.stats()["errors"] == 1


async def test_namespaces_keep_entries_apart(make_backend: BackendFactory) -> None:
    """A namespace function splits one backend into separate caches."""
    backend = make_backend()
    cache = ResponseCache(backend, namespace=lambda r: str(r.metadata.get("tenant")))
    provider = MockProvider()
    await _chat(cache, _request(metadata={"tenant": "a"}), provider)
    hit, _ = await _chat(cache, _request(metadata={"tenant": "a"}), provider)
    other, _ = await _chat(cache, _request(metadata={"tenant": "b"}), provider)
    assert (hit.cached, other.cached) == (True, False)
    assert provider.call_count == 2


async def test_namespace_must_return_a_string() -> None:
    """A namespace function returning something else raises, naming namespace."""
    cache = ResponseCache(namespace=lambda r: 42)  # type: ignore[arg-type,return-value]
    with pytest.raises(InputValidationError) as info:
        await _chat(cache, _request(), MockProvider())
    assert info.value.field == "namespace"


async def test_entries_expire_after_ttl(make_backend: BackendFactory) -> None:
    """After ttl seconds an entry is gone and the provider is asked again."""
    cache = ResponseCache(make_backend(), ttl=0.05)
    provider = MockProvider()
    await _chat(cache, _request(), provider)
    await asyncio.sleep(0.2)
    response, _ = await _chat(cache, _request(), provider)
    assert not response.cached
    assert provider.call_count == 2


async def test_works_inside_a_pipeline(make_backend: BackendFactory) -> None:
    """In a Pipeline, the second identical call is a cached response."""
    provider = MockProvider()
    async with Pipeline(provider, [ResponseCache(make_backend())]) as pipeline:
        await pipeline.chat(_request())
        response = await pipeline.chat(_request())
    assert response.cached
    assert provider.call_count == 1


# --- stats, metrics, spans -------------------------------------------------------------


async def test_stats_count_hits_and_misses(cache: ResponseCache) -> None:
    """stats() counts hits, misses and their ratio."""
    provider = MockProvider()
    for text in ("a", "a", "a", "b"):
        await _chat(cache, _request(text), provider)
    await _chat(cache, _request("c", temperature=1), provider)  # not cacheable: not counted
    stats = cache.stats()
    assert (stats["hits"], stats["misses"], stats["stores"]) == (2, 2, 2)
    assert stats["hit_ratio"] == 0.5


def test_stats_start_at_zero() -> None:
    """A new cache has a hit ratio of 0, not a division by zero."""
    assert ResponseCache().stats()["hit_ratio"] == 0.0


async def test_hits_and_misses_are_metrics() -> None:
    """The chainweave.cache.hits and .misses counters count lookups."""
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    try:
        cache = ResponseCache(meter_provider=meters)
        provider = MockProvider()
        for _ in range(3):
            await _chat(cache, _request(), provider)
        data = reader.get_metrics_data()
    finally:
        meters.shutdown()
    assert data is not None
    values = {metric.name: sum(point.value for point in metric.data.data_points)
              for resource in data.resource_metrics for scope in resource.scope_metrics
              for metric in scope.metrics}
    assert values == {"chainweave.cache.hits": 2, "chainweave.cache.misses": 1}


async def test_hit_adds_a_span_event() -> None:
    """A hit adds a cache.hit event to the current span; a miss does not."""
    cache, provider = ResponseCache(), MockProvider()
    tracer = trace.get_tracer("tests")
    with capture_spans() as spans:
        with tracer.start_as_current_span("miss"):
            await _chat(cache, _request(), provider)
        with tracer.start_as_current_span("hit"):
            await _chat(cache, _request(), provider)
    [miss] = spans.named("miss")
    [hit] = spans.named("hit")
    assert [event.name for event in hit.events] == ["cache.hit"]
    assert list(miss.events) == []


# --- streams ---------------------------------------------------------------------------


def _joined(chunks: list[StreamChunk]) -> ChatResponse:
    accumulator = StreamAccumulator()
    for chunk in chunks:
        accumulator.add(chunk)
    return accumulator.response(provider="p", model="m")


async def test_stream_miss_is_stored_and_replayed(cache: ResponseCache) -> None:
    """A stream that ends is stored; the repeat is replayed as cached chunks."""
    call = ToolCall(id="c1", name="lookup", arguments='{"q": 1}')
    provider = MockProvider([MockReply(LONG_TEXT, tool_calls=[call])])
    live, live_call = await _stream(cache, _request(), provider)
    replayed, replay_call = await _stream(cache, _request(), provider)
    assert provider.call_count == 1
    assert (live_call.cached, replay_call.cached) == (False, True)
    assert not any(chunk.cached for chunk in live)
    assert len(replayed) > 2
    assert all(chunk.cached for chunk in replayed)
    last = replayed[-1]
    assert (last.finish_reason, last.tool_calls, last.usage) == (
        "tool_calls", [call], live[-1].usage)
    assert all(chunk.finish_reason is None for chunk in replayed[:-1])
    assert _joined(replayed).content == LONG_TEXT
    assert _joined(replayed).tool_calls == [call]


async def test_chat_entry_replays_as_stream(cache: ResponseCache) -> None:
    """A response stored by chat is served to a stream, and the other way round."""
    provider = MockProvider([LONG_TEXT])
    await _chat(cache, _request("one"), provider)
    chunks, _ = await _stream(cache, _request("one"), provider)
    assert _joined(chunks).content == LONG_TEXT
    await _stream(cache, _request("two"), provider)
    response, _ = await _chat(cache, _request("two"), provider)
    assert (response.cached, response.content) == (True, LONG_TEXT)
    assert provider.call_count == 2


class Source:
    """A stream source that records whether it was closed, and can fail midway."""

    def __init__(self, fail: bool = False, error_chunk: bool = False) -> None:
        self.fail, self.error_chunk = fail, error_chunk
        self.calls = 0
        self.closed = False

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        self.calls += 1
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[StreamChunk]:
        try:
            for word in ("one ", "two ", "three"):
                yield StreamChunk(delta=word, provider="src", model="m")
            if self.fail:
                raise ProviderUnavailableError("broke", provider="src")
            if self.error_chunk:
                yield StreamChunk(finish_reason="error", error=StreamError(
                    error_type="x", error_code="X", message="broke"))
                return
            yield StreamChunk(finish_reason="stop", usage=Usage(prompt_tokens=1))
        finally:
            self.closed = True


async def test_abandoned_stream_is_not_stored_and_is_closed(cache: ResponseCache) -> None:
    """A stream the consumer stops reading is closed inside and not stored."""
    source = Source()
    request = _request()
    stream = cache.stream(request, Call.for_request(request, streaming=True), source.stream)
    async for _ in stream:
        break
    await stream.aclose()  # type: ignore[attr-defined]
    assert source.closed
    chunks = [c async for c in cache.stream(request, Call.for_request(request), source.stream)]
    assert source.calls == 2
    assert not any(chunk.cached for chunk in chunks)


@pytest.mark.parametrize("failure", [{"fail": True}, {"error_chunk": True}],
                         ids=["raised", "error-chunk"])
async def test_failed_stream_is_not_stored(cache: ResponseCache,
                                           failure: dict[str, bool]) -> None:
    """A stream that raised or ended with an error chunk is not stored."""
    source, request = Source(**failure), _request()
    for _ in range(2):
        try:
            async for _chunk in cache.stream(request, Call.for_request(request),
                                             source.stream):
                pass
        except ProviderUnavailableError:
            pass
    assert source.calls == 2
    assert source.closed


async def test_uncacheable_stream_passes_through(cache: ResponseCache) -> None:
    """A stream that may not be cached is the inner stream itself."""
    source = Source()
    request = _request(temperature=1)
    stream = cache.stream(request, Call.for_request(request), source.stream)
    assert [c.delta async for c in stream][:3] == ["one ", "two ", "three"]
    assert cache.stats()["misses"] == 0


# --- replayed chunks -------------------------------------------------------------------


def test_replay_chunks_join_up_to_the_response() -> None:
    """Replayed chunks carry the whole text, split in several chunks, ids on each."""
    response = ChatResponse(id="r1", model="m", provider="p", content=LONG_TEXT,
                            refusal=None, finish_reason="length", raw_finish_reason="max",
                            usage=Usage(prompt_tokens=3, completion_tokens=4))
    chunks = replay_chunks(response)
    assert len(chunks) > 2
    assert "".join(chunk.delta for chunk in chunks) == LONG_TEXT
    assert all((c.id, c.model, c.provider, c.cached) == ("r1", "m", "p", True) for c in chunks)
    assert (chunks[-1].finish_reason, chunks[-1].raw_finish_reason) == ("length", "max")
    assert chunks[-1].usage == response.usage


def test_replay_of_empty_text_is_one_final_chunk() -> None:
    """A response without text replays as its final chunk alone."""
    response = ChatResponse(id="r", model="m", provider="p", refusal="no",
                            finish_reason="content_filter")
    [chunk] = replay_chunks(response)
    assert (chunk.refusal, chunk.finish_reason, chunk.cached) == ("no", "content_filter", True)


@given(st.text(max_size=300))
def test_replay_chunks_keep_any_text(text: str) -> None:
    """Whatever the text, the replayed deltas join up to exactly it."""
    response = ChatResponse(id="r", model="m", provider="p", content=text)
    assert "".join(chunk.delta for chunk in replay_chunks(response)) == text


# --- settings --------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "kwargs"), [
    ("ttl", {"ttl": 0}), ("ttl", {"ttl": -1}), ("ttl", {"ttl": "60"}),
    ("max_size", {"max_size": 0}), ("backend", {"backend": {}}),
    ("namespace", {"namespace": "tenant"}),
])
def test_bad_settings_are_refused(field: str, kwargs: dict[str, Any]) -> None:
    """Bad settings raise InputValidationError naming the setting."""
    with pytest.raises(InputValidationError) as info:
        ResponseCache(**kwargs)
    assert info.value.field == field


def test_given_backend_is_used_even_when_empty() -> None:
    """An empty backend passed in is the one used (not replaced because it is falsy)."""
    backend = MemoryBackend()
    assert ResponseCache(backend).backend is backend
    assert isinstance(ResponseCache().backend, StoreBackend)


# --- property --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", BACKENDS)
@settings(max_examples=25, deadline=None)
@given(request=chat_requests(), latency=st.sampled_from([0.0, 0.001, 0.005]),
       delays=st.lists(st.integers(0, 5), min_size=100, max_size=100))
def test_concurrent_identical_requests_make_one_call_property(
        kind: str, redis_url: str, request: ChatRequest, latency: float,
        delays: list[int]) -> None:
    """Whatever the request, latency and arrival order, 100 identical concurrent
    cacheable requests make exactly one provider call and all get its answer."""
    cacheable = request.model_copy(update={"temperature": 0.0, "metadata": {},
                                           "timeout": None})
    asyncio.run(_identical_requests(kind, redis_url, cacheable, latency, delays))


async def _identical_requests(kind: str, redis_url: str, request: ChatRequest,
                              latency: float, delays: list[int]) -> None:
    backend = RedisBackend(redis_url, prefix=unique_prefix()) if kind == "redis" else None
    cache, provider = ResponseCache(backend), MockProvider(latency=latency)

    async def one(delay: int) -> ChatResponse:
        for _ in range(delay):
            await asyncio.sleep(0)
        return (await _chat(cache, request, provider))[0]

    try:
        responses = await asyncio.gather(*(one(delay) for delay in delays))
    finally:
        await cache.aclose()
    assert provider.call_count == 1
    assert len({response.content for response in responses}) == 1
