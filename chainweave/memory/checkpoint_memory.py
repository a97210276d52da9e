"""Checkpoints kept in the process's memory: :class:`MemoryCheckpointer`."""

from __future__ import annotations

import builtins
import time
from dataclasses import replace
from typing import Any

from cachetools import LRUCache

from chainweave.errors import InputValidationError
from chainweave.memory.checkpoint import Checkpoint, StateMigrations
from chainweave.memory.checkpoint_core import CheckpointCore
from chainweave.memory.checkpoint_rows import (
    Chain,
    Fetch,
    Plan,
    Request,
    Row,
    Scan,
    drive,
)

__all__ = ["MemoryCheckpointer"]


class MemoryCheckpointer:
    """A :class:`~chainweave.memory.checkpoint.CheckpointStore` in a dict, for one process.

    Checkpoints are kept the way the persistent stores keep them (deltas from the
    parent's state and periodic snapshots), so a long run costs memory in proportion
    to what its steps added. Nothing survives the process. Every method runs without
    awaiting anything, so concurrent tasks on one event loop never see a half-done
    write; it is not meant to be shared between threads.

    Args:
        max_threads: The most threads kept; past it the least recently used thread
            (read or written) is dropped with its checkpoints.
        snapshot_every: The fewest deltas between two full snapshots of a state.
        migrations: The state migrations ``get`` and ``list`` may apply.

    Raises:
        InputValidationError: An argument is out of range.
    """

    def __init__(self, *, max_threads: int = 10_000, snapshot_every: int = 32,
                 migrations: StateMigrations | None = None) -> None:
        if isinstance(max_threads, bool) or not isinstance(max_threads, int) \
                or max_threads < 1:
            raise InputValidationError(
                f"MemoryCheckpointer: max_threads must be an integer >= 1, got "
                f"{max_threads!r}", field="max_threads")
        self._core = CheckpointCore("MemoryCheckpointer", snapshot_every=snapshot_every,
                                    migrations=migrations)
        self.max_threads = max_threads
        # thread id -> its rows by checkpoint id, in the order they were first put
        self._threads: LRUCache[str, dict[str, Row]] = LRUCache(maxsize=max_threads)
        self._seq = 0

    def __repr__(self) -> str:
        return (f"MemoryCheckpointer(threads={len(self._threads)}, "
                f"max_threads={self.max_threads})")

    async def put(self, checkpoint: Checkpoint) -> None:
        """Store ``checkpoint`` atomically, replacing one with the same ids."""
        self._apply(drive(self._core.put_ops(checkpoint), self._answer))

    async def get(self, thread_id: str, checkpoint_id: str | None = None, *,
                  schema_version: str | None = None) -> Checkpoint | None:
        """The checkpoint (the thread's newest when ``checkpoint_id`` is None), or None."""
        return drive(self._core.get_ops(thread_id, checkpoint_id, schema_version),
                     self._answer)

    async def list(self, thread_id: str, *, limit: int | None = None,
                   before: str | None = None,
                   schema_version: str | None = None) -> builtins.list[Checkpoint]:
        """The thread's checkpoints, newest first (see the protocol)."""
        return drive(self._core.list_ops(thread_id, limit, before, schema_version),
                     self._answer)

    async def threads(self) -> builtins.list[str]:
        """The ids of the threads holding checkpoints, sorted."""
        return sorted(self._threads)

    async def delete_thread(self, thread_id: str) -> int:
        """Drop every checkpoint of the thread; returns how many were dropped."""
        thread_id = self._core.check_thread("delete_thread", thread_id)
        return len(self._threads.pop(thread_id, {}))

    async def prune(self, thread_id: str | None = None, *, keep_last: int | None = None,
                    older_than: float | None = None) -> int:
        """Drop old checkpoints of one thread or of all (see the protocol)."""
        thread, keep, age = self._core.check_prune(thread_id, keep_last, older_than)
        cutoff = None if age is None else time.time() - age
        removed = 0
        for name in [thread] if thread is not None else list(self._threads):
            if name in self._threads:
                plan = drive(self._core.prune_ops(name, keep, cutoff), self._answer)
                removed += self._apply(plan)
        return removed

    async def aclose(self) -> None:
        """Nothing to release: the store stays usable and keeps its checkpoints."""

    def _answer(self, request: Request) -> Any:
        rows = self._threads.get(request.thread_id, {})
        if isinstance(request, Fetch):
            if request.checkpoint_id is None:
                return next(reversed(rows.values()), None)
            return rows.get(request.checkpoint_id)
        if isinstance(request, Chain):
            chain: builtins.list[Row] = []
            row = rows.get(request.checkpoint_id)
            while row is not None and len(chain) <= len(rows):
                chain.append(row)
                row = None if row.base_id is None else rows.get(row.base_id)
            return chain
        assert isinstance(request, Scan)
        found = [row for row in reversed(rows.values())
                 if request.before is None or (row.seq or 0) < request.before]
        return found if request.limit is None else found[:request.limit]

    def _apply(self, plan: Plan) -> int:
        """Write ``plan``; returns how many rows it deleted."""
        rows = self._threads.get(plan.thread_id, {})
        removed = sum(rows.pop(checkpoint_id, None) is not None
                      for checkpoint_id in plan.deletes)
        for checkpoint_id, row in plan.upserts.items():
            if row.seq is None:
                self._seq += 1
                row = replace(row, seq=self._seq)
            rows[checkpoint_id] = row
        if rows:
            self._threads[plan.thread_id] = rows
        else:
            self._threads.pop(plan.thread_id, None)
        return removed
