"""Checkpoints in a SQLite file: :class:`SQLiteCheckpointer`, the embedded default.

One table, created by the ``checkpoint`` schema component of the shared
:class:`~chainweave.memory.sqlite.SQLiteDatabase`: ``checkpoint_rows``, one row per
checkpoint (the fields of :class:`~chainweave.memory.checkpoint_core.Row`), keyed by
``seq`` (the order checkpoints were first put), unique on ``(thread_id,
checkpoint_id)``, with an index on ``(thread_id, seq)`` for a thread's newest and for
listing. The state is JSON text: in full for a snapshot, else the delta from the state
of ``base_id``.

Every ``put`` and ``prune`` is one ``BEGIN IMMEDIATE`` transaction that reads what it
needs (the parent's state, the rows a rewrite needs) and writes, so concurrent writers
in any number of processes serialise, and a process killed mid-write leaves the last
committed checkpoints intact. Reads run in one read transaction, which sees a single
committed version of the file.
"""

from __future__ import annotations

import builtins
import os
import sqlite3
import time
from functools import partial
from typing import Any

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
    T,
    drive,
)
from chainweave.memory.sqlite import Migration, SQLiteDatabase, StoreDatabase

__all__ = ["SQLiteCheckpointer"]

_MIGRATIONS: list[Migration] = [
    """
    CREATE TABLE checkpoint_rows (
        seq INTEGER PRIMARY KEY,
        thread_id TEXT NOT NULL,
        checkpoint_id TEXT NOT NULL,
        parent_id TEXT,
        step INTEGER NOT NULL,
        base_id TEXT,
        depth INTEGER NOT NULL,
        chain INTEGER NOT NULL,
        snap INTEGER NOT NULL,
        rev TEXT NOT NULL,
        body TEXT NOT NULL,
        next TEXT NOT NULL,
        writes TEXT NOT NULL,
        metadata TEXT NOT NULL,
        schema_version TEXT,
        created_at REAL NOT NULL,
        UNIQUE (thread_id, checkpoint_id)
    );
    CREATE INDEX checkpoint_rows_thread_seq ON checkpoint_rows (thread_id, seq)
    """,
]

_COLUMNS = ", ".join(f"r.{name}" for name in ROW_FIELDS)
_SELECT = f"SELECT {_COLUMNS} FROM checkpoint_rows AS r WHERE r.thread_id = ?"
# A row and its delta bases, newest first, up to a snapshot or a missing row. The bound
# only stops a cycle, which a sound file never holds.
_CHAIN = f"""
    WITH RECURSIVE chain(n, id) AS (
        SELECT 0, ?2
        UNION ALL
        SELECT chain.n + 1, r.base_id FROM chain JOIN checkpoint_rows AS r
            ON r.thread_id = ?1 AND r.checkpoint_id = chain.id
        WHERE r.base_id IS NOT NULL AND chain.n < ?3
    )
    SELECT {_COLUMNS} FROM chain JOIN checkpoint_rows AS r
        ON r.thread_id = ?1 AND r.checkpoint_id = chain.id
    ORDER BY chain.n"""
_UPSERT = (f"INSERT OR REPLACE INTO checkpoint_rows ({', '.join(ROW_FIELDS)}) "
           f"VALUES ({', '.join('?' * len(ROW_FIELDS))})")
_MAX_CHAIN = 100_000_000


class SQLiteCheckpointer:
    """A :class:`~chainweave.memory.checkpoint.CheckpointStore` in a SQLite file.

    Survives restarts; several processes may share the file. Each ``put`` is one
    transaction; most checkpoints are stored as the delta from their parent's state
    (see :mod:`chainweave.memory.checkpoint_core`).

    Args:
        path_or_db: The database file (:func:`~chainweave.memory.sqlite.default_db_path`
            when left out), or a :class:`~chainweave.memory.sqlite.SQLiteDatabase` shared
            with other stores; a shared one is not closed by :meth:`aclose`.
        snapshot_every: The fewest deltas between two full snapshots of a state.
        migrations: The state migrations ``get`` and ``list`` may apply.
        busy_timeout: Seconds a write waits for another process's lock; ignored when
            ``path_or_db`` is a ``SQLiteDatabase`` (it has its own).

    Raises:
        InputValidationError: An argument is out of range.
        StoreCorruptedError: (on first use) the file is not a chainweave database.
    """

    def __init__(self, path_or_db: str | os.PathLike[str] | SQLiteDatabase | None = None,
                 *, snapshot_every: int = 32, migrations: StateMigrations | None = None,
                 busy_timeout: float = 5.0) -> None:
        self._core = CheckpointCore("SQLiteCheckpointer", snapshot_every=snapshot_every,
                                    migrations=migrations)
        self._db = StoreDatabase("SQLiteCheckpointer", path_or_db, busy_timeout=busy_timeout,
                                 component="checkpoint", migrations=_MIGRATIONS)

    def __repr__(self) -> str:
        return self._db.label

    @property
    def database(self) -> SQLiteDatabase:
        """The database the store keeps its table in."""
        return self._db.db

    async def put(self, checkpoint: Checkpoint) -> None:
        """Store ``checkpoint`` in one transaction, replacing one with the same ids."""
        ops = self._core.put_ops(checkpoint)
        await self._db.write(partial(self._write, ops))

    async def get(self, thread_id: str, checkpoint_id: str | None = None, *,
                  schema_version: str | None = None) -> Checkpoint | None:
        """The checkpoint (the thread's newest when ``checkpoint_id`` is None), or None."""
        ops = self._core.get_ops(thread_id, checkpoint_id, schema_version)
        result: Checkpoint | None = await self._read(ops)
        return result

    async def list(self, thread_id: str, *, limit: int | None = None,
                   before: str | None = None,
                   schema_version: str | None = None) -> builtins.list[Checkpoint]:
        """The thread's checkpoints, newest first (see the protocol)."""
        ops = self._core.list_ops(thread_id, limit, before, schema_version)
        result: builtins.list[Checkpoint] = await self._read(ops)
        return result

    async def threads(self) -> builtins.list[str]:
        """The ids of the threads holding checkpoints, sorted."""
        def read(conn: sqlite3.Connection) -> builtins.list[str]:
            return [row[0] for row in conn.execute(
                "SELECT DISTINCT thread_id FROM checkpoint_rows ORDER BY thread_id")]

        return await self._db.read(read)

    async def delete_thread(self, thread_id: str) -> int:
        """Drop every checkpoint of the thread in one transaction; returns how many."""
        thread_id = self._core.check_thread("delete_thread", thread_id)

        def write(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM checkpoint_rows WHERE thread_id = ?",
                                (thread_id,)).rowcount

        return await self._db.write(write)

    async def prune(self, thread_id: str | None = None, *, keep_last: int | None = None,
                    older_than: float | None = None) -> int:
        """Drop old checkpoints (see the protocol), all threads in one transaction."""
        thread, keep, age = self._core.check_prune(thread_id, keep_last, older_than)
        cutoff = None if age is None else time.time() - age

        def write(conn: sqlite3.Connection) -> int:
            names = [thread] if thread is not None else [row[0] for row in conn.execute(
                "SELECT DISTINCT thread_id FROM checkpoint_rows")]
            return sum(self._write(self._core.prune_ops(name, keep, cutoff), conn)
                       for name in names)

        return await self._db.write(write)

    async def aclose(self) -> None:
        """Close the database if this store opened it (a shared one stays open)."""
        await self._db.aclose()

    # --- on the database thread ----------------------------------------------------------

    def _write(self, ops: Ops[Plan], conn: sqlite3.Connection) -> int:
        """Drive ``ops`` and write its plan (inside the caller's transaction)."""
        plan = drive(ops, partial(_answer, conn))
        removed = 0
        if plan.deletes:
            removed = conn.executemany(
                "DELETE FROM checkpoint_rows WHERE thread_id = ? AND checkpoint_id = ?",
                [(plan.thread_id, checkpoint_id) for checkpoint_id in plan.deletes]).rowcount
        conn.executemany(_UPSERT, [tuple(getattr(row, name) for name in ROW_FIELDS)
                                   for row in plan.upserts.values()])
        return removed

    async def _read(self, ops: Ops[T]) -> T:
        def read(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN")  # one snapshot of the file for every query
            try:
                return drive(ops, partial(_answer, conn))
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")

        return await self._db.read(read)


def _answer(conn: sqlite3.Connection, request: Request) -> Any:
    """The rows ``request`` asks for."""
    if isinstance(request, Fetch):
        if request.checkpoint_id is None:
            cursor = conn.execute(f"{_SELECT} ORDER BY r.seq DESC LIMIT 1",
                                  (request.thread_id,))
        else:
            cursor = conn.execute(f"{_SELECT} AND r.checkpoint_id = ?",
                                  (request.thread_id, request.checkpoint_id))
        found = cursor.fetchone()
        return None if found is None else Row(*found)
    if isinstance(request, Chain):
        cursor = conn.execute(_CHAIN, (request.thread_id, request.checkpoint_id, _MAX_CHAIN))
    else:
        before = "" if request.before is None else f" AND r.seq < {int(request.before)}"
        limit = -1 if request.limit is None else int(request.limit)
        cursor = conn.execute(f"{_SELECT}{before} ORDER BY r.seq DESC LIMIT ?",
                              (request.thread_id, limit))
    return [Row(*found) for found in cursor]
