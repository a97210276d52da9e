"""A real HTTP/1.1 server on 127.0.0.1 for wire-adapter tests and benchmarks.

It runs an asyncio server in a thread of its own, so tests' event loops never share it.
Replies are scripted per route: fixed JSON, error bodies with headers, or chunked
bodies written piece by piece (SSE split at irregular places), with delays, dropped
connections and resets. Every request it gets is recorded.

Run as a script (``python -m tests.stubserver``) it serves a fixed OpenAI chat reply
in its own process and prints its URL: the benchmark uses that.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 408: "Request Timeout", 413: "Payload Too Large",
            422: "Unprocessable Entity", 429: "Too Many Requests", 500: "Internal Server Error",
            502: "Bad Gateway", 503: "Service Unavailable", 529: "Overloaded"}


@dataclass
class Received:
    """One request the server got."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    """What the server answers. ``chunks`` are written one by one, chunked-encoded."""

    status: int = 200
    json: Any = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] | None = None
    delay: float = 0.0
    chunk_delay: float = 0.0
    drop_after: int | None = None
    reset: bool = False


Handler = Callable[[Received], Reply]


def sse_chunks(events: Iterable[str], *, seed: int = 7, max_piece: int = 11) -> list[bytes]:
    """Join SSE event blocks and cut the bytes at irregular places, 1..max_piece long."""
    raw = "".join(events).encode()
    rng = random.Random(seed)
    pieces, i = [], 0
    while i < len(raw):
        n = rng.randint(1, max_piece)
        pieces.append(raw[i:i + n])
        i += n
    return pieces


def sse_event(data: Any, event: str | None = None) -> str:
    """One SSE event block; dicts are JSON-encoded."""
    payload = data if isinstance(data, str) else json.dumps(data)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n"


class StubServer:
    """A scripted HTTP server. Use as a context manager, or ``start()``/``stop()``."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._routes: dict[tuple[str, str], Handler | deque[Reply]] = {}
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def route(self, method: str, path: str, *replies: Reply | Handler) -> None:
        """Answer ``method path`` with a handler, or these replies in turn (the last repeats)."""
        if len(replies) == 1 and callable(replies[0]) and not isinstance(replies[0], Reply):
            self._routes[(method, path)] = replies[0]
        else:
            self._routes[(method, path)] = deque(r for r in replies if isinstance(r, Reply))

    def start(self) -> StubServer:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        fut.result(timeout=10)
        return self

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        async def _close() -> None:
            if self._server is not None:
                self._server.close()
            current = asyncio.current_task()
            handlers = [t for t in asyncio.all_tasks() if t is not current]
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(_close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _reply_for(self, req: Received) -> Reply:
        route = self._routes.get((req.method, req.path))
        if route is None:
            return Reply(404, json={"error": {"message": f"no route {req.method} {req.path}"}})
        if callable(route):
            return route(req)
        return route.popleft() if len(route) > 1 else route[0]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                req = await _read_request(reader)
                if req is None:
                    break
                self.requests.append(req)
                reply = self._reply_for(req)
                if not await _write_reply(writer, reply):
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.transport.abort()


async def _read_request(reader: asyncio.StreamReader) -> Received | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    parts = urlsplit(target)
    return Received(method, parts.path, dict(parse_qsl(parts.query)), headers, body)


async def _write_reply(writer: asyncio.StreamWriter, reply: Reply) -> bool:
    """Write one reply; return False when the connection must close."""
    if reply.delay:
        await asyncio.sleep(reply.delay)
    if reply.reset:
        transport = writer.transport
        transport.abort()
        return False
    headers = {k.lower(): v for k, v in reply.headers.items()}
    body = json.dumps(reply.json).encode() if reply.json is not None else reply.body
    if reply.json is not None:
        headers.setdefault("content-type", "application/json")
    if reply.chunks is not None:
        headers["transfer-encoding"] = "chunked"
    else:
        headers["content-length"] = str(len(body))
    status_line = f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Status')}\r\n"
    head = status_line + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    writer.write(head.encode("latin-1"))
    if reply.chunks is None:
        writer.write(body)
        await writer.drain()
        return True
    for i, chunk in enumerate(reply.chunks):
        if reply.drop_after is not None and i >= reply.drop_after:
            await writer.drain()
            writer.transport.abort()
            return False
        writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        await writer.drain()
        if reply.chunk_delay:
            await asyncio.sleep(reply.chunk_delay)
    if reply.drop_after is not None and reply.drop_after >= len(reply.chunks):
        await writer.drain()
        writer.transport.abort()
        return False
    writer.write(b"0\r\n\r\n")
    await writer.drain()
    return True


def _bench_reply(_: Received) -> Reply:
    return Reply(json={
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "pong"}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    })


if __name__ == "__main__":
    server = StubServer()
    server.route("POST", "/v1/chat/completions", _bench_reply)
    server.start()
    print(server.url, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()
