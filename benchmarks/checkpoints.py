"""Checkpoint stores: time per step, and bytes stored as a message list grows.

Two measurements, printed as JSON:

* ``step_us``: one graph step's checkpointing on SQLite (and, for comparison, in
  memory): ``put`` a checkpoint that follows the previous one, then ``get`` the
  thread's newest. The state has 10 fields, one of them ~1 KB of messages (a sliding
  window: each step drops the oldest message and appends one). Figures are the median
  over rounds of the mean per step, in microseconds; ``put_us`` and ``get_us`` split it.
* ``growth``: a run of ``--growth-steps`` steps whose message list grows by one ~200-byte
  message per step, on SQLite with the default ``snapshot_every``. ``stored_bytes`` is
  what the rows hold (state snapshots and deltas, next, pending writes, metadata);
  ``full_copy_bytes`` is what storing the whole state at every step would hold;
  ``file_bytes`` is the database file after a WAL checkpoint. Linear growth shows as
  ``stored_bytes`` doubling from step 50 to 100 (ratio ~2), quadratic as ~4.

Usage: python benchmarks/checkpoints.py [--steps N] [--rounds R] [--growth-steps N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from chainweave.memory.checkpoint import Checkpoint, CheckpointStore
from chainweave.memory.checkpoint_memory import MemoryCheckpointer
from chainweave.memory.checkpoint_sqlite import SQLiteCheckpointer

_PAYLOAD = ("SELECT SUM(LENGTH(body) + LENGTH(next) + LENGTH(writes) + LENGTH(metadata)) "
            "FROM checkpoint_rows")


def _message(index: int, size: int) -> dict[str, str]:
    text = f"message {index}: "
    return {"role": "user" if index % 2 == 0 else "assistant",
            "content": text + "x" * max(0, size - len(text) - 30)}


def step_state(step: int) -> dict[str, Any]:
    """A state of 10 fields carrying ~1 KB of messages (5 of ~200 bytes, sliding)."""
    return {
        "messages": [_message(index, 200) for index in range(step, step + 5)],
        "step": step, "user": "u-42", "topic": "billing", "intent": "refund",
        "retries": step % 3, "confidence": 0.5 + (step % 10) / 20,
        "tools": ["lookup", "refund"], "scratch": {"last": step}, "done": False,
    }


async def _steps(store: CheckpointStore, steps: int, thread: str) -> tuple[float, float]:
    """Seconds spent in put and in get over ``steps`` steps."""
    put_s = get_s = 0.0
    parent = None
    for step in range(steps):
        checkpoint = Checkpoint(thread_id=thread, parent_id=parent, step=step,
                                state=step_state(step), next=["agent"])
        start = time.perf_counter()
        await store.put(checkpoint)
        middle = time.perf_counter()
        newest = await store.get(thread)
        put_s, get_s = put_s + middle - start, get_s + time.perf_counter() - middle
        assert newest is not None
        assert newest.step == step
        parent = checkpoint.checkpoint_id
    return put_s, get_s


async def bench_steps(kind: str, steps: int, rounds: int) -> dict[str, float]:
    """Median over rounds of the mean microseconds per step (put + get of the newest)."""
    results = []
    with tempfile.TemporaryDirectory() as folder:
        store: CheckpointStore = (SQLiteCheckpointer(Path(folder) / "bench.db")
                                  if kind == "sqlite" else MemoryCheckpointer())
        await _steps(store, 20, "warmup")
        for round_index in range(rounds):
            results.append(await _steps(store, steps, f"round-{round_index}"))
        await store.aclose()
    put_us = statistics.median(put for put, _ in results) / steps * 1e6
    get_us = statistics.median(get for _, get in results) / steps * 1e6
    return {"step_us": round(statistics.median((put + get) / steps * 1e6
                                               for put, get in results), 1),
            "put_us": round(put_us, 1), "get_us": round(get_us, 1)}


async def bench_growth(steps: int) -> dict[str, Any]:
    """Bytes stored after each step of a run whose message list grows by ~200 bytes."""
    stored: list[int] = []
    full: list[int] = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "growth.db"
        store = SQLiteCheckpointer(path)
        parent = None
        for step in range(1, steps + 1):
            state = {"messages": [_message(index, 200) for index in range(step)],
                     "step": step}
            checkpoint = Checkpoint(thread_id="run", parent_id=parent, step=step,
                                    state=state)
            await store.put(checkpoint)
            parent = checkpoint.checkpoint_id
            stored.append(_scalar(path, _PAYLOAD))
            full.append((full[-1] if full else 0) + len(json.dumps(state)))
        await store.aclose()
        _scalar(path, "PRAGMA wal_checkpoint(TRUNCATE)")
        file_bytes = path.stat().st_size
    marks = [mark for mark in (25, 50, 100, steps) if mark <= steps]
    return {
        "steps": steps, "message_bytes": len(json.dumps(_message(0, 200))),
        "stored_bytes": {str(mark): stored[mark - 1] for mark in marks},
        "full_copy_bytes": {str(mark): full[mark - 1] for mark in marks},
        "stored_bytes_per_step": round(stored[-1] / steps, 1),
        "full_copy_bytes_per_step": round(full[-1] / steps, 1),
        "stored_ratio_100_to_50": round(stored[99] / stored[49], 2) if steps >= 100 else None,
        "full_copy_ratio_100_to_50": round(full[99] / full[49], 2) if steps >= 100 else None,
        "file_bytes": file_bytes,
    }


def _scalar(path: Path, sql: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()


def main() -> None:
    """Print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--growth-steps", type=int, default=100)
    args = parser.parse_args()
    figures = {
        "benchmark": "checkpoints",
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "sqlite_step": asyncio.run(bench_steps("sqlite", args.steps, args.rounds)),
        "memory_step": asyncio.run(bench_steps("memory", args.steps, args.rounds)),
        "growth": asyncio.run(bench_growth(args.growth_steps)),
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
