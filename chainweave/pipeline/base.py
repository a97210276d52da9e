"""The pipeline core: :class:`Stage`, the per-request :class:`Call`, and :class:`Pipeline`.

A :class:`Pipeline` is a :class:`~chainweave.types.ChatModel` that runs each request
through ordered stages around another ``ChatModel`` (an adapter, a ``ProviderManager``,
another pipeline). The first stage is the outermost: it sees the request first and the
response last. Each stage gets the request, the :class:`Call` shared by every stage of
this one request, and ``call_next``, which runs the rest of the pipeline::

    class Shout(Stage):
        name = "shout"

        async def chat(self, request, call, call_next):
            response = await call_next(request)
            return response.model_copy(update={"content": response.content.upper()})

A stage may answer without calling ``call_next`` (a cache hit), call it with a changed
request (redaction), or raise (a blocked request: no provider call is made).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from chainweave.errors import InputValidationError
from chainweave.pipeline.findings import Finding
from chainweave.types import ChatModel, ChatRequest, ChatResponse, StreamChunk

if TYPE_CHECKING:
    from chainweave.config import Settings

__all__ = ["Call", "NextChat", "NextStream", "Pipeline", "SecurityEvent", "Stage",
           "closing_stream"]

NextChat = Callable[[ChatRequest], Awaitable[ChatResponse]]
"""Runs the rest of the pipeline for a (possibly changed) request."""

NextStream = Callable[[ChatRequest], AsyncIterator[StreamChunk]]
"""Runs the rest of the pipeline as a stream."""

Direction = Literal["input", "output"]
Action = Literal["block", "redact", "flag"]


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    """What the security stage did about one finding.

    Attributes:
        direction: ``input`` (the request) or ``output`` (the response).
        action: ``block``, ``redact`` or ``flag``.
        finding: The detector hit; spans refer to the normalised text.
        message_index: The request message it was found in (input only).
    """

    direction: Direction
    action: Action
    finding: Finding
    message_index: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form for audit logs; it never holds the matched text."""
        return {"direction": self.direction, "action": self.action,
                "message_index": self.message_index, **self.finding.to_dict()}


@dataclass(slots=True, eq=False)
class Call:
    """Facts about one request that stages share while it runs.

    Attributes:
        request_id: The request's ``request_id``, or a generated one.
        streaming: Whether the caller asked for a stream.
        started: :func:`time.perf_counter` when the pipeline took the request.
        cached: Set by the cache stage when it answered from the cache.
        replayed: Set by the idempotency stage when it returned a stored result.
        rate_limited: Set by the rate limiter when the request had to wait or was refused.
        events: Security events, in the order they happened.
        annotations: Anything else a stage wants later stages or the audit log to see.
    """

    request_id: str
    streaming: bool = False
    started: float = field(default_factory=time.perf_counter)
    cached: bool = False
    replayed: bool = False
    rate_limited: bool = False
    events: list[SecurityEvent] = field(default_factory=list)
    annotations: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_request(cls, request: ChatRequest, *, streaming: bool = False) -> Call:
        """A new call for ``request``, keeping its ``request_id`` when it has one."""
        return cls(request.request_id or uuid.uuid4().hex, streaming)

    @property
    def elapsed_ms(self) -> float:
        """Milliseconds since the pipeline took the request."""
        return (time.perf_counter() - self.started) * 1000.0


@asynccontextmanager
async def closing_stream(
        chunks: AsyncIterator[StreamChunk]) -> AsyncIterator[AsyncIterator[StreamChunk]]:
    """Close ``chunks`` on exit, as :func:`contextlib.aclosing` does for generators.

    A stage that stops iterating early (a consumer broke off, an error) must close the
    stream it took from ``call_next``, so the provider's connection is released at once.
    """
    try:
        yield chunks
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()


class Stage:
    """One step of a pipeline; the defaults pass the request straight through.

    Subclasses override :meth:`chat`, :meth:`stream`, or both, and :meth:`aclose` when
    they hold resources. A stage object may serve many concurrent requests: keep
    per-request state in the :class:`Call`, not on ``self``.
    """

    name: ClassVar[str] = "stage"

    async def chat(self, request: ChatRequest, call: Call, call_next: NextChat) -> ChatResponse:
        """Answer ``request``, usually by awaiting ``call_next``."""
        return await call_next(request)

    def stream(self, request: ChatRequest, call: Call,
               call_next: NextStream) -> AsyncIterator[StreamChunk]:
        """Answer ``request`` as a stream, usually by iterating ``call_next``."""
        return call_next(request)

    async def aclose(self) -> None:
        """Release what the stage holds (connections, files)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Pipeline:
    """A ChatModel that runs each request through ``stages`` around ``model``.

    Args:
        model: What answers once every stage has let the request through.
        stages: Outermost first. The list is fixed when the pipeline is built.

    Build the default stage list from settings with :meth:`from_settings`.
    """

    def __init__(self, model: ChatModel, stages: Sequence[Stage] = ()) -> None:
        self._model = model
        self._stages: tuple[Stage, ...] = tuple(stages)
        for position, stage in enumerate(self._stages):
            if not isinstance(stage, Stage):
                raise InputValidationError(
                    f"Pipeline stages[{position}] must be a Stage, got {type(stage).__name__}",
                    field=f"stages[{position}]")

    @classmethod
    def from_settings(cls, model: ChatModel, settings: Settings | None = None) -> Pipeline:
        """``model`` behind the stages ``settings`` ask for (see :mod:`.defaults`).

        ``settings`` defaults to :meth:`Settings.from_env() <chainweave.Settings.from_env>`.
        """
        from chainweave.pipeline.defaults import default_stages

        return cls(model, default_stages(settings))

    @property
    def model(self) -> ChatModel:
        """The model the pipeline wraps."""
        return self._model

    @property
    def stages(self) -> tuple[Stage, ...]:
        """The stages, outermost first."""
        return self._stages

    def stage(self, name: str) -> Stage | None:
        """The first stage called ``name``, or ``None``."""
        return next((s for s in self._stages if s.name == name), None)

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """Run ``request`` through every stage and the model."""
        call = Call.for_request(request)
        return await self._chat_from(0, call)(request)

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        """Run ``request`` through every stage and stream the model's answer."""
        call = Call.for_request(request, streaming=True)
        return self._stream_from(0, call)(request)

    def _chat_from(self, index: int, call: Call) -> NextChat:
        if index == len(self._stages):
            return self._model.chat
        stage, rest = self._stages[index], self._chat_from(index + 1, call)

        def run(request: ChatRequest) -> Awaitable[ChatResponse]:
            return stage.chat(request, call, rest)

        return run

    def _stream_from(self, index: int, call: Call) -> NextStream:
        if index == len(self._stages):
            return self._model.stream
        stage, rest = self._stages[index], self._stream_from(index + 1, call)

        def run(request: ChatRequest) -> AsyncIterator[StreamChunk]:
            return stage.stream(request, call, rest)

        return run

    async def aclose(self) -> None:
        """Close every stage, then the wrapped model when it can be closed."""
        for stage in self._stages:
            await stage.aclose()
        close = getattr(self._model, "aclose", None)
        if close is not None:
            await close()

    async def __aenter__(self) -> Pipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        names = ", ".join(s.name for s in self._stages)
        return f"Pipeline([{names}] -> {type(self._model).__name__})"
