"""The response cache stage: deterministic requests are answered once.

Only requests that ask for a deterministic answer are cached: ``temperature == 0``, or
any request whose ``metadata`` says ``{"cache": True}``; ``{"cache": False}`` always
bypasses the cache. The key is the request's fingerprint
(:func:`~chainweave.pipeline.keys.request_fingerprint`), so ``request_id``, ``user``,
``timeout`` and ``metadata`` do not split entries; a ``namespace`` function can (one
cache per tenant, say).

A hit returns the stored response with ``cached=True`` and sets ``Call.cached``; a
streamed hit replays it as a stream of chunks marked ``cached``. A miss asks the rest of
the pipeline once, however many identical requests arrive together (single-flight), and
stores the answer unless it failed. A stream is stored only when it ran to its end.

Hits and misses are counted by :meth:`ResponseCache.stats` and by the OpenTelemetry
counters ``chainweave.cache.hits`` and ``chainweave.cache.misses``; a hit adds the span
event ``cache.hit`` to the current span.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from opentelemetry import metrics, trace

from chainweave._internal.redact import get_logger
from chainweave.errors import InputValidationError
from chainweave.pipeline.backends import MemoryBackend, StoreBackend, check_size, check_ttl
from chainweave.pipeline.base import Call, NextChat, NextStream, Stage, closing_stream
from chainweave.pipeline.keys import call_fingerprint, request_fingerprint
from chainweave.pipeline.singleflight import SingleFlight
from chainweave.streaming import StreamAccumulator
from chainweave.types import ChatRequest, ChatResponse, StreamChunk

__all__ = ["ResponseCache", "StreamRecorder", "is_cacheable", "replay_chunks", "stored_json"]

logger = get_logger("chainweave.pipeline.cache")

_WORD_START = re.compile(r"(?<=\s)(?=\S)")
_PIECE_CHARS = 32
_KEY_PREFIX = "cache:"
_STORED = "chainweave.cache.stored"


# --- streams: replaying a stored response, recording a live one -----------------------


def _pieces(text: str) -> list[str]:
    """``text`` cut at word starts into pieces of about ``_PIECE_CHARS``; they join to it."""
    pieces: list[str] = []
    current = ""
    for word in _WORD_START.split(text):
        current += word
        if len(current) >= _PIECE_CHARS:
            pieces.append(current)
            current = ""
    if current:
        pieces.append(current)
    return pieces


def replay_chunks(response: ChatResponse) -> list[StreamChunk]:
    """The stream a stored ``response`` is replayed as, every chunk marked ``cached``.

    The text comes in several chunks cut at word boundaries; the last chunk carries the
    refusal, the tool calls, the finish reason and the usage, as a live stream's does.
    """
    ids: dict[str, Any] = {"id": response.id, "model": response.model,
                           "provider": response.provider, "cached": True}
    chunks = [StreamChunk(delta=piece, **ids) for piece in _pieces(response.content)]
    chunks.append(StreamChunk(
        refusal=response.refusal, tool_calls=response.tool_calls,
        finish_reason=response.finish_reason, raw_finish_reason=response.raw_finish_reason,
        usage=response.usage, **ids))
    return chunks


class StreamRecorder:
    """Folds the chunks of a stream passing through into the response they add up to.

    Args:
        request: The request being streamed; its model names the response when the
            chunks do not.
    """

    __slots__ = ("_accumulator", "_failed", "_model", "_provider", "_started")

    def __init__(self, request: ChatRequest) -> None:
        self._accumulator = StreamAccumulator()
        self._model = request.model or ""
        self._provider = ""
        self._failed = False
        self._started = time.perf_counter()

    def add(self, chunk: StreamChunk) -> None:
        """Fold one chunk in."""
        self._accumulator.add(chunk)
        self._provider = self._provider or chunk.provider or ""
        self._failed = self._failed or chunk.error is not None

    def response(self) -> ChatResponse | None:
        """The whole response, or ``None`` when the stream did not end well.

        A stream ends well when a chunk carried a finish reason other than ``"error"``
        and no chunk carried an error.
        """
        finish = self._accumulator.finish_reason
        if self._failed or finish is None or finish == "error":
            return None
        latency = (time.perf_counter() - self._started) * 1000
        return self._accumulator.response(provider=self._provider, model=self._model,
                                          latency_ms=latency)


def stored_json(response: ChatResponse, call: Call) -> str:
    """The JSON to keep ``response`` as: the text the cache stored for this very response
    during ``call`` (marked ``cached``, as every replay is anyway), else its own JSON.

    The idempotency stage keeps the response the cache has just stored: one
    serialization serves both.
    """
    memo = call.annotations.get(_STORED)
    return memo[1] if memo is not None and memo[0] is response else response.model_dump_json()


def is_cacheable(request: ChatRequest) -> bool:
    """Whether the cache may answer ``request``.

    ``metadata["cache"]`` decides when it is ``True`` or ``False``; otherwise only a
    request with ``temperature == 0`` is cached (an unset temperature is the provider's
    default, which is rarely 0).
    """
    choice = request.metadata.get("cache")
    if choice is True or choice is False:
        return choice
    return request.temperature == 0


# --- the stage -------------------------------------------------------------------------


class ResponseCache(Stage):
    """Answer repeated deterministic requests from a store instead of the provider.

    Args:
        backend: Where entries live; a :class:`~chainweave.pipeline.backends.MemoryBackend`
            of ``max_size`` entries when left out. Share a
            :class:`~chainweave.pipeline.backends.RedisBackend` between processes.
        ttl: Seconds an entry lives.
        max_size: The most entries the default in-memory backend keeps.
        namespace: A function of the request whose result is put in the key, to keep
            separate caches (per tenant, per prompt version) in one backend.
        meter_provider: Where the hit and miss counters go; the global one by default.

    Raises:
        InputValidationError: for a ``ttl`` that is not > 0, a ``max_size`` below 1, or
            a ``backend`` or ``namespace`` of the wrong kind.
    """

    name = "cache"

    def __init__(self, backend: StoreBackend | None = None, *, ttl: float = 3600.0,
                 max_size: int = 1000,
                 namespace: Callable[[ChatRequest], str] | None = None,
                 meter_provider: metrics.MeterProvider | None = None) -> None:
        self._ttl = check_ttl("ResponseCache", "ttl", ttl)
        check_size("ResponseCache", "max_size", max_size)
        if backend is not None and not isinstance(backend, StoreBackend):
            raise InputValidationError(
                f"ResponseCache.backend must be a StoreBackend, got {type(backend).__name__}",
                field="backend")
        if namespace is not None and not callable(namespace):
            raise InputValidationError("ResponseCache.namespace must be a function of the "
                                       "request", field="namespace")
        self._backend: StoreBackend = (
            backend if backend is not None else MemoryBackend(max_size, self._ttl))
        self._namespace = namespace
        self._flight: SingleFlight[tuple[ChatResponse, bool]] = SingleFlight()
        self._counts = dict.fromkeys(("hits", "misses", "coalesced", "stores", "errors"), 0)
        meter = metrics.get_meter("chainweave", meter_provider=meter_provider)
        self._hit_counter = meter.create_counter(
            "chainweave.cache.hits", unit="{request}",
            description="Requests the response cache answered")
        self._miss_counter = meter.create_counter(
            "chainweave.cache.misses", unit="{request}",
            description="Cacheable requests the response cache could not answer")

    def __repr__(self) -> str:
        return f"ResponseCache(backend={self._backend!r}, ttl={self._ttl:g})"

    @property
    def backend(self) -> StoreBackend:
        """Where the entries live."""
        return self._backend

    def stats(self) -> dict[str, float]:
        """Counts since the stage was built.

        ``hits`` and ``misses`` count cacheable requests by lookup result, ``hit_ratio``
        is hits over both, ``coalesced`` counts misses that shared another request's
        provider call, ``stores`` the responses stored, ``errors`` the corrupted entries
        and failed backend calls met.
        """
        counts = self._counts
        looked_up = counts["hits"] + counts["misses"]
        return {**counts, "hit_ratio": counts["hits"] / looked_up if looked_up else 0.0}

    def key(self, request: ChatRequest, call: Call | None = None) -> str:
        """The backend key of ``request``: namespace and fingerprint."""
        fingerprint = request_fingerprint(request) if call is None \
            else call_fingerprint(request, call)
        if self._namespace is None:
            return _KEY_PREFIX + fingerprint
        space = self._namespace(request)
        if not isinstance(space, str):
            raise InputValidationError(
                f"ResponseCache.namespace must return a string, got {type(space).__name__}",
                field="namespace")
        return f"{_KEY_PREFIX}{space}:{fingerprint}"

    async def chat(self, request: ChatRequest, call: Call, call_next: NextChat) -> ChatResponse:
        """Answer from the cache, or once from ``call_next`` for all concurrent twins."""
        if not is_cacheable(request):
            return await call_next(request)
        key = self.key(request, call)
        stored = await self._lookup(key)
        if stored is not None:
            self._hit(call, key)
            return stored
        self._miss()
        if key in self._flight:
            self._counts["coalesced"] += 1

        async def fill() -> tuple[ChatResponse, bool]:
            # Another process, or a flight that just ended, may have stored it meanwhile.
            again = await self._lookup(key)
            if again is not None:
                return again, True
            response = await call_next(request)
            await self._store(key, response, call)
            return response, False

        response, cached = await self._flight.do(key, fill)
        call.cached = call.cached or cached
        return response

    def stream(self, request: ChatRequest, call: Call,
               call_next: NextStream) -> AsyncIterator[StreamChunk]:
        """Replay a stored answer as a stream, or stream from ``call_next`` and store it."""
        if not is_cacheable(request):
            return call_next(request)
        return self._stream(request, call, call_next)

    async def _stream(self, request: ChatRequest, call: Call,
                      call_next: NextStream) -> AsyncIterator[StreamChunk]:
        key = self.key(request, call)
        stored = await self._lookup(key)
        if stored is not None:
            self._hit(call, key)
            for chunk in replay_chunks(stored):
                yield chunk
            return
        self._miss()
        recorder = StreamRecorder(request)
        async with closing_stream(call_next(request)) as chunks:
            async for chunk in chunks:
                recorder.add(chunk)
                yield chunk
        # Reached only when the stream ran to its end: not when it raised, nor when the
        # consumer stopped reading (the generator is closed at the yield above).
        response = recorder.response()
        if response is not None:
            await self._store(key, response, call)

    async def aclose(self) -> None:
        """Close the backend."""
        await self._backend.aclose()

    # --- bookkeeping --------------------------------------------------------------------

    def _hit(self, call: Call, key: str) -> None:
        self._counts["hits"] += 1
        self._hit_counter.add(1)
        call.cached = True
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event("cache.hit", {"chainweave.cache.key": key})

    def _miss(self) -> None:
        self._counts["misses"] += 1
        self._miss_counter.add(1)

    async def _lookup(self, key: str) -> ChatResponse | None:
        """The stored response, or ``None``; a corrupted entry is logged and removed."""
        raw: str | None = None
        try:
            raw = await self._backend.get(key)
            return None if raw is None else ChatResponse.model_validate_json(raw)
        except Exception as exc:
            # A cache is an optimisation: its failures must not fail the call.
            self._counts["errors"] += 1
            logger.warning("response cache entry %s could not be read (%s); treating it as "
                           "a miss", key, type(exc).__name__)
        if raw is not None:
            await self._discard(key, raw)
        return None

    async def _discard(self, key: str, raw: str) -> None:
        try:
            await self._backend.delete(key, only_if=raw)
        except Exception as exc:
            logger.warning("response cache could not remove %s (%s)", key, type(exc).__name__)

    async def _store(self, key: str, response: ChatResponse, call: Call) -> None:
        if response.finish_reason == "error":
            return
        value = response.model_copy(update={"cached": True}).model_dump_json()
        call.annotations[_STORED] = (response, value)  # see stored_json
        try:
            await self._backend.set(key, value, self._ttl)
        except Exception as exc:
            self._counts["errors"] += 1
            logger.warning("response cache could not store %s (%s)", key, type(exc).__name__)
            return
        self._counts["stores"] += 1
