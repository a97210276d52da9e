"""What SQLiteStore adds to the key-value contract: a file that lasts and is shared safely."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from pathlib import Path

import pytest

from chainweave.errors import InputValidationError, StoreCorruptedError
from chainweave.memory.kv_sqlite import SQLiteStore
from chainweave.memory.sqlite import SQLiteDatabase

_REPO = Path(__file__).resolve().parents[2]

# A child process: opens the store, says "ready", waits for "go", then puts its keys.
_CHILD = """
import asyncio, sys
from chainweave.memory.kv_sqlite import SQLiteStore

async def main(path, tag, count):
    store = SQLiteStore(path, busy_timeout=10)
    await store.get("warm", "up")
    print("ready", flush=True)
    sys.stdin.readline()
    for index in range(count):
        await store.put(("shared",), f"{tag}-{index}", {"tag": tag, "index": index})
    await store.aclose()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


async def test_items_survive_closing_and_reopening(tmp_path: Path) -> None:
    """What one store wrote, a store opened later on the same file reads back intact."""
    path = tmp_path / "kv.db"
    first = SQLiteStore(path)
    put = await first.put(("users", "u1"), "profile", {"name": "Ann", "langs": ["fr"]})
    await first.put(("users", "u2"), "profile", None)
    await first.aclose()
    second = SQLiteStore(path)
    try:
        assert await second.get(("users", "u1"), "profile") == put
        assert await second.namespaces("users") == [("users", "u1"), ("users", "u2")]
    finally:
        await second.aclose()


async def test_a_shared_database_serves_other_components(tmp_path: Path) -> None:
    """Stores on one SQLiteDatabase share the file with other components and never close it."""
    db = SQLiteDatabase(tmp_path / "app.db")
    await db.ensure_schema("other", ["CREATE TABLE other_notes (note TEXT)"])
    await db.write(lambda conn: conn.execute("INSERT INTO other_notes VALUES ('kept')"))
    writer, reader = SQLiteStore(db), SQLiteStore(db)
    await writer.put("ns", "k", 1)
    await writer.aclose()
    try:
        assert await reader.get("ns", "k") is not None
        notes = await db.read(lambda conn: conn.execute("SELECT note FROM other_notes")
                              .fetchall())
        versions = await db.read(lambda conn: conn.execute(
            "SELECT component, version FROM chainweave_schema ORDER BY component").fetchall())
        assert notes == [("kept",)]
        assert versions == [("kv", 1), ("other", 1)]
        assert writer.db is db
    finally:
        await reader.aclose()
        await db.aclose()


def _names(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir())


def _foreign(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    conn.close()


def _garbage(path: Path) -> None:
    path.write_bytes(b"these are my notes, not a database\n" * 200)


def _damaged(path: Path) -> None:
    path.write_bytes(b"SQLite format 3\x00" + os.urandom(8192))


@pytest.mark.parametrize("make", [_foreign, _garbage, _damaged])
async def test_a_file_that_is_not_ours_is_refused_and_left_untouched(tmp_path: Path,
                                                                     make: object) -> None:
    """A foreign, non-SQLite or damaged file raises StoreCorruptedError and keeps its bytes."""
    path = tmp_path / "user-data.db"
    make(path)  # type: ignore[operator]
    before = path.read_bytes()
    store = SQLiteStore(path)
    try:
        for call in (store.put("ns", "k", 1), store.get("ns", "k"), store.list()):
            with pytest.raises(StoreCorruptedError):
                await call
    finally:
        await store.aclose()
    assert path.read_bytes() == before
    assert _names(tmp_path) == ["user-data.db"]


async def test_a_newer_kv_schema_is_refused(tmp_path: Path) -> None:
    """A file written by a newer chainweave (kv schema 2) raises instead of being misread."""
    path = tmp_path / "kv.db"
    store = SQLiteStore(path)
    await store.put("ns", "k", 1)
    await store.aclose()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE chainweave_schema SET version = 2 WHERE component = 'kv'")
    conn.close()
    newer = SQLiteStore(path)
    try:
        with pytest.raises(StoreCorruptedError, match="newer"):
            await newer.get("ns", "k")
    finally:
        await newer.aclose()


async def test_prefix_listing_is_a_range_on_the_primary_key(tmp_path: Path) -> None:
    """Listing by prefix searches the (ns, key) index instead of scanning the table."""
    store = SQLiteStore(tmp_path / "kv.db")
    seen: list[str] = []
    try:
        await store.put(("users", "u1"), "k", 1)
        await store.db.read(lambda conn: conn.set_trace_callback(seen.append))
        await store.list(("users",), limit=5)
        await store.db.read(lambda conn: conn.set_trace_callback(None))
        (query,) = [sql for sql in seen if sql.startswith("SELECT")]
        plan = await store.db.read(
            lambda conn: conn.execute(f"EXPLAIN QUERY PLAN {query}").fetchall())
        details = " ".join(row[-1] for row in plan)
        assert "USING PRIMARY KEY (ns>? AND ns<?)" in details
        assert "SCAN" not in details
    finally:
        await store.aclose()


async def test_expired_items_are_deleted_from_the_file(tmp_path: Path) -> None:
    """A write removes expired rows, so items put with ttl do not pile up on disk."""
    clock = [1_000.0]
    store = SQLiteStore(tmp_path / "kv.db", clock=lambda: clock[0])
    try:
        for index in range(5):
            await store.put("tmp", f"k{index}", index, ttl=1)
        clock[0] += 2
        await store.put("kept", "k", 0)
        rows = await store.db.read(
            lambda conn: conn.execute("SELECT ns, key FROM kv_items").fetchall())
        assert rows == [("kept\x1f", "k")]
    finally:
        await store.aclose()


async def _create(path: Path) -> None:
    """Create the file first: these tests are about concurrent puts, not first opens."""
    store = SQLiteStore(path)
    await store.list()
    await store.aclose()


async def test_concurrent_tasks_lose_no_write(tmp_path: Path) -> None:
    """Tasks putting at once, through one store and through two on the file, lose nothing."""
    path = tmp_path / "kv.db"
    await _create(path)
    first, second = SQLiteStore(path), SQLiteStore(path)
    try:
        await asyncio.gather(*(store.put(("shared",), f"{name}-{index}", index)
                               for index in range(60)
                               for name, store in (("a", first), ("b", second), ("c", first))))
        items = await second.list("shared")
        assert len(items) == 180
        assert {item.key for item in items} == {f"{name}-{index}" for index in range(60)
                                                for name in "abc"}
    finally:
        await first.aclose()
        await second.aclose()


async def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    """Two OS processes putting into one file at the same time both land every item."""
    path, count = tmp_path / "kv.db", 150
    await _create(path)
    env = {**os.environ, "PYTHONPATH": str(_REPO)}
    children = [await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CHILD, str(path), tag, str(count), env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE) for tag in ("p1", "p2")]
    try:
        for child in children:
            assert child.stdout is not None
            assert await asyncio.wait_for(child.stdout.readline(), 30) == b"ready\n"
        for child in children:  # both are open and waiting: start them together
            assert child.stdin is not None
            child.stdin.write(b"go\n")
            child.stdin.close()
        codes = await asyncio.wait_for(asyncio.gather(*(c.wait() for c in children)), 60)
        assert codes == [0, 0]
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
                await child.wait()
    store = SQLiteStore(path)
    try:
        items = await store.list("shared")
        assert sorted(item.key for item in items) == sorted(
            f"{tag}-{index}" for tag in ("p1", "p2") for index in range(count))
    finally:
        await store.aclose()


@pytest.mark.parametrize(("field", "value"), [("clock", 1.0), ("busy_timeout", 0)])
def test_sqlite_refuses_bad_settings(tmp_path: Path, field: str, value: object) -> None:
    """A bad constructor argument raises InputValidationError naming it."""
    with pytest.raises(InputValidationError) as info:
        SQLiteStore(tmp_path / "kv.db", **{field: value})  # type: ignore[arg-type]
    assert info.value.field == field
