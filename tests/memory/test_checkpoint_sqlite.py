"""SQLiteCheckpointer's own promises: a file that survives restarts, is never overwritten
when foreign, stores JSON deltas whose size grows linearly, and never returns garbage."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from chainweave.errors import StoreCorruptedError, StoreError
from chainweave.memory.checkpoint import Checkpoint
from chainweave.memory.checkpoint_sqlite import SQLiteCheckpointer
from chainweave.memory.sqlite import SQLiteDatabase
from tests.memory._checkpoint_states import state_at

_PAYLOAD = "SELECT COALESCE(SUM(LENGTH(body) + LENGTH(next) + LENGTH(writes) " \
           "+ LENGTH(metadata)), 0) FROM checkpoint_rows"


async def _run(store: SQLiteCheckpointer, steps: int, *, thread: str = "t",
               state: Any = state_at) -> list[Checkpoint]:
    made, parent = [], None
    for step in range(steps):
        checkpoint = Checkpoint(thread_id=thread, parent_id=parent, step=step,
                                state=state(step))
        await store.put(checkpoint)
        made.append(checkpoint)
        parent = checkpoint.checkpoint_id
    return made


def _query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def test_checkpoints_survive_closing_and_reopening(tmp_path: Path) -> None:
    """What was put is there, unchanged, for a store opened later on the same file."""
    path = tmp_path / "cp.db"
    store = SQLiteCheckpointer(path, snapshot_every=3)
    made = await _run(store, 20)
    await store.aclose()
    reopened = SQLiteCheckpointer(path)
    try:
        assert await reopened.list("t") == made[::-1]
        assert await reopened.threads() == ["t"]
    finally:
        await reopened.aclose()


@pytest.mark.parametrize("content", ["garbage", "foreign"])
async def test_corrupt_or_foreign_file_is_refused_and_left_untouched(
        tmp_path: Path, content: str) -> None:
    """A file that is not a chainweave database raises StoreCorruptedError and is not changed."""
    path = tmp_path / "other.db"
    if content == "garbage":
        path.write_bytes(b"this is not a database\x00" * 200)
    else:
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE users (name TEXT)")
        conn.execute("INSERT INTO users VALUES ('ada')")
        conn.commit()
        conn.close()
    before = path.read_bytes()
    store = SQLiteCheckpointer(path)
    try:
        with pytest.raises(StoreCorruptedError):
            await store.get("t")
        with pytest.raises(StoreCorruptedError):
            await store.put(Checkpoint(thread_id="t", step=0, state={}))
    finally:
        await store.aclose()
    assert path.read_bytes() == before


async def test_stored_bytes_grow_linearly_with_a_growing_message_list(tmp_path: Path) -> None:
    """200 steps each appending a ~200-byte message: at every step the bytes stored stay
    under 3x the bytes of the state (plus a little per row), where full copies would grow
    quadratically, 100x that by the end."""
    path = tmp_path / "growth.db"
    store = SQLiteCheckpointer(path)

    def state(step: int) -> dict[str, Any]:
        return {"messages": [{"role": "user", "content": f"{index:04d}" + "m" * 180}
                             for index in range(step + 1)], "step": step}

    full = 0
    parent = None
    try:
        for step in range(200):
            checkpoint = Checkpoint(thread_id="t", parent_id=parent, step=step,
                                    state=state(step))
            await store.put(checkpoint)
            parent = checkpoint.checkpoint_id
            size = len(json.dumps(state(step)))
            full += size
            stored = _query(path, _PAYLOAD)[0][0]
            assert stored <= 3 * size + 100 * (step + 1), (step, stored, size)
        assert full > 30 * stored
    finally:
        await store.aclose()


async def test_rows_are_json_snapshots_and_deltas(tmp_path: Path) -> None:
    """Every stored column is JSON text (never pickle), and a run mixes snapshots and deltas."""
    path = tmp_path / "rows.db"
    store = SQLiteCheckpointer(path, snapshot_every=4)
    await _run(store, 40)
    await store.aclose()
    rows = _query(path, "SELECT base_id, body, next, writes, metadata FROM checkpoint_rows")
    for row in rows:
        for text in row[1:]:
            json.loads(text)
    kinds = {base_id is None for base_id, *_ in rows}
    assert kinds == {True, False}


@pytest.mark.parametrize("damage", [
    "UPDATE checkpoint_rows SET body = 'not json' WHERE seq = 1",
    "DELETE FROM checkpoint_rows WHERE seq = 1",
    "UPDATE checkpoint_rows SET body = '{\"a\":[1]}' WHERE seq = 2",
])
async def test_damaged_rows_raise_instead_of_returning_garbage(tmp_path: Path,
                                                               damage: str) -> None:
    """A row edited or deleted behind the store's back is reported, never misread."""
    path = tmp_path / "damaged.db"
    store = SQLiteCheckpointer(path, snapshot_every=50)
    await _run(store, 5, state=lambda step: {**state_at(step), "document": "d" * 500})
    await store.aclose()
    conn = sqlite3.connect(path)
    conn.execute(damage)
    conn.commit()
    conn.close()
    reopened = SQLiteCheckpointer(path)
    try:
        with pytest.raises(StoreCorruptedError):
            await reopened.get("t")
    finally:
        await reopened.aclose()


async def test_newest_and_listing_use_the_thread_index(tmp_path: Path) -> None:
    """The newest checkpoint of a thread and its listing are found through an index."""
    path = tmp_path / "index.db"
    store = SQLiteCheckpointer(path)
    await _run(store, 2)
    await store.aclose()
    for sql in ("SELECT * FROM checkpoint_rows WHERE thread_id = 't' ORDER BY seq DESC LIMIT 1",
                "SELECT * FROM checkpoint_rows WHERE thread_id = 't' AND seq < 5 "
                "ORDER BY seq DESC"):
        plan = " ".join(str(row) for row in _query(path, f"EXPLAIN QUERY PLAN {sql}"))
        assert "checkpoint_rows_thread_seq" in plan
        assert "TEMP B-TREE" not in plan


async def test_shared_database_stays_open_for_its_other_users(tmp_path: Path) -> None:
    """A store on a shared SQLiteDatabase does not close it; another store keeps using it."""
    db = SQLiteDatabase(tmp_path / "shared.db")
    first, second = SQLiteCheckpointer(db), SQLiteCheckpointer(db)
    made = await _run(first, 3)
    await first.aclose()
    assert await second.list("t") == made[::-1]
    assert first.database is db
    await second.aclose()
    await db.aclose()


async def test_default_path_comes_from_the_environment(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """With no path, the store uses $CHAINWEAVE_DB_PATH (the project default file)."""
    path = tmp_path / "env" / "default.db"
    monkeypatch.setenv("CHAINWEAVE_DB_PATH", str(path))
    store = SQLiteCheckpointer()
    await _run(store, 1)
    await store.aclose()
    assert _query(path, "SELECT COUNT(*) FROM checkpoint_rows") == [(1,)]


async def test_closed_store_refuses_calls(tmp_path: Path) -> None:
    """After aclose, a call fails with a clear StoreError instead of reopening the file."""
    store = SQLiteCheckpointer(tmp_path / "closed.db")
    await store.aclose()
    await store.aclose()
    with pytest.raises(StoreError, match="closed"):
        await store.get("t")
