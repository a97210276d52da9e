"""Checkpoints in Redis: :class:`RedisCheckpointer`, shared by every process on one server.

The keys, under ``prefix``:

* ``c:<len(thread id)>:<thread id>:<checkpoint id>``: a hash per checkpoint, with the
  fields of :class:`~chainweave.memory.checkpoint_core.Row` (``""`` for None). The
  length makes the key unambiguous whatever the ids hold.
* ``t:<thread id>``: a sorted set of the thread's checkpoint ids, scored by ``seq``
  (the order they were first put, from the ``seq`` counter).
* ``v:<thread id>``: the thread's write counter; every write to the thread changes it.
* ``threads``: a set of the thread ids; ``seq``: the counter behind ``seq``.

Every operation reads under ``WATCH v:<thread id>`` and ends with ``MULTI/EXEC``: the
writes of ``put``, ``prune`` and ``delete_thread`` are queued in it, so they land
together or not at all, and a read's ``EXEC`` confirms nobody wrote the thread while it
read. When another writer got in between, the operation runs again. A row and the
bases its delta needs are read in one Lua script.
"""

from __future__ import annotations

import asyncio
import builtins
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from functools import partial
from typing import Any

from chainweave.errors import InputValidationError, StoreCorruptedError, StoreError
from chainweave.memory.checkpoint import Checkpoint, StateMigrations
from chainweave.memory.checkpoint_core import CheckpointCore
from chainweave.memory.checkpoint_rows import (
    ROW_FIELDS,
    Chain,
    Fetch,
    Ops,
    Plan,
    Request,
    Row,
    adrive,
)
from chainweave.memory.redis_common import RedisConnection, text

__all__ = ["RedisCheckpointer"]

#: How many times an operation runs again when other writers keep changing its thread.
ATTEMPTS = 50
# KEYS[1]: the thread's sorted set (its size bounds the walk); ARGV[1]: the key prefix
# of the thread's rows; ARGV[2]: the first checkpoint id; ARGV[3...]: the row fields.
_CHAIN = """
local fields = {}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
local most = redis.call('ZCARD', KEYS[1])
local rows, id = {}, ARGV[2]
while #rows <= most do
  local row = redis.call('HMGET', ARGV[1] .. id, unpack(fields))
  if not row[1] then break end
  rows[#rows + 1] = row
  id = row[BASE]
  if not id or id == '' then break end
end
return rows
""".replace("BASE", str(ROW_FIELDS.index("base_id") + 1))
_INTS = frozenset({"step", "seq", "depth", "chain", "snap"})
_OPTIONAL = frozenset({"parent_id", "base_id", "schema_version"})
# What an attempt returns: its result, and what to queue in MULTI (None: nothing).
_Attempt = tuple[Any, Callable[[Any], None] | None]


class RedisCheckpointer:
    """A :class:`~chainweave.memory.checkpoint.CheckpointStore` in Redis.

    Several processes may write one thread at once: each write is one ``MULTI/EXEC``
    that only lands if nobody wrote the thread since it read. Most checkpoints are
    stored as the delta from their parent's state (see
    :mod:`chainweave.memory.checkpoint_core`). The row scripts name keys they were not
    given, so this store needs a single Redis server, not a cluster.

    Args:
        url: ``redis://[user:password@]host:port/db``, ``rediss://...`` or
            ``unix:///path``; ``$REDIS_URL`` when left out. The password is never logged.
        client: A ``redis.asyncio.Redis`` to use instead of ``url``; the caller closes it.
        prefix: Put before every key, so several applications can share a server.
        snapshot_every: The fewest deltas between two full snapshots of a state.
        migrations: The state migrations ``get`` and ``list`` may apply.

    Raises:
        ConfigurationError: No URL, a malformed one, or the redis extra is missing.
        InputValidationError: Another argument is out of range.

    Each method raises :class:`~chainweave.errors.StoreError` when Redis fails
    (``retryable`` when it could not be reached), never a redis-py exception.
    """

    def __init__(self, url: str | None = None, *, client: Any = None,
                 prefix: str = "chainweave:checkpoint:", snapshot_every: int = 32,
                 migrations: StateMigrations | None = None) -> None:
        self._core = CheckpointCore("RedisCheckpointer", snapshot_every=snapshot_every,
                                    migrations=migrations)
        if not isinstance(prefix, str):
            raise InputValidationError("RedisCheckpointer: prefix must be a string",
                                       field="prefix")
        self._redis = RedisConnection("RedisCheckpointer", url, client, prefix)
        self._client = self._redis.client
        self._prefix = prefix
        self._chain = self._client.register_script(_CHAIN)

    def __repr__(self) -> str:
        return self._redis.label

    async def put(self, checkpoint: Checkpoint) -> None:
        """Store ``checkpoint`` atomically, replacing one with the same ids."""
        await self._run(getattr(checkpoint, "thread_id", ""),
                        partial(self._core.put_ops, checkpoint))

    async def get(self, thread_id: str, checkpoint_id: str | None = None, *,
                  schema_version: str | None = None) -> Checkpoint | None:
        """The checkpoint (the thread's newest when ``checkpoint_id`` is None), or None."""
        result: Checkpoint | None = await self._run(thread_id, partial(
            self._core.get_ops, thread_id, checkpoint_id, schema_version))
        return result

    async def list(self, thread_id: str, *, limit: int | None = None,
                   before: str | None = None,
                   schema_version: str | None = None) -> builtins.list[Checkpoint]:
        """The thread's checkpoints, newest first (see the protocol)."""
        result: builtins.list[Checkpoint] = await self._run(thread_id, partial(
            self._core.list_ops, thread_id, limit, before, schema_version))
        return result

    async def threads(self) -> builtins.list[str]:
        """The ids of the threads holding checkpoints, sorted."""
        return sorted(text(name) for name in await self._redis.call(
            lambda: self._client.smembers(self._key("threads"))))

    async def delete_thread(self, thread_id: str) -> int:
        """Drop every checkpoint of the thread atomically; returns how many."""
        thread = self._core.check_thread("delete_thread", thread_id)

        async def attempt() -> _Attempt:
            ids = [text(i) for i in await self._client.zrange(self._key("t", thread), 0, -1)]

            def queue(pipe: Any) -> None:
                for checkpoint_id in ids:
                    pipe.delete(self._row_key(thread, checkpoint_id))
                pipe.delete(self._key("t", thread), self._key("v", thread))
                pipe.srem(self._key("threads"), thread)

            return len(ids), queue

        removed: int = await self._transact(thread, attempt)
        return removed

    async def prune(self, thread_id: str | None = None, *, keep_last: int | None = None,
                    older_than: float | None = None) -> int:
        """Drop old checkpoints (see the protocol), each thread atomically."""
        thread, keep, age = self._core.check_prune(thread_id, keep_last, older_than)
        cutoff = None if age is None else time.time() - age
        names = [thread] if thread is not None else await self.threads()
        removed = 0
        for name in names:
            plan: Plan = await self._run(name, partial(self._core.prune_ops, name, keep,
                                                       cutoff))
            removed += len(plan.deletes)
        return removed

    async def aclose(self) -> None:
        """Close the connection pool if this store made it; safe to call twice."""
        await self._redis.aclose()

    # --- transactions ------------------------------------------------------------------

    async def _run(self, thread_id: str, make_ops: Callable[[], Ops[Any]]) -> Any:
        """Drive ``make_ops()`` under WATCH, afresh for each attempt; a Plan result is
        written in MULTI. The first ``make_ops()`` checks the arguments before any call."""
        first: Ops[Any] | None = make_ops()

        async def attempt() -> _Attempt:
            nonlocal first
            ops, first = first or make_ops(), None
            result = await adrive(ops, self._answer)
            if not isinstance(result, Plan) or not (result.upserts or result.deletes):
                return result, None  # nothing to write: only confirm what was read
            fresh = [cid for cid, row in result.upserts.items() if row.seq is None]
            last = await self._client.incrby(self._key("seq"), len(fresh)) if fresh else 0
            seqs = {cid: last - len(fresh) + 1 + index for index, cid in enumerate(fresh)}
            return result, lambda pipe: self._queue(pipe, result, seqs)

        return await self._transact(thread_id, attempt)

    async def _transact(self, thread_id: str, attempt: Callable[[], Awaitable[_Attempt]]
                        ) -> Any:
        """Run ``attempt`` under WATCH of the thread's counter until its EXEC lands.

        A read that found rows missing or not fitting is tried again when the thread
        changed meanwhile (a concurrent prune); only then is it corruption.
        """
        version = self._key("v", thread_id)

        async def transact() -> Any:
            for tried in range(ATTEMPTS):
                if tried:  # back off a little, randomly, so competing writers take turns
                    await asyncio.sleep(random.uniform(0, 0.0005 * 2 ** min(tried, 6)))
                async with self._client.pipeline(transaction=True) as pipe:
                    await pipe.watch(version)
                    try:
                        result, queue = await attempt()
                    except StoreCorruptedError:
                        if await self._landed(pipe, version, None):
                            raise
                        continue
                    if await self._landed(pipe, version, queue):
                        return result
            raise StoreError(f"{self!r}: thread {thread_id!r} kept changing during "
                             f"{ATTEMPTS} attempts; try again", retryable=True,
                             details={"store": "redis", "thread_id": thread_id})

        return await self._redis.call(transact)

    async def _landed(self, pipe: Any, version: str,
                      queue: Callable[[Any], None] | None) -> bool:
        """EXEC what ``queue`` queues (or a no-op that confirms the reads); False when a
        write to the watched thread got in first."""
        pipe.multi()
        if queue is None:
            pipe.exists(version)
        else:
            queue(pipe)
        try:
            await pipe.execute()
        except self._redis.watch_error:
            return False
        return True

    def _queue(self, pipe: Any, plan: Plan, seqs: dict[str, int]) -> None:
        thread, ids = plan.thread_id, self._key("t", plan.thread_id)
        for checkpoint_id in plan.deletes:
            pipe.delete(self._row_key(thread, checkpoint_id))
        if plan.deletes:
            pipe.zrem(ids, *plan.deletes)
        for checkpoint_id, row in plan.upserts.items():
            if row.seq is None:
                row = replace(row, seq=seqs[checkpoint_id])
                pipe.zadd(ids, {checkpoint_id: row.seq})
            pipe.hset(self._row_key(thread, checkpoint_id), mapping=_encode(row))
        if plan.emptied and not plan.upserts:
            pipe.delete(self._key("v", thread))
            pipe.srem(self._key("threads"), thread)
        else:
            pipe.incr(self._key("v", thread))
            pipe.sadd(self._key("threads"), thread)

    async def _answer(self, request: Request) -> Any:
        thread = request.thread_id
        if isinstance(request, Chain):
            found = await self._chain(keys=[self._key("t", thread)], args=[
                self._row_key(thread, ""), request.checkpoint_id, *ROW_FIELDS])
            return [_decode(values) for values in found]
        if isinstance(request, Fetch):
            checkpoint_id = request.checkpoint_id
            if checkpoint_id is None:
                newest = await self._client.zrange(self._key("t", thread), -1, -1)
                if not newest:
                    return None
                checkpoint_id = text(newest[0])
            values = await self._client.hmget(self._row_key(thread, checkpoint_id),
                                              ROW_FIELDS)
            return None if values[0] is None else _decode(values)
        top = "+inf" if request.before is None else f"({request.before}"
        ids = await self._client.zrevrangebyscore(
            self._key("t", thread), top, "-inf",
            *((0, request.limit) if request.limit is not None else ()))
        async with self._client.pipeline(transaction=False) as pipe:
            for checkpoint_id in ids:
                pipe.hmget(self._row_key(thread, text(checkpoint_id)), ROW_FIELDS)
            rows = await pipe.execute()
        return [_decode(values) for values in rows if values[0] is not None]

    def _key(self, kind: str, thread_id: str | None = None) -> str:
        return f"{self._prefix}{kind}" if thread_id is None else \
            f"{self._prefix}{kind}:{thread_id}"

    def _row_key(self, thread_id: str, checkpoint_id: str) -> str:
        return f"{self._prefix}c:{len(thread_id)}:{thread_id}:{checkpoint_id}"


def _encode(row: Row) -> dict[str, str]:
    encoded = {}
    for name in ROW_FIELDS:
        value = getattr(row, name)
        encoded[name] = "" if value is None else repr(value) if isinstance(value, float) \
            else str(value)
    return encoded


def _decode(values: builtins.list[Any]) -> Row:
    fields: dict[str, Any] = {}
    try:
        for name, raw in zip(ROW_FIELDS, values, strict=True):
            value = text(raw)
            fields[name] = (int(value) if name in _INTS else float(value)
                            if name == "created_at" else (value or None)
                            if name in _OPTIONAL else value)
    except (TypeError, ValueError, AttributeError) as exc:
        raise StoreCorruptedError(f"a checkpoint row in Redis does not parse: {exc}",
                                  details={"store": "redis"}) from None
    return Row(**fields)

