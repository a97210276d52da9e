"""The idempotency stage: a request sent twice with one ``request_id`` is answered once.

A request without ``request_id`` passes straight through. The first request with a
given id is answered by the rest of the pipeline and its response is stored for
``ttl`` seconds; a later request with the same id and the same payload (the same
:func:`~chainweave.pipeline.keys.request_fingerprint`) gets the stored response back
with ``cached=True`` and ``Call.replayed`` set, without a second provider call. The
same id with a different payload raises
:class:`~chainweave.errors.IdempotencyConflictError` (HTTP 409), which names the
``request_id`` and never the payload.

While the first call is still running, repeats wait for it: in this process through a
shared future, across processes (a shared :class:`~chainweave.pipeline.backends.RedisBackend`)
through a ``pending`` marker claimed with an atomic set-if-absent that expires after
``wait_timeout``, which the others poll. When the first call fails, nothing is stored:
its waiters in this process get the same error, and a later retry makes a new call.
When the first call is cancelled or its stream abandoned, one waiter takes over.

Streams are recorded as they pass and stored only when they end well; a repeat is
served as a stream replayed from the stored response.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace

from chainweave._internal.redact import get_logger
from chainweave.errors import IdempotencyConflictError, InputValidationError
from chainweave.pipeline.backends import MemoryBackend, StoreBackend, check_size, check_ttl
from chainweave.pipeline.base import Call, NextChat, NextStream, Stage, closing_stream
from chainweave.pipeline.cache import StreamRecorder, replay_chunks, stored_json
from chainweave.pipeline.keys import call_fingerprint
from chainweave.types import ChatRequest, ChatResponse, StreamChunk

__all__ = ["Idempotency"]

logger = get_logger("chainweave.pipeline.idempotency")

_KEY_PREFIX = "idem:"
_FORMAT = 1


@dataclass(slots=True)
class _Flight:
    """The first call with a request_id running in this process; waiters share ``outcome``.

    ``outcome`` ends with the response, the call's exception, or ``None`` when the call
    was cancelled or abandoned and a waiter should take over.
    """

    fingerprint: str
    outcome: asyncio.Future[ChatResponse | None]


@dataclass(frozen=True, slots=True)
class _Record:
    """A parsed store entry: a claim (``response is None``) or a finished call."""

    fingerprint: str
    response: ChatResponse | None


def _conflict(request_id: str) -> IdempotencyConflictError:
    return IdempotencyConflictError(
        f"request_id {request_id!r} was already used with a different payload; use a new "
        "request_id for a different request", details={"request_id": request_id})


def _entry(state: str, fingerprint: str, last: str) -> str:
    """A store entry's JSON, ``last`` holding its last field; spelled out, since a
    ``json.dumps`` of a dict would cost more than the rest of a claim."""
    return (f'{{"v": {_FORMAT}, "state": "{state}", "fingerprint": {json.dumps(fingerprint)}, '
            f'{last}}}')


def _parse(raw: str) -> _Record:
    """A store entry; raises ``ValueError`` (or a subclass) when it is corrupted."""
    data: Any = json.loads(raw)
    if not isinstance(data, dict) or data.get("v") != _FORMAT \
            or not isinstance(data.get("fingerprint"), str):
        raise ValueError("not an idempotency record")
    if data.get("state") == "pending":
        return _Record(data["fingerprint"], None)
    if data.get("state") == "done":
        return _Record(data["fingerprint"], ChatResponse.model_validate(data["response"]))
    raise ValueError("unknown idempotency record state")


class Idempotency(Stage):
    """Answer a repeated ``request_id`` with the first call's stored result.

    Args:
        backend: Where results and claims live; a
            :class:`~chainweave.pipeline.backends.MemoryBackend` of ``max_size`` entries
            when left out. Use a shared ``RedisBackend`` when several processes serve.
        ttl: Seconds a stored result is kept (and replayed).
        max_size: The most entries the default in-memory backend keeps.
        wait_timeout: The longest a first call is expected to take. Its claim expires
            after this long; a caller still waiting for it, in this process or
            another, then makes the call itself.
        poll_interval: Seconds between looks at another process's claim.

    Raises:
        InputValidationError: for a ``ttl``, ``wait_timeout`` or ``poll_interval`` that
            is not > 0, a ``max_size`` below 1, or a ``backend`` of the wrong kind.
    """

    name = "idempotency"

    def __init__(self, backend: StoreBackend | None = None, *, ttl: float = 86400.0,
                 max_size: int = 10000, wait_timeout: float = 600.0,
                 poll_interval: float = 0.05) -> None:
        self._ttl = check_ttl("Idempotency", "ttl", ttl)
        check_size("Idempotency", "max_size", max_size)
        self._claim_ttl = check_ttl("Idempotency", "wait_timeout", wait_timeout)
        self._poll = check_ttl("Idempotency", "poll_interval", poll_interval)
        if backend is not None and not isinstance(backend, StoreBackend):
            raise InputValidationError(
                f"Idempotency.backend must be a StoreBackend, got {type(backend).__name__}",
                field="backend")
        self._backend: StoreBackend = (
            backend if backend is not None else MemoryBackend(max_size, self._ttl))
        self._flights: dict[str, _Flight] = {}

    def __repr__(self) -> str:
        return f"Idempotency(backend={self._backend!r}, ttl={self._ttl:g})"

    @property
    def backend(self) -> StoreBackend:
        """Where results and claims live."""
        return self._backend

    async def chat(self, request: ChatRequest, call: Call, call_next: NextChat) -> ChatResponse:
        """Pass through, or answer a repeated ``request_id`` from the first call."""
        request_id = request.request_id
        if not request_id:
            return await call_next(request)
        fingerprint = call_fingerprint(request, call)
        stored = await self._join(request_id, fingerprint)
        if stored is None:
            flight, claim = await self._claim_first(request_id, fingerprint)
            if isinstance(claim, str):
                return await self._run_first(request_id, flight, claim,
                                             lambda: call_next(request), call)
            stored = claim
        return _replayed(call, stored)

    def stream(self, request: ChatRequest, call: Call,
               call_next: NextStream) -> AsyncIterator[StreamChunk]:
        """Pass through, or replay a repeated ``request_id``'s result as a stream."""
        if not request.request_id:
            return call_next(request)
        return self._stream(request, request.request_id, call, call_next)

    async def _stream(self, request: ChatRequest, request_id: str, call: Call,
                      call_next: NextStream) -> AsyncIterator[StreamChunk]:
        fingerprint = call_fingerprint(request, call)
        stored = await self._join(request_id, fingerprint)
        if stored is None:
            flight, claim = await self._claim_first(request_id, fingerprint)
            if isinstance(claim, str):
                first = self._stream_first(request, request_id, flight, claim, call_next)
                async with closing_stream(first) as chunks:
                    async for chunk in chunks:
                        yield chunk
                return
            stored = claim
        _replayed(call, stored)
        for chunk in replay_chunks(stored):
            yield chunk

    async def aclose(self) -> None:
        """Close the backend."""
        await self._backend.aclose()

    # --- this process: one first call per request_id, the rest wait -------------------

    async def _join(self, request_id: str, fingerprint: str) -> ChatResponse | None:
        """Wait for this process's running call with ``request_id``, if there is one.

        ``None`` when there is none (any more), or when it has run past
        ``wait_timeout`` (its claim has expired too): the caller goes on to claim the id.
        """
        if request_id not in self._flights:
            return None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._claim_ttl
        while (flight := self._flights.get(request_id)) is not None:
            if flight.fingerprint != fingerprint:
                raise _conflict(request_id)
            try:
                async with asyncio.timeout_at(deadline):
                    # Shielded: a waiter that is cancelled must not cancel the outcome.
                    response = await asyncio.shield(flight.outcome)
            except TimeoutError:
                return None
            if response is not None:
                return response
        return None

    def _open(self, request_id: str, fingerprint: str) -> _Flight:
        flight = _Flight(fingerprint, asyncio.get_running_loop().create_future())
        self._flights[request_id] = flight
        return flight

    def _close(self, request_id: str, flight: _Flight,
               outcome: ChatResponse | BaseException | None) -> None:
        """End ``flight``: waiters get the response, the error, or (``None``) the lead."""
        if self._flights.get(request_id) is flight:
            del self._flights[request_id]
        if flight.outcome.done():
            return
        if isinstance(outcome, Exception):
            flight.outcome.set_exception(outcome)
            flight.outcome.exception()  # retrieved: there may be no waiter to raise it
        else:
            # A response, or a cancelled/abandoned call (BaseException): one waiter leads.
            flight.outcome.set_result(outcome if isinstance(outcome, ChatResponse) else None)

    async def _claim_first(self, request_id: str,
                           fingerprint: str) -> tuple[_Flight, ChatResponse | str]:
        """Open this process's flight and claim the id in the backend.

        Returns the flight and either the stored response (the id was answered before)
        or the claim's token (this call must answer it).
        """
        flight = self._open(request_id, fingerprint)
        try:
            claim = await self._claim(request_id, fingerprint)
        except BaseException as exc:
            self._close(request_id, flight, exc)
            raise
        if isinstance(claim, ChatResponse):
            self._close(request_id, flight, claim)
        return flight, claim

    async def _run_first(self, request_id: str, flight: _Flight, token: str,
                         run: Callable[[], Awaitable[ChatResponse]],
                         call: Call) -> ChatResponse:
        try:
            response = await run()
            await self._save(request_id, flight.fingerprint, token, response, call)
        except BaseException as exc:
            await self._end(request_id, flight, exc, release=token)
            raise
        self._close(request_id, flight, response)
        return response

    async def _stream_first(self, request: ChatRequest, request_id: str, flight: _Flight,
                            token: str, call_next: NextStream) -> AsyncIterator[StreamChunk]:
        recorder = StreamRecorder(request)
        try:
            async with closing_stream(call_next(request)) as chunks:
                async for chunk in chunks:
                    recorder.add(chunk)
                    yield chunk
            response = recorder.response()
            if response is not None:
                await self._save(request_id, flight.fingerprint, token, response)
        except BaseException as exc:  # GeneratorExit too: the consumer stopped reading
            await self._end(request_id, flight, exc, release=token)
            raise
        # A stream that reported an error in a chunk stores nothing; a waiter takes over.
        await self._end(request_id, flight, response,
                        release=token if response is None else None)

    async def _end(self, request_id: str, flight: _Flight,
                   outcome: ChatResponse | BaseException | None, *,
                   release: str | None) -> None:
        """Release the claim ``release`` (when given), then end ``flight`` whatever happens."""
        try:
            if release is not None:
                await self._release(request_id, release)
        finally:
            self._close(request_id, flight, outcome)

    # --- the backend: claims and results shared between processes ---------------------

    async def _claim(self, request_id: str, fingerprint: str) -> ChatResponse | str:
        """Claim ``request_id`` or find its stored response.

        The claim is returned as its exact stored value, unique to this call, which is
        the token that releases it. While another process holds the claim for the same
        payload, poll until it stores a result, releases the claim, or the claim expires.
        """
        key = _KEY_PREFIX + request_id
        pending = _entry("pending", fingerprint, f'"owner": "{secrets.token_hex(16)}"')
        while True:
            if await self._backend.add(key, pending, self._claim_ttl):
                return pending
            raw = await self._backend.get(key)
            if raw is None:  # released or expired between the two calls
                continue
            record = await self._read(key, raw)
            if record is None:
                continue
            if record.fingerprint != fingerprint:
                raise _conflict(request_id)
            if record.response is not None:
                return record.response
            await asyncio.sleep(self._poll)

    async def _read(self, key: str, raw: str) -> _Record | None:
        """Parse an entry; a corrupted one is logged and removed, and ``None`` returned."""
        try:
            return _parse(raw)
        except ValueError as exc:  # JSON and validation errors are ValueErrors
            logger.warning("idempotency entry %s is corrupted (%s); discarding it", key,
                           type(exc).__name__)
            await self._backend.delete(key, only_if=raw)
            return None

    async def _save(self, request_id: str, fingerprint: str, token: str,
                    response: ChatResponse, call: Call | None = None) -> None:
        if response.finish_reason == "error":
            await self._release(request_id, token)
            return
        # pydantic writes the response's JSON itself, much faster than json.dumps.
        body = response.model_dump_json() if call is None else stored_json(response, call)
        record = _entry("done", fingerprint, f'"response": {body}')
        try:
            await self._backend.set(_KEY_PREFIX + request_id, record, self._ttl)
        except Exception as exc:
            # The call succeeded; failing it now would make the client pay for it twice.
            logger.warning("idempotency store could not save request_id %r (%s)",
                           request_id, type(exc).__name__)
            await self._release(request_id, token)

    async def _release(self, request_id: str, token: str) -> None:
        """Remove this call's claim (not one another process took over since)."""
        try:
            await self._backend.delete(_KEY_PREFIX + request_id, only_if=token)
        except Exception as exc:
            logger.warning("idempotency store could not release request_id %r (%s)",
                           request_id, type(exc).__name__)


def _replayed(call: Call, response: ChatResponse) -> ChatResponse:
    """``response`` as a replay: marked ``cached``, with ``Call.replayed`` set."""
    call.replayed = True
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event("idempotency.replay", {"chainweave.request_id": call.request_id})
    return response if response.cached else response.model_copy(update={"cached": True})
