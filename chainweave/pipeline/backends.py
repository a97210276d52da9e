"""Where the response cache and the idempotency store keep their entries.

Both stages speak one small async key-value protocol, :class:`StoreBackend`: string
keys, string values (JSON, never pickle), a time to live on every entry, and an atomic
set-if-absent for claiming a key. Two backends implement it:

* :class:`MemoryBackend`, a TTL+LRU dict in this process (an ``OrderedDict``).
* :class:`RedisBackend`, shared by every process that points at one Redis. When Redis
  cannot be reached it carries on with an in-memory fallback, says so in one warning,
  and tries Redis again every ``retry_interval`` seconds.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable
from urllib.parse import parse_qs, urlsplit

from chainweave._internal.redact import get_logger, redact, register_secret
from chainweave.errors import ConfigurationError, InputValidationError

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["MemoryBackend", "RedisBackend", "StoreBackend"]

logger = get_logger("chainweave.pipeline.backends")

T = TypeVar("T")

_SCHEMES = ("redis", "rediss", "unix")
# Deletes KEYS[1] only while it still holds ARGV[1]: an owner releasing its own claim
# must not remove the claim another process took over after it expired.
_DELETE_IF_EQUAL = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


@runtime_checkable
class StoreBackend(Protocol):
    """An async string key-value store with a time to live on every entry.

    ``ttl`` is in seconds; ``None`` means the backend's default. Implementations must
    make :meth:`add` atomic: of many concurrent ``add`` calls for one key, one wins.
    """

    async def get(self, key: str) -> str | None:
        """The value stored under ``key``, or ``None`` when absent or expired."""
        ...

    async def set(self, key: str, value: str, ttl: float | None = None) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds, replacing what was there."""
        ...

    async def add(self, key: str, value: str, ttl: float | None = None) -> bool:
        """Store ``value`` only if ``key`` is absent; ``True`` when it was stored."""
        ...

    async def delete(self, key: str, *, only_if: str | None = None) -> bool:
        """Remove ``key`` (only while it holds ``only_if``, when given); ``True`` if removed."""
        ...

    async def aclose(self) -> None:
        """Release connections; the backend is not used afterwards."""
        ...


# --- argument checks -------------------------------------------------------------------


def check_ttl(owner: str, field: str, value: object) -> float:
    """``value`` as a finite number of seconds > 0, or an error naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not 0 < value < math.inf:
        raise InputValidationError(
            f"{owner}.{field} must be a finite number of seconds > 0, got {value!r}",
            field=field)
    return float(value)


def check_size(owner: str, field: str, value: object) -> int:
    """``value`` as an integer >= 1, or an error naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputValidationError(f"{owner}.{field} must be an integer >= 1, got {value!r}",
                                   field=field)
    return value


def _check_entry(owner: str, key: object, value: object = "") -> None:
    if not isinstance(key, str) or not key:
        raise InputValidationError(f"{owner}: key must be a non-empty string", field="key")
    if not isinstance(value, str):
        raise InputValidationError(
            f"{owner}: value must be a string (JSON), got {type(value).__name__}",
            field="value")


# --- in memory -------------------------------------------------------------------------


class MemoryBackend:
    """A TTL+LRU store in this process: each entry lives for its own ``ttl``.

    When ``max_size`` entries are held, the least recently used one makes room; an
    expired entry is dropped when it is next looked at (or pushed out as the least
    recently used), so every operation is O(1). Operations never wait, so :meth:`add`
    is atomic within an event loop; a lock keeps the store consistent when threads
    share it.

    Args:
        max_size: The most entries kept.
        ttl: Seconds an entry lives when ``set``/``add`` give no ``ttl``.
        timer: The clock entries expire by (seconds, monotonic); for tests.
    """

    def __init__(self, max_size: int = 1000, ttl: float = 3600.0, *,
                 timer: Callable[[], float] = time.monotonic) -> None:
        self._max_size = check_size("MemoryBackend", "max_size", max_size)
        self._ttl = check_ttl("MemoryBackend", "ttl", ttl)
        # key -> (stored text, expiry time on ``timer``), least recently used first. An
        # OrderedDict, not a cachetools.LRUCache: its methods are C, and every request
        # makes several calls here.
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._timer = timer
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryBackend(max_size={self._max_size}, ttl={self._ttl:g})"

    def __len__(self) -> int:
        with self._lock:
            now = self._timer()
            for key in [k for k, (_, expires) in self._entries.items() if expires <= now]:
                del self._entries[key]
            return len(self._entries)

    def _ttl_or_default(self, ttl: float | None) -> float:
        return self._ttl if ttl is None else check_ttl("MemoryBackend", "ttl", ttl)

    def _live(self, key: str) -> tuple[str, float] | None:
        """The entry under ``key`` unless it has expired (then it is dropped), now the
        most recently used; locked."""
        item = self._entries.get(key)
        if item is None:
            return None
        if item[1] <= self._timer():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return item

    def _put(self, key: str, value: str, seconds: float) -> None:
        """Store an entry as the most recently used, making room if need be; locked."""
        entries = self._entries
        entries[key] = (value, self._timer() + seconds)
        entries.move_to_end(key)
        if len(entries) > self._max_size:
            entries.popitem(last=False)

    async def get(self, key: str) -> str | None:
        """The value stored under ``key``, or ``None``."""
        with self._lock:
            item = self._live(key)
        return None if item is None else item[0]

    async def set(self, key: str, value: str, ttl: float | None = None) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds."""
        _check_entry("MemoryBackend", key, value)
        seconds = self._ttl_or_default(ttl)
        with self._lock:
            self._put(key, value, seconds)

    async def add(self, key: str, value: str, ttl: float | None = None) -> bool:
        """Store ``value`` only if ``key`` is absent (or expired)."""
        _check_entry("MemoryBackend", key, value)
        seconds = self._ttl_or_default(ttl)
        with self._lock:
            if self._live(key) is not None:
                return False
            self._put(key, value, seconds)
            return True

    async def delete(self, key: str, *, only_if: str | None = None) -> bool:
        """Remove ``key``, only while it holds ``only_if`` when that is given."""
        with self._lock:
            item = self._live(key)
            if item is None or (only_if is not None and item[0] != only_if):
                return False
            del self._entries[key]
            return True

    async def aclose(self) -> None:
        """Nothing to release; entries stay until they expire."""


# --- Redis -----------------------------------------------------------------------------


def _redis_module() -> ModuleType:
    try:
        import redis.asyncio as redis_asyncio
    except ImportError as exc:
        raise ConfigurationError(
            "RedisBackend needs the redis package: pip install 'chainweave[redis]'"
        ) from exc
    return redis_asyncio


def safe_url(url: str) -> str:
    """``url`` without its credentials, for logs and messages.

    A user and password become ``***``; a query string (redis-py reads ``?password=``
    there too) is left out.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "[unparseable URL]"
    if ":" in host:  # IPv6
        host = f"[{host}]"
    netloc = parts.netloc
    if parts.password is not None or parts.username is not None:
        netloc = f"***@{host}{port}"
    query = "?***" if parts.query else ""
    return redact(f"{parts.scheme}://{netloc}{parts.path}{query}")


def _checked_url(url: object) -> str:
    if not isinstance(url, str) or not url:
        raise ConfigurationError("RedisBackend url must be a non-empty string such as "
                                 "'redis://localhost:6379/0'", field="url")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is what raises on a bad one
    except ValueError as exc:
        raise ConfigurationError(f"RedisBackend url {safe_url(url)} is malformed: {exc}",
                                 field="url") from None
    if parts.scheme not in _SCHEMES:
        raise ConfigurationError(
            f"RedisBackend url {safe_url(url)} must start with redis://, rediss:// or "
            "unix://", field="url")
    register_secret(parts.password)
    for password in parse_qs(parts.query).get("password", ()):
        register_secret(password)
    return url


class RedisBackend:
    """A store in Redis, shared by every process using the same server and ``prefix``.

    When a Redis call fails (server down, timeout, any Redis error), the call is served
    by ``fallback`` instead and one warning is logged; until ``retry_interval`` seconds
    have passed, calls go straight to the fallback. Then one call tries Redis again; when
    it answers, one info line says so and Redis is used from then on. Entries written
    to the fallback meanwhile stay in this process only.

    Args:
        url: ``redis://[user:password@]host:port/db``, ``rediss://...`` or
            ``unix:///path``. The password is never logged.
        prefix: Put before every key, so several applications can share a server.
        fallback: The in-memory store used while Redis is unavailable; a
            :class:`MemoryBackend` with ``ttl`` when left out.
        retry_interval: Seconds between attempts to reach Redis again.
        ttl: Seconds an entry lives when ``set``/``add`` give no ``ttl``.
        socket_timeout: Seconds to wait for Redis to connect or answer.

    Raises:
        ConfigurationError: when the URL is malformed or the redis package is missing.
    """

    def __init__(self, url: str, *, prefix: str = "chainweave:",
                 fallback: MemoryBackend | None = None, retry_interval: float = 30.0,
                 ttl: float = 3600.0, socket_timeout: float = 2.0) -> None:
        url = _checked_url(url)
        if not isinstance(prefix, str):
            raise InputValidationError("RedisBackend.prefix must be a string", field="prefix")
        if isinstance(retry_interval, bool) or not isinstance(retry_interval, int | float) \
                or not 0 <= retry_interval < math.inf:
            raise InputValidationError(
                f"RedisBackend.retry_interval must be a finite number of seconds >= 0, "
                f"got {retry_interval!r}", field="retry_interval")
        self._ttl = check_ttl("RedisBackend", "ttl", ttl)
        check_ttl("RedisBackend", "socket_timeout", socket_timeout)
        self._url = safe_url(url)
        self._prefix = prefix
        self._fallback = fallback if fallback is not None else MemoryBackend(ttl=self._ttl)
        self._retry_interval = float(retry_interval)
        self._client, self._errors = _client_for(url, socket_timeout)
        self._down = False
        self._retry_at = 0.0

    def __repr__(self) -> str:
        return f"RedisBackend({self._url!r}, prefix={self._prefix!r})"

    @property
    def using_fallback(self) -> bool:
        """Whether calls are being served by the in-memory fallback."""
        return self._down

    def _redis_turn(self) -> bool:
        """Whether this call goes to Redis: always when up, one probe per interval when down."""
        if not self._down:
            return True
        now = time.monotonic()
        if now < self._retry_at:
            return False
        self._retry_at = now + self._retry_interval  # the other calls keep to the fallback
        return True

    def _went_down(self, exc: BaseException) -> None:
        self._retry_at = time.monotonic() + self._retry_interval
        if self._down:
            logger.debug("Redis at %s is still unavailable: %s", self._url,
                         type(exc).__name__)
            return
        self._down = True
        logger.warning(
            "Redis at %s is unavailable (%s: %s); using the in-memory fallback and trying "
            "again every %gs", self._url, type(exc).__name__, redact(str(exc)),
            self._retry_interval)

    def _came_back(self) -> None:
        if self._down:
            self._down = False
            logger.info("Redis at %s is available again; using it from now on", self._url)

    async def _call(self, on_redis: Callable[[], Awaitable[T]],
                    on_fallback: Callable[[], Awaitable[T]]) -> T:
        if not self._redis_turn():
            return await on_fallback()
        try:
            result = await on_redis()
        except self._errors as exc:
            self._went_down(exc)
            return await on_fallback()
        self._came_back()
        return result

    def _ms(self, ttl: float | None) -> int:
        seconds = self._ttl if ttl is None else check_ttl("RedisBackend", "ttl", ttl)
        return max(1, math.ceil(seconds * 1000))

    async def get(self, key: str) -> str | None:
        """The value stored under ``key``, or ``None``."""
        _check_entry("RedisBackend", key)
        name = self._prefix + key

        async def on_redis() -> str | None:
            value = await self._client.get(name)
            return value if value is None else str(value)

        return await self._call(on_redis, lambda: self._fallback.get(key))

    async def set(self, key: str, value: str, ttl: float | None = None) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds."""
        _check_entry("RedisBackend", key, value)
        ms, name = self._ms(ttl), self._prefix + key

        async def on_redis() -> None:
            await self._client.set(name, value, px=ms)

        await self._call(on_redis, lambda: self._fallback.set(key, value, ms / 1000))

    async def add(self, key: str, value: str, ttl: float | None = None) -> bool:
        """Store ``value`` only if ``key`` is absent (``SET NX``)."""
        _check_entry("RedisBackend", key, value)
        ms, name = self._ms(ttl), self._prefix + key

        async def on_redis() -> bool:
            return bool(await self._client.set(name, value, px=ms, nx=True))

        return await self._call(on_redis, lambda: self._fallback.add(key, value, ms / 1000))

    async def delete(self, key: str, *, only_if: str | None = None) -> bool:
        """Remove ``key``, only while it holds ``only_if`` when that is given."""
        _check_entry("RedisBackend", key)
        name = self._prefix + key

        async def on_redis() -> bool:
            if only_if is None:
                return bool(await self._client.delete(name))
            return bool(await self._client.eval(_DELETE_IF_EQUAL, 1, name, only_if))

        return await self._call(on_redis,
                                lambda: self._fallback.delete(key, only_if=only_if))

    async def aclose(self) -> None:
        """Close the connection pool and the fallback."""
        await self._client.aclose()
        await self._fallback.aclose()


def _client_for(url: str, socket_timeout: float) -> tuple[Redis, tuple[type[BaseException], ...]]:
    """A client for ``url`` and the errors that mean "Redis is not usable now"."""
    redis_asyncio = _redis_module()
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError

    try:
        # One immediate retry replaces a pooled connection that a Redis restart broke;
        # more would only delay the switch to the fallback.
        client: Redis = redis_asyncio.Redis.from_url(
            url, decode_responses=True, socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout, retry=Retry(NoBackoff(), 1))
    except ValueError as exc:
        raise ConfigurationError(f"RedisBackend url {safe_url(url)} is not usable: "
                                 f"{redact(str(exc))}", field="url") from None
    return client, (RedisError, OSError)
