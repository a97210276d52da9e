"""SQLiteMemory: what the file holds, files it must not touch, sharing, and other processes.

The behaviour every backend shares is in ``test_conversation_contract.py``.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chainweave.errors import InputValidationError, StoreCorruptedError, StoreError
from chainweave.memory.base import message_tokens
from chainweave.memory.sqlite import SQLiteDatabase
from chainweave.memory.sqlite_memory import SQLiteMemory
from chainweave.types import Message
from tests.memory._conversation_writer import check_all_appended, run_writers
from tests.memory.test_conversation_contract import FakeClock


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """Where the test's database file goes."""
    return tmp_path / "memory.db"


@pytest.fixture
async def memory(path: Path) -> AsyncIterator[SQLiteMemory]:
    """A store on the test's own file, closed afterwards."""
    store = SQLiteMemory(path)
    yield store
    await store.aclose()


def _rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(sql).fetchall()
    conn.close()
    return rows


# Small files, read and written directly: nothing else runs on the loop meanwhile.
def _read_file(path: Path) -> bytes:
    return path.read_bytes()


def _write_file(path: Path, content: bytes) -> None:
    path.write_bytes(content)


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


async def test_history_survives_closing_and_reopening(path: Path) -> None:
    """What was appended is there after the store is closed and the file opened again."""
    first = SQLiteMemory(path)
    stored = await first.append("s", [Message.user("q"), Message.assistant("a")],
                                metadata={"run": 1})
    await first.aclose()
    second = SQLiteMemory(path)
    try:
        assert await second.history("s") == stored
        assert await second.sessions() == ["s"]
        (more,) = await second.append("s", [Message.user("q2")])
        assert more.seq == 3
    finally:
        await second.aclose()


async def test_rows_are_json_text_and_a_real_timestamp(memory: SQLiteMemory,
                                                       path: Path) -> None:
    """Messages and metadata are stored as JSON (never pickle), timestamps as REAL."""
    await memory.append("s", [Message.user("hi")], metadata={"k": [1, "x"]})
    ((message, metadata, kind),) = _rows(path, "SELECT message, metadata, typeof(timestamp) "
                                               "FROM conversation_messages")
    assert isinstance(message, str)
    assert isinstance(metadata, str)
    assert json.loads(message) == {"role": "user", "content": "hi"}
    assert json.loads(metadata) == {"k": [1, "x"]}
    assert kind == "real"


async def test_schema_version_row_is_recorded(memory: SQLiteMemory, path: Path) -> None:
    """The conversation tables are versioned in chainweave_schema, for later migrations."""
    await memory.sessions()
    assert _rows(path, "SELECT version FROM chainweave_schema "
                       "WHERE component = 'conversation'") == [(1,)]


@pytest.mark.parametrize("content", [os.urandom(4096), b"SQLite format 3\x00" + bytes(200)])
async def test_a_corrupt_file_is_refused_and_left_unchanged(path: Path,
                                                            content: bytes) -> None:
    """A damaged file raises StoreCorruptedError and keeps every byte the user had."""
    _write_file(path, content)
    memory = SQLiteMemory(path)
    try:
        with pytest.raises(StoreCorruptedError):
            await memory.append("s", [Message.user("q")])
        with pytest.raises(StoreCorruptedError):
            await memory.history("s")
    finally:
        await memory.aclose()
    assert _read_file(path) == content
    assert _names(path.parent) == [path.name]


async def test_another_programs_database_is_refused_and_left_unchanged(path: Path) -> None:
    """A SQLite file with another application's tables is never written to."""
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        conn.execute("INSERT INTO invoices (total) VALUES (9.5)")
    conn.close()
    before = _read_file(path)
    memory = SQLiteMemory(path)
    try:
        with pytest.raises(StoreCorruptedError, match="another program"):
            await memory.append("s", [Message.user("q")])
    finally:
        await memory.aclose()
    assert _read_file(path) == before


async def test_two_stores_share_one_database(path: Path) -> None:
    """Stores on one shared SQLiteDatabase see the same data; closing one keeps it open."""
    db = SQLiteDatabase(path)
    writer, reader = SQLiteMemory(db), SQLiteMemory(db, max_messages=1)
    try:
        await writer.append("s", [Message.user("q"), Message.assistant("a")])
        assert [m.message.text for m in await reader.history("s")] == ["q", "a"]
        await writer.aclose()
        assert not db.closed
        assert await reader.sessions() == ["s"]
        with pytest.raises(StoreError, match="closed"):
            await writer.history("s")
    finally:
        await reader.aclose()
        await db.aclose()


async def test_a_store_closes_the_database_it_opened(memory: SQLiteMemory) -> None:
    """aclose releases the store's own file; using it afterwards is a clear StoreError."""
    await memory.append("s", [Message.user("q")])
    await memory.aclose()
    assert memory.database.closed
    with pytest.raises(StoreError, match="closed"):
        await memory.append("s", [Message.user("q")])


async def test_limit_reads_only_the_newest_rows(memory: SQLiteMemory, path: Path) -> None:
    """history(limit=N) and a token budget never read older rows (shown by a broken one)."""
    await memory.append("s", [Message.user(str(i)) for i in range(50)])
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE conversation_messages SET message = 'not json' WHERE seq = 1")
    conn.close()
    assert [m.message.text for m in await memory.history("s", limit=2)] == ["48", "49"]
    one = message_tokens(Message.user("49"))
    assert [m.message.text for m in await memory.history("s", max_tokens=one)] == ["49"]
    with pytest.raises(StoreCorruptedError, match="seq 1"):
        await memory.history("s")


async def test_max_messages_deletes_the_trimmed_rows(path: Path) -> None:
    """Trimmed messages are gone from the file, not just hidden."""
    memory = SQLiteMemory(path, max_messages=2)
    try:
        for i in range(5):
            await memory.append("s", [Message.user(str(i))])
    finally:
        await memory.aclose()
    assert _rows(path, "SELECT seq FROM conversation_messages ORDER BY seq") == [(4,), (5,)]


async def test_expired_rows_are_deleted_by_the_next_write(path: Path) -> None:
    """With ttl, a write removes expired messages and idle sessions from the file."""
    clock = FakeClock()
    memory = SQLiteMemory(path, ttl=10, clock=clock)
    try:
        await memory.append("idle", [Message.user("x")])
        await memory.append("busy", [Message.user("old")])
        clock.now += 8
        await memory.append("busy", [Message.user("new")])
        clock.now += 3
        assert len(_rows(path, "SELECT 1 FROM conversation_messages")) == 3  # reads delete nothing
        await memory.append("other", [Message.user("y")])
    finally:
        await memory.aclose()
    assert _rows(path, "SELECT session_id FROM conversation_sessions ORDER BY 1") == [
        ("busy",), ("other",)]
    assert _rows(path, "SELECT session_id, message FROM conversation_messages "
                       "ORDER BY 1") == [("busy", '{"role": "user", "content": "new"}'),
                                         ("other", '{"role": "user", "content": "y"}')]


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"path_or_db": 3}, "path_or_db"), ({"busy_timeout": 0}, "busy_timeout"),
    ({"max_messages": -1}, "max_messages"), ({"ttl": "1h"}, "ttl"), ({"clock": None}, "clock"),
])
def test_bad_arguments_are_refused(kwargs: dict[str, object], field: str) -> None:
    """A bad constructor argument raises InputValidationError naming it."""
    with pytest.raises(InputValidationError) as info:
        SQLiteMemory(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


async def test_an_unencodable_session_id_is_refused(memory: SQLiteMemory) -> None:
    """A session id with a lone surrogate is a clear InputValidationError, not a crash."""
    with pytest.raises(InputValidationError) as info:
        await memory.append("bad\ud800", [Message.user("q")])
    assert info.value.field == "session_id"


async def test_two_processes_appending_to_one_session_lose_nothing(path: Path) -> None:
    """Two OS processes appending 200 messages each leave all 400, seq 1..400, in order."""
    run_writers("sqlite", str(path), "", "shared", ["A", "B"], 200)
    memory = SQLiteMemory(path)
    try:
        history = await memory.history("shared")
    finally:
        await memory.aclose()
    switches = check_all_appended(history, ["A", "B"], 200)
    assert switches >= 2, "the writers did not overlap, so the test proved nothing"
