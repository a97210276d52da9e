"""Coalesce a stream's text into fewer, larger chunks: :class:`StreamingProcessor`.

Vendors send a chunk per token or two; a consumer forwarding them (server-sent events, a
websocket, a terminal) does better with fewer, larger ones. The processor holds text
until ``buffer_size`` characters are buffered or ``flush_interval`` seconds have passed
since the first of them arrived, then sends it as one chunk. The time-based flush works
while the upstream is silent: the upstream runs in its own task, feeding a queue of at
most ``max_pending`` chunks, and the consumer side waits on that queue with a deadline.
The bounded queue is also the backpressure: when the consumer is slow, the producer
waits, so no more than ``max_pending`` chunks are ever held.

Order is kept: refusal text and tool-call fragments pass through as they come, after
the text buffered before them. The last chunk carries ``finish_reason``, the assembled
``tool_calls`` and ``usage``; a usage report that comes after the finish chunk (OpenAI's
``include_usage``) is merged into it. Chunks with nothing in them are dropped.

When the upstream fails, buffered text is sent first; then the error is raised
(``errors="raise"``) or the stream ends with a chunk whose ``finish_reason`` is
``"error"`` and whose ``error`` is a :class:`~chainweave.types.StreamError`
(``errors="event"``). When the consumer stops early, the producer task is cancelled and
the upstream stream is closed before the consumer's ``aclose()`` returns.

The folding of chunks (:class:`_Coalescer`) is plain synchronous code; the runner only
moves chunks between the two tasks and keeps time.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Literal

from chainweave.errors import InputValidationError
from chainweave.pipeline.base import Call, NextStream, Stage
from chainweave.types import ChatRequest, StreamChunk, StreamError, Usage

__all__ = ["ErrorMode", "StreamingProcessor"]

ErrorMode = Literal["raise", "event"]
"""What an upstream failure becomes: an exception, or a final error chunk."""

_ERROR_MODES: tuple[ErrorMode, ...] = ("raise", "event")


class _End:
    """The producer's last item: the upstream finished, or failed with ``error``."""

    __slots__ = ("error",)

    def __init__(self, error: Exception | None) -> None:
        self.error = error


_Item = StreamChunk | _End


def _is_plain(chunk: StreamChunk) -> bool:
    """Whether ``chunk`` carries content only: nothing that belongs on the last chunk."""
    return (chunk.finish_reason is None and chunk.error is None and chunk.usage is None
            and not chunk.tool_calls)


def _has_content(chunk: StreamChunk) -> bool:
    return bool(chunk.delta or chunk.refusal is not None or chunk.tool_call_deltas)


def _content_of(chunk: StreamChunk) -> StreamChunk:
    """``chunk`` without its end-of-stream fields (they travel on the last chunk)."""
    return StreamChunk(delta=chunk.delta, refusal=chunk.refusal,
                       tool_call_deltas=chunk.tool_call_deltas, id=chunk.id,
                       model=chunk.model, provider=chunk.provider, cached=chunk.cached)


def _terminal_of(chunk: StreamChunk) -> StreamChunk:
    """``chunk`` without its content (which is sent before the last chunk)."""
    if not _has_content(chunk):
        return chunk
    return chunk.model_copy(update={"delta": "", "refusal": None, "tool_call_deltas": []})


def _merge_terminal(held: StreamChunk, later: StreamChunk) -> StreamChunk:
    """Two end-of-stream chunks as one; what the later one sets wins."""
    update: dict[str, object] = {}
    if later.finish_reason is not None:
        update["finish_reason"] = later.finish_reason
        update["raw_finish_reason"] = later.raw_finish_reason
    if later.tool_calls:
        update["tool_calls"] = later.tool_calls
    if later.error is not None:
        update["error"] = later.error
    return held.model_copy(update=update) if update else held


class _Coalescer:
    """Folds upstream chunks into the chunks to send; time is passed in by the caller.

    Attributes:
        deadline: When buffered text is due (loop time); infinite with nothing buffered.
    """

    __slots__ = ("_interval", "_last", "_parts", "_reuse", "_size", "_tail", "_template",
                 "_usage", "buffer_size", "deadline")

    def __init__(self, buffer_size: int, interval: float) -> None:
        self.buffer_size = buffer_size
        self._interval = interval
        self._parts: list[str] = []
        self._size = 0
        self._template: StreamChunk | None = None
        self._reuse = False
        self.deadline = math.inf
        self._tail: StreamChunk | None = None
        self._usage: Usage | None = None
        self._last: StreamChunk | None = None

    def add(self, chunk: StreamChunk, now: float) -> list[StreamChunk]:
        """Fold ``chunk`` in; returns what is ready to send now, in order."""
        self._last = chunk
        if not _is_plain(chunk):
            if chunk.usage is not None:
                self._usage = chunk.usage
            if chunk.finish_reason is not None or chunk.error is not None or chunk.tool_calls:
                self._hold(chunk)
        if chunk.refusal is not None or chunk.tool_call_deltas:
            out = self.flush()
            out.append(chunk if _is_plain(chunk) else _content_of(chunk))
            return out
        if chunk.delta:
            self._buffer(chunk, now)
            if self._size >= self.buffer_size or now >= self.deadline:
                return self.flush()
        return []

    def _buffer(self, chunk: StreamChunk, now: float) -> None:
        if self._template is None:
            self._template, self._reuse = chunk, _is_plain(chunk)
            self.deadline = now + self._interval
        else:
            self._reuse = False
        self._parts.append(chunk.delta)
        self._size += len(chunk.delta)

    def _hold(self, chunk: StreamChunk) -> None:
        terminal = _terminal_of(chunk)
        self._tail = terminal if self._tail is None else _merge_terminal(self._tail, terminal)

    def flush(self) -> list[StreamChunk]:
        """The buffered text as one chunk (an empty list when nothing is buffered)."""
        template = self._template
        if template is None:
            return []
        if self._reuse:
            chunk = template
        else:
            chunk = StreamChunk(delta="".join(self._parts), id=template.id,
                                model=template.model, provider=template.provider,
                                cached=template.cached)
        self._parts, self._size, self._template, self.deadline = [], 0, None, math.inf
        return [chunk]

    def finish(self) -> list[StreamChunk]:
        """What is left to send when the upstream has ended: text, then the last chunk."""
        out = self.flush()
        tail, usage = self._tail, self._usage
        if tail is None and usage is not None:
            tail = self._bare(usage=usage)
        elif tail is not None and usage is not None and tail.usage is not usage:
            tail = tail.model_copy(update={"usage": usage})
        if tail is not None:
            out.append(tail)
        return out

    def error_chunk(self, exc: Exception) -> StreamChunk:
        """The last chunk for an upstream that failed with ``exc``."""
        tool_calls = self._tail.tool_calls if self._tail is not None else []
        return self._bare(finish_reason="error", error=StreamError.from_exception(exc),
                          usage=self._usage, tool_calls=tool_calls)

    def _bare(self, **fields: object) -> StreamChunk:
        last = self._last
        if last is None:
            return StreamChunk.model_validate(fields)
        return StreamChunk.model_validate(
            {"id": last.id, "model": last.model, "provider": last.provider,
             "cached": last.cached, **fields})


async def _aclose(source: AsyncIterator[StreamChunk]) -> None:
    close = getattr(source, "aclose", None)
    if close is not None:
        await close()


async def _pump(source: AsyncIterator[StreamChunk],
                queue: asyncio.Queue[_Item]) -> Exception | None:
    """Move ``source`` into ``queue``; returns its error. Always closes ``source``."""
    try:
        async for chunk in source:
            await queue.put(chunk)
    except Exception as exc:
        return exc
    finally:
        await _aclose(source)
    return None


async def _produce(call_next: NextStream, request: ChatRequest,
                   queue: asyncio.Queue[_Item]) -> None:
    """The producer task: the upstream's chunks, then exactly one :class:`_End`."""
    try:
        error = await _pump(call_next(request), queue)
    except Exception as exc:  # call_next itself failed, or closing the source did
        error = exc
    await queue.put(_End(error))


async def _stop(producer: asyncio.Task[None]) -> None:
    """Cancel the producer (which closes the upstream) and wait until it has ended."""
    if not producer.done():
        producer.cancel()
        await asyncio.wait((producer,))
    if not producer.cancelled():
        producer.exception()  # retrieved, so asyncio never reports it as lost


async def _next_item(queue: asyncio.Queue[_Item], deadline: float) -> _Item | None:
    """The next item, or ``None`` when ``deadline`` (loop time) passes first."""
    if deadline == math.inf or not queue.empty():
        return await queue.get()
    try:
        async with asyncio.timeout_at(deadline):
            return await queue.get()
    except TimeoutError:
        return None


class StreamingProcessor(Stage):
    """Coalesce streamed text, with backpressure and a clean early close.

    See the module docstring for the rules. ``chat`` passes straight through.

    Args:
        buffer_size: Characters of text to gather before sending them (at least 1).
        flush_interval: Seconds after the first buffered character at which buffered
            text is sent even if ``buffer_size`` was not reached (> 0).
        max_pending: Upstream chunks that may wait for a slow consumer (at least 1).
        errors: ``"raise"`` the upstream's exception to the consumer, or end the stream
            with an ``"event"``: a last chunk with ``finish_reason="error"``.

    Raises:
        InputValidationError: For a value out of range; ``field`` names it.
    """

    name = "streaming"

    def __init__(self, buffer_size: int = 100, flush_interval: float = 0.05, *,
                 max_pending: int = 64, errors: ErrorMode = "raise") -> None:
        _check_int(buffer_size, "buffer_size")
        _check_int(max_pending, "max_pending")
        if isinstance(flush_interval, bool) or not isinstance(flush_interval, int | float) \
                or not math.isfinite(flush_interval) or flush_interval <= 0:
            raise InputValidationError(
                "StreamingProcessor.flush_interval must be a finite number of seconds > 0, "
                f"got {flush_interval!r}", field="flush_interval")
        if errors not in _ERROR_MODES:
            raise InputValidationError(
                f"StreamingProcessor.errors must be 'raise' or 'event', got {errors!r}",
                field="errors")
        self.buffer_size = buffer_size
        self.flush_interval = float(flush_interval)
        self.max_pending = max_pending
        self.errors: ErrorMode = errors

    def __repr__(self) -> str:
        return (f"StreamingProcessor(buffer_size={self.buffer_size}, "
                f"flush_interval={self.flush_interval:g}, max_pending={self.max_pending}, "
                f"errors={self.errors!r})")

    def stream(self, request: ChatRequest, call: Call,
               call_next: NextStream) -> AsyncIterator[StreamChunk]:
        """The upstream's chunks, text coalesced; the upstream starts on the first read.

        Raises:
            Exception: The upstream's error, after the text before it, with
                ``errors="raise"``.
        """
        return self._stream(request, call_next)

    async def _stream(self, request: ChatRequest,
                      call_next: NextStream) -> AsyncIterator[StreamChunk]:
        queue: asyncio.Queue[_Item] = asyncio.Queue(self.max_pending)
        producer = asyncio.create_task(_produce(call_next, request, queue),
                                       name="chainweave-stream-producer")
        folder = _Coalescer(self.buffer_size, self.flush_interval)
        loop = asyncio.get_running_loop()
        try:
            while True:
                item = await _next_item(queue, folder.deadline)
                if isinstance(item, _End):
                    break
                ready = folder.flush() if item is None else folder.add(item, loop.time())
                for chunk in ready:
                    yield chunk
            error = item.error
            for chunk in folder.finish() if error is None else folder.flush():
                yield chunk
            if error is not None and self.errors == "raise":
                raise error
            if error is not None:
                yield folder.error_chunk(error)
        finally:
            await _stop(producer)


def _check_int(value: int, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputValidationError(
            f"StreamingProcessor.{field} must be an integer >= 1, got {value!r}", field=field)
