"""An offline provider that answers from a script or from the prompt itself.

:class:`MockProvider` is the default provider when no key and no base URL are
configured, and the double tests hand to chains and graphs. It speaks
:class:`~chainweave.types.ChatModel` and keeps the HTTP adapters' contracts:

* ``chat`` returns a :class:`~chainweave.types.ChatResponse` with usage, a normalised
  ``finish_reason`` and a measured ``latency_ms``;
* ``stream`` yields text chunks and tool-call fragments, then one last chunk carrying
  ``finish_reason``, the assembled ``tool_calls`` and ``usage``;
* failures raise the error class, with the same fields, that an adapter raises for the
  same HTTP status, timeout, reset connection or broken stream.

With no script, each answer is derived from the prompt: the same messages give the same
text and different messages give different text. With ``replies=[...]`` each call takes
the next scripted item exactly once, however many calls run concurrently. When the
script runs out, ``exhausted`` decides what happens: ``"repeat"`` the last item (the
default), ``"cycle"`` from the start, answer with the ``"default"`` prompt-derived text,
or raise an ``"error"``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import struct
import threading
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import ClassVar, Literal, Self, TypeAlias

from chainweave.errors import (
    ExecutionError,
    InputValidationError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    StreamInterruptedError,
    error_for_status,
)
from chainweave.tokens import estimate_text_tokens, estimate_tokens
from chainweave.types import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    FinishReason,
    HealthStatus,
    ModelInfo,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    Usage,
)

__all__ = ["Exhausted", "MockFailure", "MockProvider", "MockReply", "ScriptItem", "default_text"]

Exhausted = Literal["repeat", "cycle", "error", "default"]
FailureKind = Literal["status", "timeout", "reset"]

_EXHAUSTED_MODES = ("repeat", "cycle", "error", "default")
_ECHO_CHARS = 60
_FRAGMENT_CHARS = 16
_WORD_START = re.compile(r"(?<=\s)(?=\S)")


def _invalid(owner: str, field: str, message: str) -> InputValidationError:
    return InputValidationError(f"{owner}.{field}: {message}", field=field)


def _check_seconds(owner: str, field: str, value: float | None) -> None:
    if value is not None and not value >= 0:
        raise _invalid(owner, field, f"must be a number of seconds >= 0, got {value!r}")


@dataclass(frozen=True)
class MockReply:
    """One scripted answer.

    Args:
        content: The reply text. Left empty when ``chunks`` is given, it is their join.
        tool_calls: Tool calls the reply makes (``ToolCall`` objects, or dicts in any
            shape ``ToolCall`` accepts).
        finish_reason: Left out, ``"tool_calls"`` when there are tool calls, else
            ``"stop"``.
        usage: Token usage to report; left out, it is estimated from the text.
        chunks: How ``stream`` splits the text; left out, it splits before each word.
        latency: Seconds to wait before answering; left out, the provider's ``latency``.
        truncate_after: Break a stream after this many chunks (never its last one) with
            :class:`~chainweave.errors.StreamInterruptedError`. ``chat`` raises
            :class:`~chainweave.errors.ProviderConnectionError` instead, as an adapter
            does when a response body is cut short.
    """

    content: str = ""
    tool_calls: Sequence[ToolCall] = ()
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    chunks: Sequence[str] | None = None
    latency: float | None = None
    truncate_after: int | None = None

    def __post_init__(self) -> None:
        calls = tuple(call if isinstance(call, ToolCall) else ToolCall.model_validate(call)
                      for call in self.tool_calls)
        object.__setattr__(self, "tool_calls", calls)
        if self.chunks is not None:
            chunks = tuple(self.chunks)
            joined = "".join(chunks)
            if self.content and self.content != joined:
                raise _invalid("MockReply", "chunks", "the chunks must join up to content")
            object.__setattr__(self, "chunks", chunks)
            object.__setattr__(self, "content", joined)
        _check_seconds("MockReply", "latency", self.latency)
        if self.truncate_after is not None and self.truncate_after < 0:
            raise _invalid("MockReply", "truncate_after", "must be >= 0")

    @property
    def resolved_finish_reason(self) -> FinishReason:
        """The finish reason the reply reports."""
        if self.finish_reason is not None:
            return self.finish_reason
        return "tool_calls" if self.tool_calls else "stop"


@dataclass(frozen=True)
class MockFailure:
    """A scripted failure: an HTTP error status, a timeout, or a reset connection.

    ``MockFailure(status=429, retry_after=2.0)`` raises what an HTTP adapter raises for
    that status (see :func:`~chainweave.errors.error_for_status`): a retryable
    :class:`~chainweave.errors.RateLimitError` with ``status_code=429`` and
    ``retry_after=2.0``, naming the provider and the model.

    Args:
        status: The HTTP error status (400-599), for ``kind="status"``.
        message: The vendor's message; a generic one is used when left out.
        retry_after: Seconds the vendor asks to wait, as a ``Retry-After`` header would.
        latency: Seconds to wait before failing; left out, the provider's ``latency``.
        kind: ``"status"``, ``"timeout"`` or ``"reset"``; prefer :meth:`timeout` and
            :meth:`reset` to setting it.
    """

    status: int | None = None
    message: str | None = None
    retry_after: float | None = None
    latency: float | None = None
    kind: FailureKind = "status"

    def __post_init__(self) -> None:
        if self.kind == "status":
            if self.status is None or not 400 <= self.status <= 599:
                raise _invalid("MockFailure", "status",
                               f"an HTTP error status (400-599) is needed, got {self.status!r}")
        elif self.kind in ("timeout", "reset"):
            if self.status is not None:
                raise _invalid("MockFailure", "status", f"a {self.kind} failure has no status")
        else:
            raise _invalid("MockFailure", "kind", f"unknown kind {self.kind!r}")
        _check_seconds("MockFailure", "retry_after", self.retry_after)
        _check_seconds("MockFailure", "latency", self.latency)

    @classmethod
    def timeout(cls, message: str | None = None, *, latency: float | None = None) -> Self:
        """A call that times out: :class:`~chainweave.errors.ProviderTimeoutError`."""
        return cls(message=message, latency=latency, kind="timeout")

    @classmethod
    def reset(cls, message: str | None = None, *, latency: float | None = None) -> Self:
        """A reset connection: :class:`~chainweave.errors.ProviderConnectionError`."""
        return cls(message=message, latency=latency, kind="reset")

    def error(self, *, provider: str, model: str | None) -> ProviderError:
        """The error an HTTP adapter named ``provider`` raises for this failure."""
        if self.kind == "timeout":
            return ProviderTimeoutError(
                f"{provider} timed out: {self.message or 'no answer in time'}",
                provider=provider, model=model)
        if self.kind == "reset":
            return ProviderConnectionError(
                f"{provider} connection failed: {self.message or 'connection reset by peer'}",
                provider=provider, model=model)
        status = self.status or 500
        return error_for_status(status, f"{provider}: {self.message or f'HTTP {status}'}",
                                retry_after=self.retry_after, provider=provider, model=model)


ScriptItem: TypeAlias = str | ChatResponse | MockReply | MockFailure | Exception
"""What a script may hold; an ``Exception`` instance is raised as it is."""

_SCRIPT_TYPES = (str, ChatResponse, MockReply, MockFailure, Exception)


class MockProvider:
    """An offline :class:`~chainweave.types.ChatModel` for tests, demos and dry runs.

    Args:
        replies: The script: each call takes the next item. A ``str`` is the reply text;
            a :class:`~chainweave.types.ChatResponse` is returned as given by ``chat``
            (and streamed by ``stream``); a :class:`MockReply` sets text, tool calls,
            chunks, usage, latency or truncation; a :class:`MockFailure` or an
            ``Exception`` makes the call fail. Left out, every answer is derived from
            the prompt.
        name: The provider name in responses, errors and health reports.
        default_model: The model reported when a request names none.
        latency: Seconds every call waits before answering, unless its reply says
            otherwise. A request whose ``timeout`` is shorter times out instead.
        chunk_delay: Seconds between stream chunks.
        exhausted: What a call gets once the script is used up: ``"repeat"`` the last
            item, ``"cycle"`` from the first, the ``"default"`` prompt-derived text, or
            an ``"error"`` (:class:`~chainweave.errors.ExecutionError`).
        embedding_dimensions: The length of embedding vectors when a request sets none.
        models: The models :meth:`list_models` reports; ``[default_model]`` when left out.
        healthy: What :meth:`health` reports; change the attribute to flip it.

    Attributes:
        requests: Every chat and stream request received, in arrival order.
        embed_requests: Every embedding request received.
        closed: Whether :meth:`aclose` has been called.
    """

    provider_name: ClassVar[str] = "mock"

    def __init__(
        self,
        replies: Iterable[ScriptItem] | None = None,
        *,
        name: str = "mock",
        default_model: str = "mock",
        latency: float = 0.0,
        chunk_delay: float = 0.0,
        exhausted: Exhausted = "repeat",
        embedding_dimensions: int = 64,
        models: Sequence[str] | None = None,
        healthy: bool = True,
    ) -> None:
        _check_seconds("MockProvider", "latency", latency)
        _check_seconds("MockProvider", "chunk_delay", chunk_delay)
        if exhausted not in _EXHAUSTED_MODES:
            raise _invalid("MockProvider", "exhausted",
                           f"must be one of {', '.join(_EXHAUSTED_MODES)}, got {exhausted!r}")
        if embedding_dimensions < 1:
            raise _invalid("MockProvider", "embedding_dimensions", "must be >= 1")
        self.name = name
        self.default_model = default_model
        self.latency = latency
        self.chunk_delay = chunk_delay
        self.exhausted: Exhausted = exhausted
        self.embedding_dimensions = embedding_dimensions
        self.models = list(models) if models else [default_model]
        self.healthy = healthy
        self.closed = False
        self.requests: list[ChatRequest] = []
        self.embed_requests: list[EmbeddingRequest] = []
        self._script = _checked_script(replies)
        self._position = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, "
                f"default_model={self.default_model!r}, replies={len(self._script)})")

    @property
    def call_count(self) -> int:
        """How many chat and stream calls were made since creation or :meth:`reset`."""
        return len(self.requests)

    @property
    def remaining(self) -> int:
        """How many scripted replies no call has taken yet."""
        return max(0, len(self._script) - self._position)

    def reset(self) -> None:
        """Forget the calls received and rewind the script to its first item."""
        with self._lock:
            self.requests.clear()
            self.embed_requests.clear()
            self._position = 0

    # --- ChatModel ----------------------------------------------------------------------

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """Answer ``request`` with the next scripted reply, or one derived from it.

        Raises:
            ProviderError: what the scripted failure stands for; a
                :class:`~chainweave.errors.ProviderTimeoutError` when the request's
                ``timeout`` is shorter than the latency.
            ExecutionError: when the script is used up and ``exhausted="error"``.
        """
        started = time.perf_counter()
        model, call, reply = await self._prepare(request)
        if isinstance(reply, ChatResponse):
            return reply
        if reply.truncate_after is not None:
            raise ProviderConnectionError(
                f"{self.name} connection failed: the response body ended early",
                provider=self.name, model=model)
        return ChatResponse(
            id=f"{self.name}-{call}", model=model, provider=self.name,
            content=reply.content, tool_calls=list(reply.tool_calls),
            finish_reason=reply.resolved_finish_reason, usage=_usage(reply, request),
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        """Answer ``request`` as chunks: words, then tool-call fragments, then the end.

        Raises:
            StreamInterruptedError: when the reply has ``truncate_after``; the text that
                arrived is in ``details["partial_content"]``.
            ProviderError: what a scripted failure stands for, before any chunk.
        """
        model, call, item = await self._prepare(request)
        reply = _as_reply(item)
        ident = item.id if isinstance(item, ChatResponse) else f"{self.name}-{call}"
        body = [StreamChunk(delta=text, id=ident, model=model, provider=self.name)
                for text in _text_chunks(reply)]
        body += [StreamChunk(tool_call_deltas=[frag], id=ident, model=model,
                             provider=self.name) for frag in _fragments(reply.tool_calls)]
        limit = len(body) if reply.truncate_after is None else reply.truncate_after
        for index, chunk in enumerate(body[:limit]):
            if index and self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
            yield chunk
        if reply.truncate_after is not None:
            raise self._interrupted(body[:limit], model)
        if body and self.chunk_delay:
            await asyncio.sleep(self.chunk_delay)
        yield StreamChunk(
            finish_reason=reply.resolved_finish_reason, tool_calls=list(reply.tool_calls),
            usage=_usage(reply, request), id=ident, model=model, provider=self.name,
        )

    def _interrupted(self, sent: list[StreamChunk], model: str) -> StreamInterruptedError:
        partial = "".join(chunk.delta for chunk in sent)
        return StreamInterruptedError(
            f"{self.name} stream broke before its end after {len(sent)} chunks",
            provider=self.name, model=model,
            details={"partial_content": partial, "chunks": len(sent)},
        )

    # --- the script ---------------------------------------------------------------------

    async def _prepare(self, request: ChatRequest) -> tuple[str, int, MockReply | ChatResponse]:
        """Record the call, take its reply, wait its latency, raise a scripted failure."""
        with self._lock:
            self.requests.append(request)
            call = len(self.requests)
        model = request.model or self.default_model
        item = await self._reply_for(request)
        latency = item.latency if isinstance(item, MockReply | MockFailure) else None
        await self._wait(self.latency if latency is None else latency, request.timeout, model)
        if isinstance(item, MockFailure):
            raise item.error(provider=self.name, model=model)
        if isinstance(item, Exception):
            raise item
        if item is None:
            return model, call, MockReply(content=default_text(request))
        if isinstance(item, str):
            return model, call, MockReply(content=item)
        return model, call, item

    async def _reply_for(self, request: ChatRequest) -> ScriptItem | None:
        """The next scripted item; ``None`` means "derive the answer from the prompt"."""
        with self._lock:
            index = self._position
            self._position += 1
        if not self._script:
            return None
        if index < len(self._script):
            return self._script[index]
        if self.exhausted == "repeat":
            return self._script[-1]
        if self.exhausted == "cycle":
            return self._script[index % len(self._script)]
        if self.exhausted == "default":
            return None
        raise ExecutionError(
            f"{self.name} has no scripted reply left: {len(self._script)} were given and "
            f"this is call {index + 1} (exhausted='error')",
            provider=self.name, model=request.model or self.default_model,
        )

    async def _wait(self, seconds: float, timeout: float | None, model: str) -> None:
        if timeout is not None and seconds > timeout:
            await asyncio.sleep(timeout)
            raise ProviderTimeoutError(
                f"{self.name} timed out: no answer within {timeout:g}s",
                provider=self.name, model=model)
        if seconds > 0:
            await asyncio.sleep(seconds)

    # --- embeddings, models, health, lifecycle -----------------------------------------

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        """Embed each text as a unit vector derived from its hash: same text, same vector."""
        started = time.perf_counter()
        with self._lock:
            self.embed_requests.append(request)
        model = request.model or self.default_model
        await self._wait(self.latency, request.timeout, model)
        dimensions = request.dimensions or self.embedding_dimensions
        return EmbeddingResponse(
            model=model, provider=self.name,
            embeddings=[_hash_vector(text, dimensions) for text in request.input],
            usage=Usage(prompt_tokens=sum(estimate_text_tokens(text) for text in request.input)),
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    async def list_models(self) -> list[ModelInfo]:
        """The models given as ``models`` (by default, just ``default_model``)."""
        return [ModelInfo(id=model, provider=self.name, owned_by="chainweave")
                for model in self.models]

    async def health(self) -> HealthStatus:
        """Report the ``healthy`` attribute; never raises."""
        if self.healthy:
            return HealthStatus(provider=self.name, healthy=True, latency_ms=0.0)
        return HealthStatus(provider=self.name, healthy=False, latency_ms=0.0,
                            error=f"{self.name} is marked unhealthy",
                            error_type="provider_unavailable")

    async def aclose(self) -> None:
        """Mark the provider closed; there is nothing to release."""
        self.closed = True

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()


def _checked_script(replies: Iterable[ScriptItem] | None) -> list[ScriptItem]:
    script = list(replies or ())
    for index, item in enumerate(script):
        if not isinstance(item, _SCRIPT_TYPES):
            raise _invalid("MockProvider", f"replies.{index}",
                           "expected a str, ChatResponse, MockReply, MockFailure or "
                           f"Exception, got {type(item).__name__}")
    return script


def _as_reply(item: MockReply | ChatResponse) -> MockReply:
    if isinstance(item, MockReply):
        return item
    return MockReply(content=item.content, tool_calls=item.tool_calls,
                     finish_reason=item.finish_reason, usage=item.usage)


def _text_chunks(reply: MockReply) -> list[str]:
    if reply.chunks is not None:
        return [chunk for chunk in reply.chunks if chunk]
    return [word for word in _WORD_START.split(reply.content) if word]


def _fragments(calls: Sequence[ToolCall]) -> list[ToolCallDelta]:
    """Each call as its id and name first, then its arguments a few characters at a time."""
    fragments: list[ToolCallDelta] = []
    for index, call in enumerate(calls):
        fragments.append(ToolCallDelta(index=index, id=call.id, name=call.name))
        args = call.arguments
        fragments.extend(ToolCallDelta(index=index, arguments=args[i:i + _FRAGMENT_CHARS])
                         for i in range(0, len(args), _FRAGMENT_CHARS))
    return fragments


def _usage(reply: MockReply, request: ChatRequest) -> Usage:
    if reply.usage is not None:
        return reply.usage
    prompt = estimate_tokens(request.messages, request.model)
    completion = estimate_text_tokens(reply.content) + sum(
        estimate_text_tokens(c.name) + estimate_text_tokens(c.arguments)
        for c in reply.tool_calls)
    return Usage(prompt_tokens=prompt, completion_tokens=completion)


def default_text(request: ChatRequest) -> str:
    """The prompt-derived answer: a tag hashed from the messages and an echo of the prompt.

    The tag is the first 8 hex digits of the SHA-256 of the messages, so the same
    messages always give the same text and different ones give different text; the
    echo is the last user message, whitespace collapsed, cut to 60 characters.
    """
    last_user = next((m.text for m in reversed(request.messages) if m.role == "user"),
                     request.messages[-1].text)
    echo = " ".join(last_user.split())
    if len(echo) > _ECHO_CHARS:
        echo = echo[:_ECHO_CHARS - 3] + "..."
    messages = [m.model_dump(mode="json", exclude_defaults=True) for m in request.messages]
    canonical = json.dumps(messages, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    tag = hashlib.sha256(canonical.encode()).hexdigest()[:8]
    return f'Mock reply {tag}: you said "{echo}".'


def _hash_vector(text: str, dimensions: int) -> list[float]:
    """A unit vector of ``dimensions`` floats derived from the SHA-3 (SHAKE-256) of ``text``."""
    digest = hashlib.shake_256(text.encode()).digest(4 * dimensions)
    raw = [value / 2**31 - 1.0 for value in struct.unpack(f"<{dimensions}I", digest)]
    norm = math.sqrt(sum(x * x for x in raw))
    if norm == 0.0:
        return [1.0] + [0.0] * (dimensions - 1)
    return [x / norm for x in raw]
