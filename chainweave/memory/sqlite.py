"""One SQLite database file shared by chainweave's stores: opening, schema, transactions.

Every store on SQLite (conversation memory, checkpoints, the key-value store) goes
through a :class:`SQLiteDatabase`:

* **One thread per database.** Calls run on a dedicated worker thread, so the event
  loop never blocks on disk or on another process's write lock.
* **WAL and a busy timeout.** Readers do not block the writer; a writer waits up to
  ``busy_timeout`` seconds for another process's write to finish.
* **One transaction per write.** :meth:`SQLiteDatabase.write` runs inside ``BEGIN
  IMMEDIATE ... COMMIT``: all of it lands, or none of it. A process killed mid-write
  leaves the last committed state, never a partial one.
* **Schema versions.** Each component (``conversation``, ``checkpoint``, ``kv``) keeps
  its version in ``chainweave_schema`` and is migrated forward in one transaction.
* **Never over the user's data.** A file that is not SQLite, a database with another
  program's tables, or one written by a newer chainweave raises
  :class:`~chainweave.errors.StoreCorruptedError`; nothing is recreated or dropped.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from chainweave.errors import InputValidationError, StoreCorruptedError, StoreError

__all__ = ["APPLICATION_ID", "DEFAULT_DB_PATH", "Migration", "SQLiteDatabase",
           "default_db_path"]

T = TypeVar("T")

#: Written into the file header (``PRAGMA application_id``): "cwv1".
APPLICATION_ID = 0x63777631
#: Where stores keep their data when given no path (``CHAINWEAVE_DB_PATH`` overrides).
DEFAULT_DB_PATH = Path(".chainweave") / "chainweave.db"
_HEADER = b"SQLite format 3\x00"

#: A schema step: SQL (may hold several statements) or a function of the connection.
Migration = str | Callable[[sqlite3.Connection], None]


def default_db_path() -> Path:
    """``$CHAINWEAVE_DB_PATH`` if set, else ``.chainweave/chainweave.db``."""
    configured = os.environ.get("CHAINWEAVE_DB_PATH")
    return Path(configured) if configured else DEFAULT_DB_PATH


class SQLiteDatabase:
    """A SQLite file opened the way every chainweave store needs it.

    Args:
        path: The database file; :func:`default_db_path` when left out. ``":memory:"``
            gives a private in-memory database (for tests). Parent folders are created.
        busy_timeout: Seconds a write waits for another process's lock before failing
            with a retryable :class:`~chainweave.errors.StoreError`.

    Raises:
        InputValidationError: ``busy_timeout`` is not a positive number.
        StoreCorruptedError: (on first use) the file is not a chainweave SQLite database.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 busy_timeout: float = 5.0) -> None:
        if isinstance(busy_timeout, bool) or not isinstance(busy_timeout, int | float) \
                or not busy_timeout > 0:
            raise InputValidationError(
                f"SQLiteDatabase.busy_timeout must be seconds > 0, got {busy_timeout!r}",
                field="busy_timeout")
        self.path = default_db_path() if path is None else Path(path)
        self.busy_timeout = float(busy_timeout)
        self._memory = str(path) == ":memory:"
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chainweave-db")
        self._conn: sqlite3.Connection | None = None
        self._schemas: dict[str, int] = {}
        self.closed = False

    def __repr__(self) -> str:
        return f"SQLiteDatabase({str(self.path)!r})"

    # --- running work on the database thread -------------------------------------------

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the database thread, outside any transaction."""
        return await self._submit(fn, transaction=False)

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` in one ``BEGIN IMMEDIATE`` transaction: all or nothing."""
        return await self._submit(fn, transaction=True)

    async def ensure_schema(self, component: str, migrations: Sequence[Migration]) -> None:
        """Bring ``component``'s tables to ``len(migrations)``, applying the missing steps.

        Raises:
            StoreCorruptedError: The file holds a newer version than this code knows.
        """
        if self._schemas.get(component) == len(migrations):
            return
        await self.write(lambda conn: self._migrate(conn, component, migrations))
        self._schemas[component] = len(migrations)

    async def aclose(self) -> None:
        """Close the connection and the worker thread. Safe to call twice."""
        if self.closed:
            return
        self.closed = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=True)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _submit(self, fn: Callable[[sqlite3.Connection], T], *, transaction: bool) -> T:
        if self.closed:
            raise StoreError(f"{self!r} is closed", details={"path": str(self.path)})
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, fn, transaction)

    def _call(self, fn: Callable[[sqlite3.Connection], T], transaction: bool) -> T:
        try:
            conn = self._connection()
            if not transaction:
                return fn(conn)
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from exc

    # --- opening ------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._open()
        return self._conn

    def _open(self) -> sqlite3.Connection:
        if not self._memory:
            self._check_header()
            self.path.parent.mkdir(parents=True, exist_ok=True)
        target = ":memory:" if self._memory else str(self.path)
        conn = sqlite3.connect(target, timeout=self.busy_timeout, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            self._claim(conn)  # before anything that writes to the file
            if not self._memory:
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            conn.close()
            raise
        return conn

    def _check_header(self) -> None:
        try:
            with self.path.open("rb") as handle:
                header = handle.read(len(_HEADER))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StoreError(f"cannot read database file {str(self.path)!r}: {exc}",
                             details={"path": str(self.path)}) from exc
        if header and header != _HEADER:
            raise StoreCorruptedError(
                f"{str(self.path)!r} is not a SQLite database; it was left untouched. "
                "Point the store at another file.", details={"path": str(self.path)})

    def _claim(self, conn: sqlite3.Connection) -> None:
        """Mark a fresh database as chainweave's; refuse another program's.

        Inside one write transaction, so two processes opening a new file at once
        cannot see each other's half-made tables as a foreign database.
        """
        conn.execute("BEGIN IMMEDIATE")
        try:
            (app_id,) = conn.execute("PRAGMA application_id").fetchone()
            if app_id != APPLICATION_ID:
                tables = [row[0] for row in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' LIMIT 5")]
                if app_id != 0 or tables:
                    raise StoreCorruptedError(
                        f"{str(self.path)!r} belongs to another program (application_id "
                        f"{app_id:#x}, tables {tables}); it was left untouched. Point the "
                        "store at another file.",
                        details={"path": str(self.path), "tables": tables})
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _migrate(self, conn: sqlite3.Connection, component: str,
                 migrations: Sequence[Migration]) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS chainweave_schema ("
                     "component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM chainweave_schema WHERE component = ?",
                           (component,)).fetchone()
        current = row[0] if row else 0
        if current > len(migrations):
            raise StoreCorruptedError(
                f"{str(self.path)!r} holds {component} schema version {current}, newer than "
                f"this chainweave knows ({len(migrations)}); upgrade chainweave to open it",
                details={"path": str(self.path), "component": component,
                         "version": current, "known": len(migrations)})
        for step in migrations[current:]:
            if isinstance(step, str):
                for statement in _statements(step):
                    conn.execute(statement)
            else:
                step(conn)
        conn.execute("INSERT INTO chainweave_schema (component, version) VALUES (?, ?) "
                     "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                     (component, len(migrations)))

    def _error(self, exc: sqlite3.DatabaseError) -> StoreError:
        message = str(exc)
        details: dict[str, Any] = {"path": str(self.path), "sqlite_error": message}
        if isinstance(exc, sqlite3.OperationalError) and "locked" in message:
            return StoreError(f"{str(self.path)!r} stayed locked by another writer for "
                              f"{self.busy_timeout}s", retryable=True, details=details)
        if isinstance(exc, sqlite3.OperationalError | sqlite3.IntegrityError):
            return StoreError(f"SQLite error on {str(self.path)!r}: {message}",
                              details=details)
        return StoreCorruptedError(f"{str(self.path)!r} is damaged ({message}); it was left "
                                   "untouched", details=details)


class StoreDatabase:
    """The database one store works in: opened for the store, or shared and left open.

    Given a path (or None, for :func:`default_db_path`) it opens a
    :class:`SQLiteDatabase` that :meth:`aclose` closes; given a ``SQLiteDatabase`` it
    shares it, and never closes it. Either way the store's schema component is brought
    up to date on first use, and use after :meth:`aclose` is refused.

    Args:
        owner: The store's class name, for messages.
        path_or_db: A path, a shared ``SQLiteDatabase``, or None.
        busy_timeout: For a database opened here.
        component: The store's schema component (``conversation``, ``checkpoint``, ...).
        migrations: Its schema steps (see :meth:`SQLiteDatabase.ensure_schema`).

    Raises:
        InputValidationError: ``path_or_db`` is none of these, or ``busy_timeout`` is bad.
    """

    def __init__(self, owner: str, path_or_db: str | os.PathLike[str] | SQLiteDatabase | None,
                 *, busy_timeout: float, component: str,
                 migrations: Sequence[Migration]) -> None:
        if isinstance(path_or_db, SQLiteDatabase):
            self.db, self.owned = path_or_db, False
        elif path_or_db is None or isinstance(path_or_db, str | os.PathLike):
            self.db, self.owned = SQLiteDatabase(path_or_db, busy_timeout=busy_timeout), True
        else:
            raise InputValidationError(
                f"{owner}: path_or_db must be a path, a SQLiteDatabase or None, got "
                f"{type(path_or_db).__name__}", field="path_or_db")
        #: How the store shows itself: ``Owner('path/to/file.db')``.
        self.label = f"{owner}({str(self.db.path)!r})"
        self._component = component
        self._migrations = migrations
        self._ready = False
        self.closed = False

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """:meth:`SQLiteDatabase.read`, once the schema is ready."""
        return await (await self._ready_db()).read(fn)

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """:meth:`SQLiteDatabase.write`, once the schema is ready."""
        return await (await self._ready_db()).write(fn)

    async def aclose(self) -> None:
        """Close the database if it was opened here; later calls are refused. Safe twice."""
        if self.closed:
            return
        self.closed = True
        if self.owned:
            await self.db.aclose()

    async def _ready_db(self) -> SQLiteDatabase:
        if self.closed:
            raise StoreError(f"{self.label} is closed",
                             details={"store": "sqlite", "path": str(self.db.path)})
        if not self._ready:
            await self.db.ensure_schema(self._component, self._migrations)
            self._ready = True
        return self.db


def _statements(script: str) -> list[str]:
    """Split a migration script on ``;`` (migrations hold no semicolons in literals)."""
    return [part.strip() for part in script.split(";") if part.strip()]
