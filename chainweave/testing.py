"""Test doubles for code built on chainweave.

* :class:`MockProvider` answers offline from a script or from the prompt, with
  latency, streaming, tool calls and injected failures (:class:`MockReply`,
  :class:`MockFailure`).
* :class:`FunctionProvider` answers with a function of the request.
* :class:`RecordingModel` wraps any :class:`~chainweave.types.ChatModel` and appends
  every interaction to a JSONL cassette; :class:`ReplayModel` answers from that
  cassette, so a test recorded once against a real provider runs offline after.
* :func:`capture_spans` collects the OpenTelemetry spans finished inside a block.

Replays match requests by :func:`request_hash`: the SHA-256 of the request's canonical
JSON (sorted keys, no spaces, fields at their default left out) without the volatile
fields ``request_id``, ``metadata`` and ``timeout``.
"""

from __future__ import annotations

import inspect
import os
import threading
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeAlias, overload
from weakref import WeakKeyDictionary

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from chainweave._internal import cassette
from chainweave._internal.cassette import Interaction, Kind, request_hash
from chainweave.errors import CassetteMissError, ConfigurationError, InputValidationError
from chainweave.providers.mock import MockFailure, MockProvider, MockReply, ScriptItem
from chainweave.types import ChatModel, ChatRequest, ChatResponse, StreamChunk

__all__ = [
    "CapturedSpans",
    "FunctionProvider",
    "MockFailure",
    "MockProvider",
    "MockReply",
    "RecordingModel",
    "ReplayModel",
    "capture_spans",
    "request_hash",
]

FunctionResult: TypeAlias = str | ChatResponse | MockReply | MockFailure
ReplyFunction: TypeAlias = Callable[[ChatRequest], FunctionResult | Awaitable[FunctionResult]]


class FunctionProvider(MockProvider):
    """A :class:`~chainweave.types.ChatModel` that answers with ``fn(request)``.

    ``fn`` may be sync or async and returns the reply text, a whole
    :class:`~chainweave.types.ChatResponse`, a :class:`MockReply` or a
    :class:`MockFailure`; an exception it raises reaches the caller as it is. It is
    called in the event loop, so it should not block. ``stream`` splits the text into
    words. Everything else (``requests``, latency, embeddings) is as in
    :class:`MockProvider`.

    Args:
        fn: The function of the request that makes each reply.
        name: The provider name in responses and errors.
        default_model: The model reported when a request names none.
        latency: Seconds every call waits before answering.
        chunk_delay: Seconds between stream chunks.
    """

    provider_name = "function"

    def __init__(self, fn: ReplyFunction, name: str = "function", *,
                 default_model: str = "function", latency: float = 0.0,
                 chunk_delay: float = 0.0) -> None:
        super().__init__(name=name, default_model=default_model, latency=latency,
                         chunk_delay=chunk_delay)
        self.fn = fn

    def __repr__(self) -> str:
        return f"FunctionProvider({self.fn!r}, name={self.name!r})"

    async def _reply_for(self, request: ChatRequest) -> ScriptItem | None:
        result: object = self.fn(request)
        if inspect.isawaitable(result):
            result = await result
        if not isinstance(result, str | ChatResponse | MockReply | MockFailure):
            raise InputValidationError(
                f"{self.name}: the reply function returned {type(result).__name__}; it must "
                "return a str, ChatResponse, MockReply or MockFailure",
                field="fn", provider=self.name,
            )
        return result


# --- record and replay -----------------------------------------------------------------


class RecordingModel:
    """Wrap a :class:`~chainweave.types.ChatModel` and record every call to a cassette.

    Each ``chat`` or ``stream`` call appends one JSON line to ``path``: the request hash
    (see :func:`request_hash`), the request, and the response, the chunks, or the error
    the wrapped model raised (which is re-raised). Streams reach the caller chunk by
    chunk as they arrive and are written when they finish, fail, or are closed early.
    Lines are appended and flushed under a lock, so concurrent calls are safe. Strings
    are redacted before they are written; request ``metadata`` is not recorded.

    Args:
        inner: The model to call and record.
        path: The JSONL cassette; created (with its folder) on the first call.
    """

    def __init__(self, inner: ChatModel, path: str | os.PathLike[str]) -> None:
        self.inner = inner
        self.path = Path(path)
        self.name = str(getattr(inner, "name", "recording"))

    def __repr__(self) -> str:
        return f"RecordingModel({self.inner!r}, path={str(self.path)!r})"

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """Call the wrapped model and record the response or the error."""
        record = cassette.new_record("chat", request)
        try:
            response = await self.inner.chat(request)
        except Exception as exc:
            cassette.append_record(self.path, {**record, "error": cassette.encode_error(exc)})
            raise
        cassette.append_record(self.path, {**record, "response": cassette.dump_model(response)})
        return response

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        """Pass the wrapped model's chunks through live; record them when the stream ends."""
        record = cassette.new_record("stream", request)
        chunks: list[StreamChunk] = []
        outcome: dict[str, Any] = {"complete": False}
        source = self.inner.stream(request)
        try:
            async for chunk in source:
                chunks.append(chunk)
                yield chunk
            outcome = {"complete": True}
        except Exception as exc:
            outcome = {"complete": False, "error": cassette.encode_error(exc)}
            raise
        finally:
            await _aclose(source)
            if chunks and chunks[-1].finish_reason is not None and "error" not in outcome:
                outcome["complete"] = True  # closed right after the last chunk
            cassette.append_record(self.path, {
                **record, **outcome, "chunks": [cassette.dump_model(c) for c in chunks]})


async def _aclose(iterator: AsyncIterator[StreamChunk]) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()


class ReplayModel:
    """A :class:`~chainweave.types.ChatModel` that answers from a recorded cassette.

    Requests are matched by :func:`request_hash` and by kind (a ``chat`` call replays
    a recorded ``chat``, a ``stream`` call a recorded ``stream``). Identical requests
    replay their recordings in recorded order. Recorded errors are raised again as the
    same class with the same fields; a recorded stream yields its chunks, then raises
    its error if it had one.

    Args:
        path: The JSONL cassette a :class:`RecordingModel` wrote.
        allow_repeats: Replay the last recording again when a request comes more
            often than it was recorded, instead of raising.
        name: The name this model goes by.

    Raises:
        ConfigurationError: when the cassette is missing or a line is corrupt; the
            message names the file and the line number.
    """

    def __init__(self, path: str | os.PathLike[str], *, allow_repeats: bool = False,
                 name: str = "replay") -> None:
        self.path = Path(path)
        self.allow_repeats = allow_repeats
        self.name = name
        self._interactions = cassette.load_cassette(self.path)
        self._index: dict[tuple[Kind, str], list[Interaction]] = {}
        for interaction in self._interactions:
            self._index.setdefault((interaction.kind, interaction.hash), []).append(interaction)
        self._served: Counter[tuple[Kind, str]] = Counter()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ReplayModel({str(self.path)!r}, recordings={len(self._interactions)})"

    @property
    def recordings(self) -> int:
        """How many interactions the cassette holds."""
        return len(self._interactions)

    @property
    def remaining(self) -> int:
        """How many recordings no call has replayed yet."""
        with self._lock:
            return sum(max(0, len(found) - self._served[key])
                       for key, found in self._index.items())

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """Replay the recorded response (or raise the recorded error) for ``request``.

        Raises:
            CassetteMissError: when the cassette has no unplayed recording for it.
        """
        interaction = self._take("chat", request)
        if interaction.error is not None or interaction.response is None:
            raise cassette.decode_error(interaction.error or {})
        return interaction.response

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        """Replay the recorded chunks, then the recorded error if the stream had one.

        Raises:
            CassetteMissError: when the cassette has no unplayed recording for it, or
                the recording stopped early and the caller reads past its end.
        """
        interaction = self._take("stream", request)
        for chunk in interaction.chunks:
            yield chunk
        if interaction.error is not None:
            raise cassette.decode_error(interaction.error)
        if not interaction.complete:
            raise CassetteMissError(
                f"{self.path}:{interaction.line}: the recorded stream stopped after "
                f"{len(interaction.chunks)} chunks because its consumer closed it; record "
                "it again reading to the end",
                model=request.model, details={"hash": interaction.hash,
                                              "path": str(self.path)},
            )

    def _take(self, kind: Kind, request: ChatRequest) -> Interaction:
        digest = request_hash(request)
        key = (kind, digest)
        with self._lock:
            found = self._index.get(key, [])
            asked = self._served[key]
            self._served[key] += 1
        if asked < len(found):
            return found[asked]
        if found and self.allow_repeats:
            return found[-1]
        raise self._miss(kind, request, digest, len(found), asked + 1)

    def _miss(self, kind: Kind, request: ChatRequest, digest: str, recorded: int,
              asked: int) -> CassetteMissError:
        other: Kind = "stream" if kind == "chat" else "chat"
        as_other = len(self._index.get((other, digest), []))
        what = (f"was recorded {recorded} time(s) but is asked for time {asked}" if recorded
                else "was never recorded")
        hint = f" ({as_other} recorded as {other})" if as_other else ""
        return CassetteMissError(
            f"cassette {self.path}: {kind} request {digest[:16]} (model "
            f"{request.model!r}, first user text {cassette.first_user_text(request)!r}) "
            f"{what}{hint}; the cassette holds {len(self._interactions)} recordings. "
            "Record it again with RecordingModel, or pass allow_repeats=True",
            model=request.model,
            details={"hash": digest, "kind": kind, "path": str(self.path),
                     "recordings": len(self._interactions), "matching": recorded,
                     "asked": asked},
        )


# --- spans -----------------------------------------------------------------------------


class _CaptureProcessor(SpanProcessor):
    """Hands spans to the capture blocks open right now; does nothing when none is."""

    def __init__(self) -> None:
        self._active: tuple[SpanProcessor, ...] = ()
        self._lock = threading.Lock()

    def add(self, processor: SpanProcessor) -> None:
        with self._lock:
            self._active = (*self._active, processor)

    def remove(self, processor: SpanProcessor) -> None:
        with self._lock:
            self._active = tuple(p for p in self._active if p is not processor)

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        for processor in self._active:
            processor.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        for processor in self._active:
            processor.on_end(span)

    def shutdown(self) -> None:
        """Nothing to release: each capture block owns its exporter."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


_dispatch_lock = threading.Lock()
_dispatchers: WeakKeyDictionary[TracerProvider, _CaptureProcessor] = WeakKeyDictionary()


def _global_sdk_provider() -> TracerProvider:
    current = trace.get_tracer_provider()
    if isinstance(current, trace.ProxyTracerProvider):
        # No provider is set yet. OpenTelemetry allows setting it once per process, so
        # this one stays; it exports nothing outside capture blocks.
        trace.set_tracer_provider(TracerProvider())
        current = trace.get_tracer_provider()
    if not isinstance(current, TracerProvider):
        raise ConfigurationError(
            "capture_spans() needs an OpenTelemetry SDK TracerProvider, but the global "
            f"tracer provider is a {type(current).__name__}; pass tracer_provider=")
    return current


def _dispatcher_for(provider: TracerProvider | None) -> _CaptureProcessor:
    with _dispatch_lock:
        provider = provider or _global_sdk_provider()
        dispatcher = _dispatchers.get(provider)
        if dispatcher is None:
            dispatcher = _dispatchers[provider] = _CaptureProcessor()
            provider.add_span_processor(dispatcher)
        return dispatcher


class CapturedSpans(Sequence[ReadableSpan]):
    """A live, read-only list of the spans finished inside a :func:`capture_spans` block."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self._exporter = exporter

    def _spans(self) -> tuple[ReadableSpan, ...]:
        return self._exporter.get_finished_spans()

    def __len__(self) -> int:
        return len(self._spans())

    @overload
    def __getitem__(self, index: int) -> ReadableSpan: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[ReadableSpan]: ...

    def __getitem__(self, index: int | slice) -> ReadableSpan | Sequence[ReadableSpan]:
        return self._spans()[index]

    def __repr__(self) -> str:
        return f"CapturedSpans({self.names()!r})"

    def names(self) -> list[str]:
        """The names of the captured spans, in the order they finished."""
        return [span.name for span in self._spans()]

    def named(self, name: str) -> list[ReadableSpan]:
        """The captured spans called ``name``."""
        return [span for span in self._spans() if span.name == name]

    def clear(self) -> None:
        """Forget the spans captured so far."""
        self._exporter.clear()


@contextmanager
def capture_spans(tracer_provider: TracerProvider | None = None) -> Iterator[CapturedSpans]:
    """Collect the spans that finish inside the ``with`` block.

    Spans go through the global tracer provider (``opentelemetry.trace.get_tracer``),
    or ``tracer_provider`` when given. If the global provider is an SDK
    ``TracerProvider``, an application's or a test's, capture attaches to it and leaves
    its other processors alone. If none is set yet, a plain SDK ``TracerProvider`` is
    installed globally, once per process (OpenTelemetry allows no replacing it), with
    no exporter of its own. Capture works through one span processor added to the
    provider on first use; it hands spans to an ``InMemorySpanExporter`` (through a
    ``SimpleSpanProcessor``) for each open block, so nested and concurrent blocks each
    see every span that finishes while they are open. Only sampled spans are captured.

    Yields:
        A live sequence of the finished spans; it keeps them after the block.

    Raises:
        ConfigurationError: when the global tracer provider is not an SDK one (a
            vendor's own, or OpenTelemetry's no-op) and none was passed.
    """
    dispatcher = _dispatcher_for(tracer_provider)
    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    dispatcher.add(processor)
    try:
        yield CapturedSpans(exporter)
    finally:
        dispatcher.remove(processor)
