"""Conversations in a SQLite file: :class:`SQLiteMemory`, the embedded default.

Two tables, created by the ``conversation`` schema component of the shared
:class:`~chainweave.memory.sqlite.SQLiteDatabase`:

* ``conversation_sessions``: one row per session, with the last ``seq`` handed out (so
  numbering keeps rising across ``clear``) and when it was last written or cleared.
* ``conversation_messages``: one row per message, keyed by ``(session_id, seq)``; the
  message and its metadata as JSON text, the timestamp as REAL.

Every write is one ``BEGIN IMMEDIATE`` transaction, which SQLite serialises across
threads and processes: ``seq`` is read and advanced inside it, so concurrent appenders
never lose or duplicate a message.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from chainweave.errors import InputValidationError, StoreCorruptedError
from chainweave.memory.base import (
    StoredMessage,
    check_messages,
    check_metadata,
    check_session_id,
    check_window,
    message_tokens,
    select_recent,
)
from chainweave.memory.sqlite import Migration, SQLiteDatabase, StoreDatabase
from chainweave.types import Message

__all__ = ["SQLiteMemory"]

_MIGRATIONS: list[Migration] = [
    """
    CREATE TABLE conversation_sessions (
        session_id TEXT PRIMARY KEY,
        last_seq INTEGER NOT NULL,
        touched REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX conversation_sessions_touched ON conversation_sessions (touched);
    CREATE TABLE conversation_messages (
        session_id TEXT NOT NULL
            REFERENCES conversation_sessions (session_id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        message TEXT NOT NULL,
        metadata TEXT NOT NULL,
        timestamp REAL NOT NULL,
        PRIMARY KEY (session_id, seq)
    ) WITHOUT ROWID;
    CREATE INDEX conversation_messages_timestamp ON conversation_messages (timestamp)
    """,
]

_SELECT_NEWEST = (
    "SELECT seq, message, metadata, timestamp FROM conversation_messages "
    "WHERE session_id = ? AND timestamp >= ? ORDER BY seq DESC LIMIT ?")
# Keeps the newest ``max_messages`` rows: drops every row at or below the seq of the
# (max_messages + 1)-th newest; a NULL bound (fewer rows) drops nothing.
_TRIM = (
    "DELETE FROM conversation_messages WHERE session_id = ? AND seq <= ("
    "SELECT seq FROM conversation_messages WHERE session_id = ? "
    "ORDER BY seq DESC LIMIT 1 OFFSET ?)")


class SQLiteMemory:
    """A :class:`~chainweave.memory.ConversationMemory` in a SQLite file.

    Survives restarts, and several processes may share the file: each append is one
    transaction, so two processes appending to one session lose nothing and never
    repeat a ``seq``. Behaves exactly like :class:`~chainweave.memory.InMemoryMemory`
    otherwise (but has no ``max_sessions``: the file holds as many as the disk allows).

    Args:
        path_or_db: The database file (:func:`~chainweave.memory.sqlite.default_db_path`
            when left out), or a :class:`~chainweave.memory.sqlite.SQLiteDatabase` shared
            with other stores; a shared one is not closed by :meth:`aclose`.
        max_messages: Keep only the newest this many messages per session (trimmed in
            the append's own transaction).
        ttl: Seconds a message is kept: older ones are no longer returned and are
            deleted by the next write. A session nobody wrote (or cleared) for ``ttl``
            seconds is dropped whole, ``seq`` numbering included.
        clock: The time in unix seconds; inject one in tests. Processes sharing a file
            should share a clock.
        busy_timeout: Seconds a write waits for another process's lock; ignored when
            ``path_or_db`` is a ``SQLiteDatabase`` (it has its own).

    Raises:
        InputValidationError: An argument is out of range.
        StoreCorruptedError: (on first use) the file is not a chainweave database.
    """

    def __init__(self, path_or_db: str | os.PathLike[str] | SQLiteDatabase | None = None,
                 *, max_messages: int | None = None, ttl: float | None = None,
                 clock: Callable[[], float] = time.time, busy_timeout: float = 5.0) -> None:
        check_store_settings("SQLiteMemory", max_messages, ttl, clock)
        self._db = StoreDatabase("SQLiteMemory", path_or_db, busy_timeout=busy_timeout,
                                 component="conversation", migrations=_MIGRATIONS)
        self.max_messages = max_messages
        self.ttl = ttl
        self._clock = clock

    def __repr__(self) -> str:
        return self._db.label

    @property
    def database(self) -> SQLiteDatabase:
        """The database the store keeps its tables in."""
        return self._db.db

    async def append(self, session_id: str, messages: Sequence[Message | Mapping[str, Any]],
                     *, metadata: Mapping[str, Any] | None = None) -> list[StoredMessage]:
        """Add ``messages`` to the end of the session in one transaction (see the protocol)."""
        session_id, checked, texts, meta_text = check_append(
            "SQLiteMemory.append", session_id, messages, metadata)
        if not checked:
            return []
        now = float(self._clock())
        cutoff, limit = self._cutoff(now), self.max_messages

        def write(conn: sqlite3.Connection) -> int:
            _sweep(conn, cutoff)
            row = conn.execute("SELECT last_seq FROM conversation_sessions WHERE "
                               "session_id = ?", (session_id,)).fetchone()
            first = 1 if row is None else row[0] + 1
            conn.execute("INSERT INTO conversation_sessions VALUES (?, ?, ?) ON CONFLICT "
                         "(session_id) DO UPDATE SET last_seq = excluded.last_seq, "
                         "touched = excluded.touched",
                         (session_id, first + len(texts) - 1, now))
            conn.executemany("INSERT INTO conversation_messages VALUES (?, ?, ?, ?, ?)",
                             [(session_id, first + index, text, meta_text, now)
                              for index, text in enumerate(texts)])
            if limit is not None:
                conn.execute(_TRIM, (session_id, session_id, limit))
            return first

        return stored_messages(checked, meta_text, now, await self._db.write(write))

    async def history(self, session_id: str, *, limit: int | None = None,
                      max_tokens: int | None = None) -> list[StoredMessage]:
        """The session's messages, oldest first, within ``limit`` and ``max_tokens``.

        Only the newest rows are read: ``limit`` bounds the query, and with
        ``max_tokens`` reading stops at the first message past the budget.
        """
        session_id = check_storable_session_id("SQLiteMemory.history", session_id)
        check_window("SQLiteMemory.history", limit, max_tokens)
        cutoff = self._cutoff(float(self._clock()))
        floor = -math.inf if cutoff is None else cutoff

        def read(conn: sqlite3.Connection) -> list[StoredMessage]:
            newest: list[StoredMessage] = []
            spent = 0
            cursor = conn.execute(_SELECT_NEWEST, (session_id, floor,
                                                   -1 if limit is None else limit))
            for row in cursor:
                newest.append(_stored(row))
                if max_tokens is not None:
                    spent += message_tokens(newest[-1].message)
                    if spent > max_tokens:
                        break
            cursor.close()
            return newest

        newest = await self._db.read(read)
        return select_recent(newest[::-1], limit=limit, max_tokens=max_tokens)

    async def clear(self, session_id: str) -> None:
        """Drop the session's messages; it stays listed and its ``seq`` keeps counting."""
        session_id = check_storable_session_id("SQLiteMemory.clear", session_id)
        now = float(self._clock())
        cutoff = self._cutoff(now)

        def write(conn: sqlite3.Connection) -> None:
            _sweep(conn, cutoff)
            if conn.execute("UPDATE conversation_sessions SET touched = ? WHERE "
                            "session_id = ?", (now, session_id)).rowcount:
                conn.execute("DELETE FROM conversation_messages WHERE session_id = ?",
                             (session_id,))

        await self._db.write(write)

    async def delete(self, session_id: str) -> None:
        """Drop the session entirely; its ``seq`` numbering starts again at 1."""
        session_id = check_storable_session_id("SQLiteMemory.delete", session_id)
        cutoff = self._cutoff(float(self._clock()))

        def write(conn: sqlite3.Connection) -> None:
            _sweep(conn, cutoff)
            conn.execute("DELETE FROM conversation_sessions WHERE session_id = ?",
                         (session_id,))

        await self._db.write(write)

    async def sessions(self) -> list[str]:
        """The ids of the live sessions, sorted."""
        cutoff = self._cutoff(float(self._clock()))
        floor = -math.inf if cutoff is None else cutoff

        def read(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute("SELECT session_id FROM conversation_sessions WHERE "
                                "touched >= ?", (floor,)).fetchall()
            return [row[0] for row in rows]

        return sorted(await self._db.read(read))

    async def aclose(self) -> None:
        """Close the database if this store opened it (a shared one stays open)."""
        await self._db.aclose()

    # --- helpers ------------------------------------------------------------------------

    def _cutoff(self, now: float) -> float | None:
        """Rows stamped before this have expired; None without a ttl."""
        return None if self.ttl is None else now - self.ttl


def _sweep(conn: sqlite3.Connection, cutoff: float | None) -> None:
    """Delete expired sessions (their messages cascade) and expired messages."""
    if cutoff is None:
        return
    conn.execute("DELETE FROM conversation_sessions WHERE touched < ?", (cutoff,))
    conn.execute("DELETE FROM conversation_messages WHERE timestamp < ?", (cutoff,))


def _stored(row: tuple[int, str, str, float]) -> StoredMessage:
    """A message row as a StoredMessage; a row that does not parse is corruption."""
    seq, message, metadata, timestamp = row
    try:
        return StoredMessage(message=Message.model_validate(json.loads(message)),
                             metadata=json.loads(metadata), timestamp=timestamp, seq=seq)
    except (ValueError, TypeError) as exc:
        raise StoreCorruptedError(f"conversation message seq {seq} does not parse: {exc}",
                                  details={"store": "sqlite", "seq": seq}) from None


def check_storable_session_id(owner: str, session_id: object) -> str:
    """``check_session_id``, plus: it must be storable as UTF-8 (no lone surrogates)."""
    checked = check_session_id(owner, session_id)
    try:
        checked.encode("utf-8")
    except UnicodeEncodeError:
        raise InputValidationError(f"{owner}: session_id must be valid Unicode text "
                                   "(it holds a lone surrogate)", field="session_id") from None
    return checked


def check_append(owner: str, session_id: object, messages: object, metadata: object
                 ) -> tuple[str, list[Message], list[str], str]:
    """A persistent memory's ``append`` arguments, checked and encoded before any write.

    Returns:
        The session id, the messages, each message's JSON text (:func:`message_json`)
        and the metadata's JSON text.
    """
    session_id = check_storable_session_id(owner, session_id)
    checked = check_messages(owner, messages)
    meta_text = json.dumps(check_metadata(owner, metadata))
    texts = [message_json(owner, index, message) for index, message in enumerate(checked)]
    return session_id, checked, texts, meta_text


def stored_messages(messages: Sequence[Message], meta_text: str, now: float,
                    first: int) -> list[StoredMessage]:
    """What ``append`` returns: the messages stamped with ``now`` and ``seq`` from ``first``."""
    return [StoredMessage(message=message, metadata=json.loads(meta_text), timestamp=now,
                          seq=first + index) for index, message in enumerate(messages)]


def message_json(owner: str, index: int, message: Message) -> str:
    """``message`` as the JSON text a store keeps (ASCII, None fields left out)."""
    try:
        return json.dumps(message.model_dump(mode="json", exclude_none=True),
                          allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputValidationError(f"{owner}: messages.{index} cannot be stored as JSON: "
                                   f"{exc}", field=f"messages.{index}") from None


def check_store_settings(owner: str, max_messages: object, ttl: object,
                         clock: object) -> None:
    """Check the ``max_messages``, ``ttl`` and ``clock`` a persistent memory takes.

    Raises:
        InputValidationError: One is out of range; ``field`` names it.
    """
    if max_messages is not None and (isinstance(max_messages, bool)
                                     or not isinstance(max_messages, int) or max_messages < 1):
        raise InputValidationError(
            f"{owner}: max_messages must be a positive integer or None, got "
            f"{max_messages!r}", field="max_messages")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float)
                            or not math.isfinite(ttl) or ttl <= 0):
        raise InputValidationError(
            f"{owner}: ttl must be a number of seconds > 0 or None, got {ttl!r}", field="ttl")
    if not callable(clock):
        raise InputValidationError(f"{owner}: clock must be a callable, got {clock!r}",
                                   field="clock")
