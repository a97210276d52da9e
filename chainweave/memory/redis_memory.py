"""Conversations in Redis: :class:`RedisMemory`, shared by every process on one server.

The keys, under ``prefix``:

* ``sessions``: a sorted set of the session ids, each scored by when it was last
  written or cleared. Sorted rather than plain so that ``ttl`` can find idle sessions
  with one range query instead of a scan.
* ``seq:<session id>``: the last ``seq`` handed out (``INCRBY``), kept across ``clear``.
* ``messages:<session id>``: a list of the messages, oldest first, each the JSON of a
  :class:`~chainweave.memory.StoredMessage`. A list because a conversation is only
  ever pushed at the end and trimmed at the start: ``RPUSH``, ``LTRIM`` and
  ``LRANGE -n -1`` for the newest ``n`` are exactly the operations needed (a stream's
  entry ids and a sorted set's unique members would add nothing here).

An append is one Lua script, which Redis runs without interleaving any other command:
it advances the counter, stamps each message with its ``seq``, pushes them, trims and
drops expired ones. Concurrent appenders in any number of processes lose nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from chainweave.errors import InputValidationError, StoreCorruptedError
from chainweave.memory.base import StoredMessage, check_window, message_tokens, select_recent
from chainweave.memory.redis_common import RedisConnection, text
from chainweave.memory.sqlite_memory import (
    check_append,
    check_storable_session_id,
    check_store_settings,
    stored_messages,
)
from chainweave.types import Message

__all__ = ["RedisMemory"]

#: Messages read per round trip at first when ``history`` has a token budget; doubles.
_CHUNK = 32
# Shared head of the scripts: KEYS = sessions, seq, messages; ARGV[1] = session id,
# ARGV[3] = the ttl cutoff ('' for none). Drops the session if it was idle past it.
_EXPIRE_SESSION = """
local cutoff = tonumber(ARGV[3])
local touched = redis.call('ZSCORE', KEYS[1], ARGV[1])
if touched and cutoff and tonumber(touched) < cutoff then
  redis.call('DEL', KEYS[2], KEYS[3])
  redis.call('ZREM', KEYS[1], ARGV[1])
  touched = false
end
"""
# ARGV[2] = now, ARGV[4] = max_messages (0 for none), ARGV[5...] = one JSON object per
# message without its seq. Returns the first seq. Redis does not roll a script back, so
# the key types are checked before anything is written.
_APPEND = """
local kinds = {'zset', 'string', 'list'}
for i = 1, 3 do
  local kind = redis.call('TYPE', KEYS[i])['ok']
  if kind ~= 'none' and kind ~= kinds[i] then
    return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' holds a ' .. kind .. ', not a '
                             .. kinds[i] .. '; nothing was written')
  end
end
""" + _EXPIRE_SESSION + """
local count = #ARGV - 4
local first = redis.call('INCRBY', KEYS[2], count) - count + 1
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
for i = 5, #ARGV do
  local entry = string.format('{"seq":%d,', first + i - 5) .. string.sub(ARGV[i], 2)
  redis.call('RPUSH', KEYS[3], entry)
end
while cutoff do
  local ok, head = pcall(cjson.decode, redis.call('LINDEX', KEYS[3], 0) or '')
  if not (ok and type(head) == 'table' and type(head['timestamp']) == 'number'
          and head['timestamp'] < cutoff) then break end
  redis.call('LPOP', KEYS[3])
end
local keep = tonumber(ARGV[4])
if keep > 0 then redis.call('LTRIM', KEYS[3], -keep, -1) end
return first
"""
# ARGV[2] = now. Empties a live session and marks it as used.
_CLEAR = _EXPIRE_SESSION + """
if touched then
  redis.call('DEL', KEYS[3])
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
end
return 0
"""
# Drops the session only if it is (still) idle past the cutoff.
_EXPIRE = _EXPIRE_SESSION + "return 0"
_DELETE = """
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[1], ARGV[1])
return 0
"""


class RedisMemory:
    """A :class:`~chainweave.memory.ConversationMemory` in Redis, shared across processes.

    Behaves exactly like :class:`~chainweave.memory.InMemoryMemory` (without
    ``max_sessions``). Several processes may append to one session at once: each append
    is atomic, so no message is lost and no ``seq`` repeats. With ``ttl``, messages
    carry their timestamps and are filtered on read; expired ones are removed by later
    writes. Redis's own key expiry is not used, because it runs on the server's clock
    and ``clock`` may differ (in tests, it does).

    Args:
        url: ``redis://[user:password@]host:port/db``, ``rediss://...`` or
            ``unix:///path``; ``$REDIS_URL`` when left out. The password is never logged.
        client: A ``redis.asyncio.Redis`` to use instead of ``url``; the caller closes it.
        prefix: Put before every key, so several applications can share a server.
        max_messages: Keep only the newest this many messages per session.
        ttl: Seconds a message is kept. A session nobody wrote (or cleared) for ``ttl``
            seconds is dropped whole, ``seq`` numbering included.
        clock: The time in unix seconds; processes sharing a server should share it.

    Raises:
        ConfigurationError: No URL, a malformed one, or the redis extra is missing.
        InputValidationError: Another argument is out of range.

    Each method raises :class:`~chainweave.errors.StoreError` when Redis fails
    (``retryable`` when it could not be reached), never a redis-py exception.
    """

    def __init__(self, url: str | None = None, *, client: Any = None,
                 prefix: str = "chainweave:memory:", max_messages: int | None = None,
                 ttl: float | None = None, clock: Callable[[], float] = time.time) -> None:
        check_store_settings("RedisMemory", max_messages, ttl, clock)
        if not isinstance(prefix, str):
            raise InputValidationError("RedisMemory: prefix must be a string",
                                       field="prefix")
        self._redis = RedisConnection("RedisMemory", url, client, prefix)
        self._client = self._redis.client
        self._prefix = prefix
        self.max_messages = max_messages
        self.ttl = ttl
        self._clock = clock
        self._scripts = {name: self._client.register_script(source) for name, source in
                         (("append", _APPEND), ("clear", _CLEAR), ("expire", _EXPIRE),
                          ("delete", _DELETE))}

    def __repr__(self) -> str:
        return self._redis.label

    async def append(self, session_id: str, messages: Sequence[Message | Mapping[str, Any]],
                     *, metadata: Mapping[str, Any] | None = None) -> list[StoredMessage]:
        """Add ``messages`` to the end of the session, atomically (see the protocol)."""
        session_id, checked, texts, meta_text = check_append(
            "RedisMemory.append", session_id, messages, metadata)
        if not checked:
            return []
        now = float(self._clock())
        cutoff = self._cutoff(now)
        bodies = [f'{{"timestamp":{json.dumps(now)},"message":{text},"metadata":{meta_text}}}'
                  for text in texts]
        if cutoff is not None:
            await self._sweep(cutoff)
        first = await self._script("append", session_id, now, cutoff, self.max_messages or 0,
                                   *bodies)
        return stored_messages(checked, meta_text, now, int(first))

    async def history(self, session_id: str, *, limit: int | None = None,
                      max_tokens: int | None = None) -> list[StoredMessage]:
        """The session's messages, oldest first, within ``limit`` and ``max_tokens``.

        ``limit`` alone is one ``LRANGE`` of the newest entries; with ``max_tokens``
        entries are read from the newest in growing chunks until the budget is spent.
        """
        session_id = check_storable_session_id("RedisMemory.history", session_id)
        check_window("RedisMemory.history", limit, max_tokens)
        cutoff = self._cutoff(float(self._clock()))
        key = self._key("messages", session_id)
        newest = None
        if max_tokens is not None:
            newest = await self._redis.call(partial(self._newest_within, key, limit,
                                                    max_tokens, cutoff))
        if newest is None:
            entries = await self._redis.call(lambda: self._client.lrange(key, -(limit or 0),
                                                                         -1))
            newest = [item for item in map(_parse, reversed(entries))
                      if cutoff is None or item.timestamp >= cutoff]
        return select_recent(newest[::-1], limit=limit, max_tokens=max_tokens)

    async def clear(self, session_id: str) -> None:
        """Drop the session's messages; it stays listed and its ``seq`` keeps counting."""
        session_id = check_storable_session_id("RedisMemory.clear", session_id)
        now = float(self._clock())
        await self._script("clear", session_id, now, self._cutoff(now))

    async def delete(self, session_id: str) -> None:
        """Drop the session entirely; its ``seq`` numbering starts again at 1."""
        session_id = check_storable_session_id("RedisMemory.delete", session_id)
        await self._script("delete", session_id)

    async def sessions(self) -> list[str]:
        """The ids of the live sessions, sorted."""
        cutoff = self._cutoff(float(self._clock()))
        low = "-inf" if cutoff is None else repr(cutoff)
        names = await self._redis.call(lambda: self._client.zrangebyscore(
            self._key("sessions"), low, "+inf"))
        return sorted(map(text, names))

    async def aclose(self) -> None:
        """Close the connection pool if this store made it (a given client stays open)."""
        await self._redis.aclose()

    # --- helpers ------------------------------------------------------------------------

    def _key(self, kind: str, session_id: str | None = None) -> str:
        return self._prefix + (kind if session_id is None else f"{kind}:{session_id}")

    def _cutoff(self, now: float) -> float | None:
        """Messages stamped before this have expired; None without a ttl."""
        return None if self.ttl is None else now - self.ttl

    async def _script(self, name: str, session_id: str, *args: object) -> Any:
        keys = [self._key("sessions"), self._key("seq", session_id),
                self._key("messages", session_id)]
        argv = [session_id, *("" if arg is None else repr(arg) if isinstance(arg, float)
                              else arg for arg in args)]
        return await self._redis.call(lambda: self._scripts[name](keys=keys, args=argv))

    async def _sweep(self, cutoff: float) -> None:
        """Drop (a bounded number of) sessions idle past ``cutoff``, each atomically."""
        idle = await self._redis.call(lambda: self._client.zrangebyscore(
            self._key("sessions"), "-inf", f"({cutoff!r}", start=0, num=_CHUNK))
        for session_id in map(text, idle):
            await self._script("expire", session_id, cutoff, cutoff)

    async def _newest_within(self, key: str, limit: int | None, max_tokens: int,
                             cutoff: float | None) -> list[StoredMessage] | None:
        """The newest live messages (newest first) enough to fill ``max_tokens``.

        The list is watched (``WATCH``) while it is read in chunks; None when a write
        changed it between two reads, and the caller then reads it whole in one call.
        """
        async with self._client.pipeline() as pipe:
            await pipe.watch(key)
            newest, reads = await _read_back(pipe, key, limit, max_tokens, cutoff)
            if reads > 1:
                pipe.multi()
                try:
                    await pipe.execute()  # fails if the list changed since WATCH
                except self._redis.watch_error:
                    return None
        return newest


async def _read_back(client: Any, key: str, limit: int | None, max_tokens: int,
                     cutoff: float | None) -> tuple[list[StoredMessage], int]:
    """Read ``key``'s entries from the newest in doubling chunks until the budget is spent.

    Returns:
        The live messages read (newest first) and how many LRANGE calls it took.
    """
    newest: list[StoredMessage] = []
    spent, end, size, reads = 0, -1, _CHUNK, 0
    while True:
        if limit is not None:
            size = min(size, limit - len(newest))
        entries = await client.lrange(key, end - size + 1, end)
        reads += 1
        for item in map(_parse, reversed(entries)):
            if cutoff is None or item.timestamp >= cutoff:
                newest.append(item)
                spent += message_tokens(item.message)
                if spent > max_tokens:
                    return newest, reads
        if len(entries) < size or (limit is not None and len(newest) >= limit):
            return newest, reads
        end -= size
        size *= 2


def _parse(entry: str | bytes) -> StoredMessage:
    """One list entry as a StoredMessage; an entry that does not parse is corruption."""
    try:
        return StoredMessage.model_validate_json(entry)
    except ValueError as exc:
        raise StoreCorruptedError(f"a conversation entry in Redis does not parse: {exc}",
                                  details={"store": "redis"}) from None
