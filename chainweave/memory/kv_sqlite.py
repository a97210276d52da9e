"""Key-value items in a SQLite file: :class:`SQLiteStore`.

One table, ``kv_items``, keyed by ``(ns, key)``. ``ns`` is the namespace joined into
one string, each label followed by U+001F (:func:`~chainweave.memory.kv.namespace_path`),
so the items under a prefix are one range of the primary key: ``ns >= 'users\\x1f' AND
ns < 'users\\x20'`` matches ``("users", ...)`` and not ``("users2",)``. A range, unlike
``LIKE``, has no wildcards to escape and uses the index; and since labels hold no
character at or below U+001F, ``ORDER BY ns, key`` is the order of the tuples.
"""

from __future__ import annotations

import builtins
import os
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from chainweave.memory.kv import (
    Item,
    Namespace,
    check_clock,
    check_key,
    check_namespace,
    check_page,
    check_put,
    load_item,
    namespace_path,
    path_namespace,
    prefix_range,
)
from chainweave.memory.sqlite import Migration, SQLiteDatabase, StoreDatabase

__all__ = ["SQLiteStore"]

#: The ``kv`` component's schema, one step per version.
MIGRATIONS: list[Migration] = [
    """
    CREATE TABLE kv_items (
        ns TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        expires_at REAL,
        PRIMARY KEY (ns, key)
    ) WITHOUT ROWID;
    CREATE INDEX kv_items_expiry ON kv_items (expires_at) WHERE expires_at IS NOT NULL
    """,
]

_LIVE = "(expires_at IS NULL OR expires_at > ?)"
_UPSERT = (
    "INSERT INTO kv_items (ns, key, value, created_at, updated_at, expires_at) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (ns, key) DO UPDATE SET "
    "value = excluded.value, updated_at = excluded.updated_at, "
    "expires_at = excluded.expires_at RETURNING created_at"
)


class SQLiteStore:
    """A :class:`~chainweave.memory.kv.KeyValueStore` in a SQLite file.

    Each put or delete is one transaction; several stores, tasks and processes may
    write the same file at once (WAL, and a busy timeout for the write lock). Expired
    items are never returned; each write also deletes the ones that have expired.

    Args:
        path_or_db: The database file (:func:`~chainweave.memory.sqlite.default_db_path`
            when left out), or a :class:`~chainweave.memory.sqlite.SQLiteDatabase`
            shared with other stores, which this store then never closes.
        busy_timeout: Seconds a write waits for another process's lock (when this store
            opens the file itself).
        clock: The time in unix seconds, for timestamps and ``ttl``; inject one in tests.

    Raises:
        InputValidationError: An argument is out of range.
        StoreCorruptedError: (on first use) the file is not a chainweave database or
            was written by a newer chainweave; it is left untouched.
    """

    def __init__(self, path_or_db: str | os.PathLike[str] | SQLiteDatabase | None = None, *,
                 busy_timeout: float = 5.0, clock: Callable[[], float] = time.time) -> None:
        check_clock("SQLiteStore", clock)
        self._db = StoreDatabase("SQLiteStore", path_or_db, busy_timeout=busy_timeout,
                                 component="kv", migrations=MIGRATIONS)
        self._clock = clock

    def __repr__(self) -> str:
        return self._db.label

    @property
    def db(self) -> SQLiteDatabase:
        """The database this store writes to."""
        return self._db.db

    async def put(self, namespace: Namespace, key: str, value: Any, *,
                  ttl: float | None = None) -> Item:
        """Store ``value`` under ``namespace`` and ``key`` in one transaction."""
        labels, key, text, seconds = check_put("SQLiteStore.put", namespace, key, value, ttl)
        now = float(self._clock())
        expires = None if seconds is None else now + seconds
        row = (namespace_path(labels), key, text, now, now, expires)

        def write(conn: sqlite3.Connection) -> float:
            _purge(conn, now)
            (created,) = conn.execute(_UPSERT, row).fetchone()
            return float(created)

        created = await self._db.write(write)
        return load_item(labels, key, text, created, now)

    async def get(self, namespace: Namespace, key: str) -> Item | None:
        """The item under ``namespace`` and ``key``, or ``None``."""
        labels = check_namespace("SQLiteStore.get", namespace)
        key = check_key("SQLiteStore.get", key)
        args = (namespace_path(labels), key, float(self._clock()))
        row = await self._db.read(lambda conn: conn.execute(
            "SELECT value, created_at, updated_at FROM kv_items "
            f"WHERE ns = ? AND key = ? AND {_LIVE}", args).fetchone())
        return None if row is None else load_item(labels, key, *row)

    async def delete(self, namespace: Namespace, key: str) -> bool:
        """Remove the item in one transaction; ``True`` when there was one."""
        labels = check_namespace("SQLiteStore.delete", namespace)
        key = check_key("SQLiteStore.delete", key)
        now, address = float(self._clock()), (namespace_path(labels), key)

        def write(conn: sqlite3.Connection) -> bool:
            _purge(conn, now)
            cursor = conn.execute("DELETE FROM kv_items WHERE ns = ? AND key = ?", address)
            return cursor.rowcount > 0

        return await self._db.write(write)

    async def list(self, prefix: Namespace = (), *, limit: int | None = None,
                   offset: int = 0) -> builtins.list[Item]:
        """Every item under ``prefix`` (whole labels), ordered by namespace then key."""
        labels = check_namespace("SQLiteStore.list", prefix, field="prefix",
                                 allow_empty=True)
        check_page("SQLiteStore.list", limit, offset)
        where, args = _under(labels, float(self._clock()))
        query = ("SELECT ns, key, value, created_at, updated_at FROM kv_items "
                 f"WHERE {where} ORDER BY ns, key LIMIT ? OFFSET ?")
        page = (*args, -1 if limit is None else limit, offset)
        rows = await self._db.read(lambda conn: conn.execute(query, page).fetchall())
        return [load_item(path_namespace(ns), key, text, created, updated)
                for ns, key, text, created, updated in rows]

    async def namespaces(self, prefix: Namespace = ()) -> builtins.list[tuple[str, ...]]:
        """The namespaces holding items under ``prefix``, sorted."""
        labels = check_namespace("SQLiteStore.namespaces", prefix, field="prefix",
                                 allow_empty=True)
        where, args = _under(labels, float(self._clock()))
        query = f"SELECT DISTINCT ns FROM kv_items WHERE {where} ORDER BY ns"
        rows = await self._db.read(lambda conn: conn.execute(query, args).fetchall())
        return [path_namespace(ns) for (ns,) in rows]

    async def aclose(self) -> None:
        """Close the database if this store opened it; safe to call twice."""
        await self._db.aclose()


def _purge(conn: sqlite3.Connection, now: float) -> None:
    """Delete the expired items (through the partial index on ``expires_at``)."""
    conn.execute("DELETE FROM kv_items WHERE expires_at IS NOT NULL AND expires_at <= ?",
                 (now,))


def _under(prefix: tuple[str, ...], now: float) -> tuple[str, tuple[Any, ...]]:
    """The WHERE clause and its arguments for the live items under ``prefix``."""
    bounds = prefix_range(prefix)
    if bounds is None:
        return _LIVE, (now,)
    return f"ns >= ? AND ns < ? AND {_LIVE}", (*bounds, now)
