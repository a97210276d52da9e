"""What the Redis stores share: the lazy ``redis.asyncio`` import, URL checks, the client
(opened by the store, or the caller's) and Redis failures as :class:`StoreError`.

``redis`` is an optional extra, so it is imported only when a Redis store is made; each
function takes the store's class name (``owner``) for its messages.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from chainweave._internal.redact import redact, register_secret
from chainweave.errors import ConfigurationError, StoreError
from chainweave.pipeline.backends import safe_url

__all__ = ["RedisConnection", "checked_url", "redis_module", "text"]

T = TypeVar("T")

_SCHEMES = ("redis", "rediss", "unix")


def redis_module(owner: str) -> ModuleType:
    """``redis.asyncio``; a ConfigurationError naming the extra when it is missing."""
    try:
        import redis.asyncio as redis_asyncio
    except ImportError as exc:
        raise ConfigurationError(
            f"{owner} needs the redis package: pip install 'chainweave[redis]'") from exc
    return redis_asyncio


def checked_url(owner: str, url: object) -> str:
    """``url`` (``$REDIS_URL`` when None) if it is a usable Redis URL.

    Its passwords (in the user part and in ``?password=``) are registered as secrets, so
    no message or log shows them.

    Raises:
        ConfigurationError: No URL, a malformed one, or another scheme; ``field="url"``.
    """
    if url is None:
        url = os.environ.get("REDIS_URL")
    if not isinstance(url, str) or not url:
        raise ConfigurationError(f"{owner} needs a url such as 'redis://localhost:6379/0' "
                                 "(or $REDIS_URL set), or a client", field="url")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is what raises on a bad one
    except ValueError as exc:
        raise ConfigurationError(f"{owner} url {safe_url(url)} is malformed: {exc}",
                                 field="url") from None
    register_secret(parts.password)
    for password in parse_qs(parts.query).get("password", ()):
        register_secret(password)
    if parts.scheme not in _SCHEMES:
        raise ConfigurationError(f"{owner} url {safe_url(url)} must start with redis://, "
                                 "rediss:// or unix://", field="url")
    return url


def text(value: object) -> str:
    """A reply as text, whether or not the client decodes responses."""
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisConnection:
    """A Redis store's client: opened from ``url`` and closed with the store, or the
    caller's, which is never closed here.

    Args:
        owner: The store's class name, for messages.
        url: The server (see :func:`checked_url`); only read when ``client`` is None.
        client: A ``redis.asyncio.Redis`` of the caller's.
        prefix: The store's key prefix, for messages.

    Raises:
        ConfigurationError: No usable URL, or the redis extra is missing.
    """

    def __init__(self, owner: str, url: str | None, client: Any, prefix: str) -> None:
        module = redis_module(owner)
        from redis import exceptions

        self.owned = client is None
        if client is None:
            url = checked_url(owner, url)
            client = module.Redis.from_url(url, decode_responses=True)
        self.client: Any = client
        #: Where the client points, without credentials.
        self.where = "(given client)" if url is None else safe_url(url)
        #: How the store shows itself: ``Owner('redis://host:6379/0', prefix='p:')``.
        self.label = f"{owner}({self.where!r}, prefix={prefix!r})"
        self.watch_error = exceptions.WatchError
        self._errors: tuple[type[BaseException], ...] = (exceptions.RedisError, OSError)
        self._transient: tuple[type[BaseException], ...] = (
            exceptions.ConnectionError, exceptions.TimeoutError, OSError)
        self._prefix = prefix
        self.closed = False

    async def call(self, call: Callable[[], Awaitable[T]]) -> T:
        """Make and await a Redis call; Redis errors become StoreError (retryable when the
        server could not be reached or did not answer in time).

        Raises:
            StoreError: Redis failed, or the store is closed.
        """
        if self.closed:
            raise StoreError(f"{self.label} is closed", details={"store": "redis"})
        try:
            return await call()
        except self._errors as exc:
            raise StoreError(f"Redis at {self.where} failed: {type(exc).__name__}: "
                             f"{redact(str(exc))}", retryable=isinstance(exc, self._transient),
                             details={"store": "redis", "url": self.where,
                                      "prefix": self._prefix}) from None

    async def aclose(self) -> None:
        """Close the client if it was opened here; later calls are refused. Safe twice."""
        if self.closed:
            return
        self.closed = True
        if self.owned:
            await self.client.aclose()
