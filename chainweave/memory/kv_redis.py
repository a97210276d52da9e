"""Key-value items in Redis, shared by every process using one server: :class:`RedisStore`.

The layout under ``prefix`` (``path`` is the namespace joined by
:func:`~chainweave.memory.kv.namespace_path`, each label followed by U+001F):

* ``{prefix}ns:{path}`` — one hash per namespace: field ``key``, value the record
  ``[created_at,updated_at,expires_at|null,value]`` as JSON text. ``get`` is one
  ``HGET``; small namespaces use Redis's compact hash encoding, where a key per item
  would cost a key's overhead each; and a namespace is gone exactly when its hash is,
  so no item counts are kept.
* ``{prefix}index`` — a sorted set of every item as ``path + U+001E + key``, all at
  score 0, so ``ZRANGEBYLEX`` walks the items under a prefix in (namespace, key) order
  with ``LIMIT`` paging (never ``KEYS`` or ``SCAN``). U+001E sorts below U+001F and
  every label character, so an item of ``("a",)`` comes before those of ``("a", "b")``.
* ``{prefix}namespaces`` — a sorted set of the paths that hold items, for
  :meth:`RedisStore.namespaces`.
* ``{prefix}expiry`` — a sorted set of the items put with a ``ttl``, scored by when
  they expire. Every write and listing first removes the expired ones, by the store's
  clock (passed in, so tests can inject one).

Every write and listing is one Lua script, so it is atomic: no reader sees the hash
and the indexes disagree. The scripts build key names themselves, so the store needs a
single Redis server (replicas and Sentinel are fine), not Redis Cluster.
"""

from __future__ import annotations

import builtins
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chainweave.errors import InputValidationError
from chainweave.memory.kv import (
    Item,
    Namespace,
    check_clock,
    check_key,
    check_namespace,
    check_page,
    check_put,
    namespace_path,
    path_namespace,
    prefix_range,
)
from chainweave.memory.redis_common import RedisConnection, text

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisStore"]

_ITEM_SEPARATOR = "\x1e"

# Lua: \30 is U+001E, the separator between an item's path and its key.
_PURGE = r"""
local p, now = ARGV[1], ARGV[2]
local function purge()
  local gone = redis.call('ZRANGEBYSCORE', p .. 'expiry', '-inf', now)
  for _, member in ipairs(gone) do
    local cut = string.find(member, '\30', 1, true)
    local path = string.sub(member, 1, cut - 1)
    redis.call('HDEL', p .. 'ns:' .. path, string.sub(member, cut + 1))
    redis.call('ZREM', p .. 'index', member)
    if redis.call('EXISTS', p .. 'ns:' .. path) == 0 then
      redis.call('ZREM', p .. 'namespaces', path)
    end
  end
  redis.call('ZREMRANGEBYSCORE', p .. 'expiry', '-inf', now)
end
purge()
"""

# ARGV: prefix, now, path, key, value JSON, expires_at ('' for none). Returns the record.
_PUT = _PURGE + r"""
local path, key, value, expires = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local member = path .. '\30' .. key
local old = redis.call('HGET', p .. 'ns:' .. path, key)
local created = now
if old then created = string.match(old, '^%[([^,]+),') end
local record = '[' .. created .. ',' .. now .. ',' .. (expires == '' and 'null' or expires)
  .. ',' .. value .. ']'
redis.call('HSET', p .. 'ns:' .. path, key, record)
redis.call('ZADD', p .. 'index', 0, member)
redis.call('ZADD', p .. 'namespaces', 0, path)
if expires == '' then
  redis.call('ZREM', p .. 'expiry', member)
else
  redis.call('ZADD', p .. 'expiry', expires, member)
end
return record
"""

# ARGV: prefix, now, path, key. Returns 1 when an item was removed.
_DELETE = _PURGE + r"""
local path, key = ARGV[3], ARGV[4]
local member = path .. '\30' .. key
if redis.call('HDEL', p .. 'ns:' .. path, key) == 0 then return 0 end
redis.call('ZREM', p .. 'index', member)
redis.call('ZREM', p .. 'expiry', member)
if redis.call('EXISTS', p .. 'ns:' .. path) == 0 then
  redis.call('ZREM', p .. 'namespaces', path)
end
return 1
"""

# ARGV: prefix, now, low, high, offset, count. Returns member, record, member, ...
_LIST = _PURGE + r"""
local members = redis.call('ZRANGEBYLEX', p .. 'index', ARGV[3], ARGV[4],
                           'LIMIT', ARGV[5], ARGV[6])
local out = {}
for i, member in ipairs(members) do
  local cut = string.find(member, '\30', 1, true)
  out[2 * i - 1] = member
  out[2 * i] = redis.call('HGET', p .. 'ns:' .. string.sub(member, 1, cut - 1),
                          string.sub(member, cut + 1))
end
return out
"""

# ARGV: prefix, now, low, high. Returns the paths.
_NAMESPACES = _PURGE + r"""
return redis.call('ZRANGEBYLEX', p .. 'namespaces', ARGV[3], ARGV[4])
"""


class RedisStore:
    """A :class:`~chainweave.memory.kv.KeyValueStore` in Redis (see the module docs).

    Args:
        url: ``redis://[user:password@]host:port/db``, ``rediss://...`` or
            ``unix:///path``; ``$REDIS_URL`` when neither this nor ``client`` is given.
            The password is never logged.
        client: A ``redis.asyncio.Redis`` to use instead of opening one; the store then
            never closes it.
        prefix: Put before every Redis key, so several stores can share a server.
        clock: The time in unix seconds, for timestamps and ``ttl``; inject one in tests.

    Raises:
        ConfigurationError: No usable URL, or the ``redis`` extra is not installed.
        InputValidationError: Another argument is wrong.
    """

    def __init__(self, url: str | None = None, *, client: Redis | None = None,
                 prefix: str = "chainweave:kv:", clock: Callable[[], float] = time.time) -> None:
        if not isinstance(prefix, str):
            raise InputValidationError(f"RedisStore: prefix must be a string, got {prefix!r}",
                                       field="prefix")
        check_clock("RedisStore", clock)
        self._redis = RedisConnection("RedisStore", url, client, prefix)
        self._client = self._redis.client
        self._prefix = prefix
        self._clock = clock
        self._put = self._client.register_script(_PUT)
        self._delete = self._client.register_script(_DELETE)
        self._list = self._client.register_script(_LIST)
        self._namespaces = self._client.register_script(_NAMESPACES)

    def __repr__(self) -> str:
        return self._redis.label

    async def put(self, namespace: Namespace, key: str, value: Any, *,
                  ttl: float | None = None) -> Item:
        """Store ``value`` under ``namespace`` and ``key`` in one atomic script."""
        labels, key, text, seconds = check_put("RedisStore.put", namespace, key, value, ttl)
        now = float(self._clock())
        expires = "" if seconds is None else repr(now + seconds)
        record = await self._run(self._put, repr(now), namespace_path(labels), key, text,
                                 expires)
        return _item(labels, key, _record(record))

    async def get(self, namespace: Namespace, key: str) -> Item | None:
        """The item under ``namespace`` and ``key``, or ``None``."""
        labels = check_namespace("RedisStore.get", namespace)
        key = check_key("RedisStore.get", key)
        name = f"{self._prefix}ns:{namespace_path(labels)}"
        raw = await self._redis.call(lambda: self._client.hget(name, key))
        if raw is None:
            return None
        record = _record(raw)
        if record[2] is not None and self._clock() >= record[2]:
            return None  # expired; the next write or listing removes it
        return _item(labels, key, record)

    async def delete(self, namespace: Namespace, key: str) -> bool:
        """Remove the item in one atomic script; ``True`` when there was one."""
        labels = check_namespace("RedisStore.delete", namespace)
        key = check_key("RedisStore.delete", key)
        removed = await self._run(self._delete, repr(float(self._clock())),
                                  namespace_path(labels), key)
        return bool(removed)

    async def list(self, prefix: Namespace = (), *, limit: int | None = None,
                   offset: int = 0) -> builtins.list[Item]:
        """Every item under ``prefix`` (whole labels), ordered by namespace then key."""
        labels = check_namespace("RedisStore.list", prefix, field="prefix", allow_empty=True)
        check_page("RedisStore.list", limit, offset)
        low, high = _lex_range(labels)
        flat = await self._run(self._list, repr(float(self._clock())), low, high, offset,
                               -1 if limit is None else limit)
        items = []
        for member, record in zip(flat[::2], flat[1::2], strict=True):
            path, _, key = text(member).partition(_ITEM_SEPARATOR)
            items.append(_item(path_namespace(path), key, _record(record)))
        return items

    async def namespaces(self, prefix: Namespace = ()) -> builtins.list[tuple[str, ...]]:
        """The namespaces holding items under ``prefix``, sorted."""
        labels = check_namespace("RedisStore.namespaces", prefix, field="prefix",
                                 allow_empty=True)
        low, high = _lex_range(labels)
        paths = await self._run(self._namespaces, repr(float(self._clock())), low, high)
        return [path_namespace(text(path)) for path in paths]

    async def aclose(self) -> None:
        """Close the connection pool if this store opened it; safe to call twice."""
        await self._redis.aclose()

    async def _run(self, script: Any, *args: Any) -> Any:
        return await self._redis.call(lambda: script(args=[self._prefix, *args]))


def _record(raw: str | bytes) -> builtins.list[Any]:
    """A stored record: ``[created_at, updated_at, expires_at or None, value]``."""
    record: builtins.list[Any] = json.loads(text(raw))
    return record


def _item(namespace: tuple[str, ...], key: str, record: builtins.list[Any]) -> Item:
    created, updated, _, value = record
    return Item(namespace=namespace, key=key, value=value, created_at=created,
                updated_at=updated)


def _lex_range(prefix: tuple[str, ...]) -> tuple[str, str]:
    """``ZRANGEBYLEX`` bounds for the paths (and items) under ``prefix``."""
    bounds = prefix_range(prefix)
    return ("-", "+") if bounds is None else (f"[{bounds[0]}", f"({bounds[1]}")

