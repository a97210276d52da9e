"""SQLiteDatabase: schema versions, all-or-nothing writes, locks, and files it must not touch."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chainweave.errors import InputValidationError, StoreCorruptedError, StoreError
from chainweave.memory.sqlite import APPLICATION_ID, SQLiteDatabase, default_db_path

SCHEMA = ["CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)",
          "ALTER TABLE notes ADD COLUMN tag TEXT"]


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[SQLiteDatabase]:
    """A database file of the test's own, closed afterwards."""
    database = SQLiteDatabase(tmp_path / "sub" / "test.db")
    yield database
    await database.aclose()


def _count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM notes").fetchone()[0])


async def test_migrations_apply_in_order_and_are_recorded(db: SQLiteDatabase) -> None:
    """Each component's migrations run once, in order, and its version is stored."""
    await db.ensure_schema("notes", SCHEMA[:1])
    await db.ensure_schema("notes", SCHEMA)
    await db.ensure_schema("notes", SCHEMA)
    await db.write(lambda c: c.execute("INSERT INTO notes (text, tag) VALUES ('a', 't')"))
    version = await db.read(lambda c: c.execute(
        "SELECT version FROM chainweave_schema WHERE component = 'notes'").fetchone()[0])
    assert version == 2
    app_id = await db.read(lambda c: c.execute("PRAGMA application_id").fetchone()[0])
    assert app_id == APPLICATION_ID
    mode = await db.read(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0])
    assert mode == "wal"


async def test_a_newer_schema_is_refused(db: SQLiteDatabase, tmp_path: Path) -> None:
    """A file migrated by a newer chainweave is not downgraded or reused."""
    await db.ensure_schema("notes", SCHEMA)
    older = SQLiteDatabase(db.path)
    try:
        with pytest.raises(StoreCorruptedError, match="newer"):
            await older.ensure_schema("notes", SCHEMA[:1])
    finally:
        await older.aclose()


async def test_a_failed_write_leaves_nothing(db: SQLiteDatabase) -> None:
    """An exception inside ``write`` rolls back every statement of the transaction."""
    await db.ensure_schema("notes", SCHEMA)

    def two_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO notes (text) VALUES ('one')")
        conn.execute("INSERT INTO notes (text) VALUES ('two')")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await db.write(two_then_fail)
    assert await db.read(_count) == 0


async def test_data_survives_reopening(db: SQLiteDatabase) -> None:
    """What was committed is there when the file is opened again."""
    await db.ensure_schema("notes", SCHEMA)
    await db.write(lambda c: c.execute("INSERT INTO notes (text) VALUES ('kept')"))
    again = SQLiteDatabase(db.path)
    try:
        assert await again.read(_count) == 1
    finally:
        await again.aclose()


async def test_a_held_lock_gives_a_retryable_error(tmp_path: Path) -> None:
    """A writer blocked past the busy timeout gets a retryable StoreError, not a hang."""
    db = SQLiteDatabase(tmp_path / "locked.db", busy_timeout=0.1)
    await db.ensure_schema("notes", SCHEMA)
    holder = sqlite3.connect(db.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreError, match="locked") as caught:
            await db.write(lambda c: c.execute("INSERT INTO notes (text) VALUES ('x')"))
        assert caught.value.retryable
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        await db.aclose()


async def test_a_file_that_is_not_sqlite_is_left_alone(tmp_path: Path) -> None:
    """A non-SQLite file raises StoreCorruptedError and keeps its bytes."""
    path = tmp_path / "notes.db"
    path.write_bytes(b"my precious notes, not a database" * 10)
    before = path.read_bytes()
    db = SQLiteDatabase(path)
    with pytest.raises(StoreCorruptedError, match="not a SQLite database"):
        await db.ensure_schema("notes", SCHEMA)
    await db.aclose()
    assert path.read_bytes() == before


async def test_another_programs_database_is_left_alone(tmp_path: Path) -> None:
    """A SQLite file with another program's tables is refused and unchanged."""
    path = tmp_path / "app.db"
    other = sqlite3.connect(path)
    other.execute("CREATE TABLE invoices (id INTEGER)")
    other.commit()
    other.close()
    before = path.read_bytes()
    db = SQLiteDatabase(path)
    with pytest.raises(StoreCorruptedError, match="another program"):
        await db.read(lambda c: None)
    await db.aclose()
    assert path.read_bytes() == before


async def test_damaged_pages_are_reported_as_corruption(tmp_path: Path) -> None:
    """A database whose pages were overwritten raises StoreCorruptedError on use."""
    path = tmp_path / "damaged.db"
    db = SQLiteDatabase(path)
    await db.ensure_schema("notes", SCHEMA)
    await db.write(lambda c: c.executemany("INSERT INTO notes (text) VALUES (?)",
                                          [("x" * 500,) for _ in range(50)]))
    await db.read(lambda c: c.execute("PRAGMA wal_checkpoint(TRUNCATE)"))
    await db.aclose()
    data = bytearray(path.read_bytes())
    data[4096:len(data)] = b"\xff" * (len(data) - 4096)
    path.write_bytes(bytes(data))
    damaged = SQLiteDatabase(path)
    with pytest.raises(StoreCorruptedError):
        await damaged.read(_count)
    await damaged.aclose()


async def test_calls_run_off_the_event_loop_thread(db: SQLiteDatabase) -> None:
    """Database work runs on the database's own thread, never the loop's."""
    loop_thread = threading.get_ident()
    assert await db.read(lambda c: threading.get_ident()) != loop_thread


async def test_closed_database_refuses_work(tmp_path: Path) -> None:
    """After ``aclose`` a call is a clear StoreError; closing twice is fine."""
    db = SQLiteDatabase(tmp_path / "x.db")
    await db.aclose()
    await db.aclose()
    with pytest.raises(StoreError, match="closed"):
        await db.read(lambda c: None)


async def test_in_memory_database() -> None:
    """``":memory:"`` gives a private database for tests."""
    db = SQLiteDatabase(":memory:")
    await db.ensure_schema("notes", SCHEMA)
    await db.write(lambda c: c.execute("INSERT INTO notes (text) VALUES ('m')"))
    assert await db.read(_count) == 1
    await db.aclose()


def test_default_path_follows_the_environment(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    """``CHAINWEAVE_DB_PATH`` chooses the default file."""
    monkeypatch.setenv("CHAINWEAVE_DB_PATH", str(tmp_path / "env.db"))
    assert default_db_path() == tmp_path / "env.db"
    assert SQLiteDatabase().path == tmp_path / "env.db"
    monkeypatch.delenv("CHAINWEAVE_DB_PATH")
    assert default_db_path() == Path(".chainweave") / "chainweave.db"


@pytest.mark.parametrize("timeout", [0, -1, True, "5"])
def test_busy_timeout_is_validated(timeout: object) -> None:
    """A non-positive busy timeout is refused."""
    with pytest.raises(InputValidationError, match="busy_timeout"):
        SQLiteDatabase(":memory:", busy_timeout=timeout)  # type: ignore[arg-type]

