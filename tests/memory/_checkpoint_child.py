"""The processes of the checkpoint durability tests.

``python -m tests.memory._checkpoint_child`` is a launcher: it imports chainweave once,
then for each job read from stdin (one JSON line) forks writer processes, which start
in a millisecond instead of an interpreter's ~0.3 s, and answers with one JSON line.

* ``{"job": "kill", "path", "seed", "delay", "wait_ready"}``: fork a writer, wait
  until it says ``ready`` (if asked), sleep ``delay`` seconds, SIGKILL it. Answers
  ``{"lines": [...], "status": ...}``: the complete lines it printed, and its wait status.
* ``{"job": "race", "path", "seed", "count", "writers"}``: fork ``writers`` writers that
  each put ``count`` checkpoints on one thread at once, then exit. Answers the same.

A writer opens the SQLite store, prints ``ready``, then puts checkpoints forever (or
``count`` of them), each the child of the newest it knows (now and then of an older
one: a fork). After each ``put`` returns it prints ``<checkpoint id> <step> <parent id
or ->``, flushed. Everything a checkpoint holds is a known function of its step
(:func:`expected`), so the test can tell a complete checkpoint from a torn one.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import select
import signal
import sys
import time
from typing import Any

from chainweave.memory.checkpoint import Checkpoint
from chainweave.memory.checkpoint_sqlite import SQLiteCheckpointer
from tests.memory._checkpoint_states import state_at

__all__ = ["THREAD", "expected"]

THREAD = "durable-run"
_READY_TIMEOUT = 20.0


def expected(step: int) -> dict[str, Any]:
    """The fields a writer gives the checkpoint of ``step`` (besides ids and time)."""
    return {"step": step, "state": state_at(step), "next": [f"node-{step % 4}"],
            "pending_writes": [{"node": "tools", "step": step}] if step % 2 else [],
            "metadata": {"step": step, "source": "loop"}, "schema_version": "v1"}


async def _write(path: str, seed: int, count: int | None) -> None:
    rng = random.Random(seed)
    store = SQLiteCheckpointer(path, snapshot_every=4)
    recent = await store.list(THREAD, limit=3)
    print("ready", flush=True)
    written = 0
    while count is None or written < count:
        if count is not None:  # racing another writer: follow whatever is newest now
            recent = await store.list(THREAD, limit=3)
        parent = None
        if recent:
            parent = recent[-1] if rng.random() < 0.1 else recent[0]
        step = 0 if parent is None else parent.step + 1
        checkpoint = Checkpoint(thread_id=THREAD, parent_id=parent and parent.checkpoint_id,
                                **expected(step))
        await store.put(checkpoint)
        print(f"{checkpoint.checkpoint_id} {step} {checkpoint.parent_id or '-'}", flush=True)
        recent = [checkpoint, *recent][:3]
        written += 1
    await store.aclose()


def _fork_writer(path: str, seed: int, count: int | None) -> tuple[int, int]:
    """Start a writer; returns its pid and the read end of its stdout."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the writer
        status = 1
        try:
            os.close(read_end)
            os.dup2(write_end, 1)
            os.close(write_end)
            asyncio.run(_write(path, seed, count))
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    return pid, read_end


def _read_until(fd: int, buffer: bytearray, marker: bytes, deadline: float) -> None:
    """Read ``fd`` into ``buffer`` until ``marker`` arrives, EOF, or ``deadline``."""
    while marker not in buffer and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        buffer += chunk


def _drain(fd: int, buffer: bytearray) -> list[str]:
    """Read ``fd`` to EOF and close it; the complete lines read."""
    while chunk := os.read(fd, 65536):
        buffer += chunk
    os.close(fd)
    return buffer.decode().split("\n")[:-1]  # a line cut short by the kill is left out


def _kill(job: dict[str, Any]) -> dict[str, Any]:
    pid, fd = _fork_writer(job["path"], job["seed"], None)
    buffer = bytearray()
    if job["wait_ready"]:
        _read_until(fd, buffer, b"ready\n", time.monotonic() + _READY_TIMEOUT)
    time.sleep(job["delay"])
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return {"lines": _drain(fd, buffer), "status": status}


def _race(job: dict[str, Any]) -> dict[str, Any]:
    started = [_fork_writer(job["path"], job["seed"] + index, job["count"])
               for index in range(job["writers"])]
    lines: list[str] = []
    statuses = []
    for pid, fd in started:
        lines += _drain(fd, bytearray())
        statuses.append(os.waitpid(pid, 0)[1])
    return {"lines": lines, "status": max(statuses)}


def main() -> None:
    """Serve jobs from stdin until it closes."""
    for line in sys.stdin:
        job = json.loads(line)
        answer = _kill(job) if job["job"] == "kill" else _race(job)
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
