"""One JSON record per request, for audit trails: :class:`AuditLog`.

Put it first in a pipeline (outermost): it then records every request, including those
a later stage refused (security, rate limit) or answered itself (cache, idempotency).
A record is written once the call has ended: for a chat when the response or the error
is back, for a stream when it finishes, fails, or its consumer closes it early.

A record holds, as one JSON object::

    ts               ISO 8601 UTC time the record was written (the end of the call)
    event            "chat"
    request_id       the request's id (or the one the pipeline made up)
    streaming        whether the caller asked for a stream
    model            {"requested": ..., "answered": ...}
    provider         the provider that answered (or failed), when one did
    status           "ok", "error" or "cancelled" (the caller went away first)
    error_type       the error's error_type / error_code, for status "error"
    error_code
    latency_ms       milliseconds since the pipeline took the request
    usage            {prompt_tokens, completion_tokens, total_tokens, cost_usd} or null
    finish_reason    the normalised finish reason, when there was an answer
    cached, replayed, rate_limited   what the cache, idempotency and rate-limit stages did
    message_count    messages in the request
    prompt_chars     characters of text in the request's messages
    completion_chars characters of text in the answer (streamed text for a stream)
    security_events  what the security stage found and did (never the matched text)
    user             a SHA-256 digest (16 hex digits) of ``request.user``, or null

With ``log_content=True`` it also holds ``messages`` (role and text of each) and
``completion`` (the answer's text), each passed through ``content_filter`` when given.
Every string in a record passes through :func:`chainweave._internal.redact.redact`, so
registered API keys and key-shaped tokens never reach the log.

With a ``path``, records are appended as JSON lines to that file, created with mode
``0o600`` and opened once; each record is one write and one flush under a lock, so
concurrent tasks (and threads) never interleave lines. Without one, each record is
logged as JSON at INFO on ``logger``. A record that cannot be written is reported on
the ``chainweave.pipeline.audit`` logger; the request itself never fails because of it.

The user digest is not salted, so it links one user's records together; a low-entropy
user id (an e-mail address) can be recovered from it by guessing. Pass opaque user ids
where that matters.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from chainweave._internal.redact import get_logger, pseudonym, redact_value
from chainweave.errors import ChainweaveError, ConfigurationError
from chainweave.pipeline.base import Call, NextChat, NextStream, Stage, closing_stream
from chainweave.types import ChatRequest, ChatResponse, StreamChunk, StreamError, Usage

__all__ = ["AuditLog", "ContentFilter"]

ContentFilter = Callable[[str], str]
"""Rewrites a prompt or completion text before it is written (to mask PII, say)."""

_log = get_logger("chainweave.pipeline.audit")
# Built once: ``json.dumps`` with options builds a new encoder on every call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)
_PLAIN = frozenset({bool, int, float, type(None)})


def _redacted(record: dict[str, Any]) -> dict[str, Any]:
    """``redact_value(record)``, without a call for each number, flag or null it would
    return as it is: half a record's fields."""
    return {key: value if type(value) in _PLAIN else redact_value(value)
            for key, value in record.items()}


def _open(path: Path) -> TextIO:
    """``path`` opened for appending; a new file is readable by its owner only."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise ConfigurationError(
            f"the audit log {str(path)!r} cannot be opened for writing: {exc.strerror}",
            field="path", details={"path": str(path)}) from None
    return os.fdopen(fd, "a", encoding="utf-8")


class _Outcome:
    """What the audit stage saw of one call's answer."""

    __slots__ = ("cached", "chars", "error_code", "error_type", "finish_reason", "model",
                 "parts", "provider", "status", "usage")

    def __init__(self, keep_text: bool) -> None:
        self.status = "cancelled"
        self.error_type: str | None = None
        self.error_code: str | None = None
        self.model: str | None = None
        self.provider: str | None = None
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.cached = False
        self.chars = 0
        self.parts: list[str] | None = [] if keep_text else None

    def answered(self, response: ChatResponse) -> None:
        """A chat call returned ``response``."""
        self.status, self.model, self.provider = "ok", response.model, response.provider
        self.usage, self.finish_reason = response.usage, response.finish_reason
        self.cached, self.chars = response.cached, len(response.content)
        if self.parts is not None:
            self.parts.append(response.content)

    def failed(self, exc: Exception) -> None:
        """The call raised ``exc``. (Cancellation is not an ``Exception``: the status
        stays ``cancelled``, or ``ok`` for a stream closed after its last chunk.)"""
        error = StreamError.from_exception(exc)
        self.status, self.error_type, self.error_code = "error", error.error_type, error.error_code
        if isinstance(exc, ChainweaveError) and exc.provider is not None:
            self.provider = exc.provider  # which provider failed, when one did

    def add(self, chunk: StreamChunk) -> None:
        """One chunk of a stream reached the caller."""
        self.model = chunk.model or self.model
        self.provider = chunk.provider or self.provider
        self.cached = self.cached or chunk.cached
        self.usage = chunk.usage or self.usage
        if chunk.delta:
            self.chars += len(chunk.delta)
            if self.parts is not None:
                self.parts.append(chunk.delta)
        if chunk.error is not None:
            self.status = "error"
            self.error_type, self.error_code = chunk.error.error_type, chunk.error.error_code
        if chunk.finish_reason is not None:
            self.finish_reason = chunk.finish_reason
            self.status = "error" if chunk.error is not None else "ok"

    def ended(self) -> None:
        """The stream ran to its end (with or without a finish chunk)."""
        if self.status == "cancelled":
            self.status = "ok"


class AuditLog(Stage):
    """Write one JSON audit record per request; see the module docstring for its fields.

    Args:
        path: A JSONL file to append records to; created with mode ``0o600``.
        logger: Where records go without a ``path`` (INFO); ``chainweave.audit`` by
            default.
        log_content: Also record the request's messages and the answer's text.
        content_filter: Applied to each text recorded with ``log_content``; a filter
            that raises leaves the content out of that record.

    Raises:
        ConfigurationError: The file cannot be opened for appending.
    """

    name = "audit"

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 logger: logging.Logger | None = None, log_content: bool = False,
                 content_filter: ContentFilter | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.logger = logger or get_logger("chainweave.audit")
        self.log_content = log_content
        self.content_filter = content_filter
        self._lock = threading.Lock()
        self._file: TextIO | None = None if self.path is None else _open(self.path)

    def __repr__(self) -> str:
        target = str(self.path) if self.path is not None else f"logger:{self.logger.name}"
        return f"AuditLog({target!r}, log_content={self.log_content})"

    async def chat(self, request: ChatRequest, call: Call, call_next: NextChat) -> ChatResponse:
        """Call on and record the outcome, whatever it is; errors are re-raised."""
        outcome = _Outcome(self.log_content)
        try:
            response = await call_next(request)
            outcome.answered(response)
            return response
        except Exception as exc:
            outcome.failed(exc)
            raise
        finally:
            self._write(request, call, outcome)

    async def stream(self, request: ChatRequest, call: Call,
                     call_next: NextStream) -> AsyncIterator[StreamChunk]:
        """Pass the chunks through; record the outcome when the stream ends or is closed."""
        outcome = _Outcome(self.log_content)
        try:
            async with closing_stream(call_next(request)) as chunks:
                async for chunk in chunks:
                    outcome.add(chunk)
                    yield chunk
            outcome.ended()
        except Exception as exc:
            outcome.failed(exc)
            raise
        finally:
            self._write(request, call, outcome)

    async def aclose(self) -> None:
        """Close the file; records written after this are reported as lost."""
        with self._lock:
            if self._file is not None:
                self._file.close()

    # --- records -------------------------------------------------------------------------

    def _write(self, request: ChatRequest, call: Call, outcome: _Outcome) -> None:
        """Build and write the record; a failure is logged, never raised."""
        try:
            line = _ENCODER.encode(_redacted(self._record(request, call, outcome)))
            if self._file is None:
                self.logger.info(line)
                return
            with self._lock:
                self._file.write(line + "\n")
                self._file.flush()
        except Exception:
            _log.warning("audit record for request %s was not written", call.request_id,
                         exc_info=True)

    def _record(self, request: ChatRequest, call: Call, outcome: _Outcome) -> dict[str, Any]:
        usage = outcome.usage
        record: dict[str, Any] = {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "event": "chat",
            "request_id": call.request_id,
            "streaming": call.streaming,
            "model": {"requested": request.model, "answered": outcome.model},
            "provider": outcome.provider,
            "status": outcome.status,
            "error_type": outcome.error_type,
            "error_code": outcome.error_code,
            "latency_ms": round(call.elapsed_ms, 3),
            "usage": None if usage is None else usage.model_dump(),
            "finish_reason": outcome.finish_reason,
            "cached": call.cached or outcome.cached,
            "replayed": call.replayed,
            "rate_limited": call.rate_limited,
            "message_count": len(request.messages),
            "prompt_chars": sum(len(message.text) for message in request.messages),
            "completion_chars": outcome.chars,
            "security_events": [event.to_dict() for event in call.events],
            "user": None if request.user is None else pseudonym(request.user),
        }
        if self.log_content:
            record.update(self._content(request, outcome))
        return record

    def _content(self, request: ChatRequest, outcome: _Outcome) -> dict[str, Any]:
        """``messages`` and ``completion``, filtered; left out if the filter fails."""
        keep = self.content_filter or (lambda text: text)
        try:
            return {
                "messages": [{"role": m.role, "content": keep(m.text)} for m in request.messages],
                "completion": keep("".join(outcome.parts or ())),
            }
        except Exception:
            _log.warning("audit content_filter failed; content left out of the record",
                         exc_info=True)
            return {"content_omitted": "content_filter failed"}
