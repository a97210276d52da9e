"""A child process for the cross-process tests: appends numbered messages to one session.

Run as ``python -m tests.memory._conversation_writer BACKEND TARGET PREFIX SESSION TAG
COUNT`` from the repository root. BACKEND is ``sqlite`` (TARGET a file) or ``redis``
(TARGET a URL, PREFIX its key prefix). It prints ``ready`` once the store is open, waits
for a line on stdin so that every writer starts together, then appends ``TAG-0`` ...
``TAG-<COUNT-1>`` one message per append and prints ``done``.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from itertools import pairwise
from pathlib import Path

from chainweave.memory.base import ConversationMemory, StoredMessage
from chainweave.memory.redis_memory import RedisMemory
from chainweave.memory.sqlite_memory import SQLiteMemory
from chainweave.types import Message


def _open(backend: str, target: str, prefix: str) -> ConversationMemory:
    if backend == "sqlite":
        return SQLiteMemory(target, busy_timeout=30.0)
    return RedisMemory(target, prefix=prefix)


async def _main(backend: str, target: str, prefix: str, session: str, tag: str,
                count: int) -> None:
    memory = _open(backend, target, prefix)
    try:
        await memory.history(session, limit=1)  # opens the file or the connection
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        for index in range(count):
            await memory.append(session, [Message.user(f"{tag}-{index}")],
                                metadata={"writer": tag, "index": index})
    finally:
        await memory.aclose()
    print("done", flush=True)


def run_writers(backend: str, target: str, prefix: str, session: str, tags: Sequence[str],
                count: int, *, timeout: float = 60.0) -> None:
    """Run one writer process per tag, started together; fail if any of them fails."""
    root = Path(__file__).resolve().parents[2]
    with ExitStack() as stack:
        processes = [stack.enter_context(subprocess.Popen(
            [sys.executable, "-m", "tests.memory._conversation_writer", backend, target,
             prefix, session, tag, str(count)], cwd=root, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
            for tag in tags]
        try:
            for process in processes:
                assert process.stdout is not None
                assert process.stdout.readline().strip() == "ready", process.communicate()
            for process in processes:
                assert process.stdin is not None
                process.stdin.write("go\n")
                process.stdin.flush()
            for process in processes:
                out, err = process.communicate(timeout=timeout)
                assert (process.returncode, out.strip()) == (0, "done"), err
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()


def check_all_appended(history: list[StoredMessage], tags: Sequence[str], count: int) -> int:
    """Assert every writer's messages are there once, in its own order, seq 1..N.

    Returns:
        How often consecutive messages come from different writers (0 or 1 would mean
        the writers did not actually overlap).
    """
    assert [item.seq for item in history] == list(range(1, len(tags) * count + 1))
    for tag in tags:
        mine = [item for item in history if item.metadata["writer"] == tag]
        assert [item.message.text for item in mine] == [f"{tag}-{i}" for i in range(count)]
        assert [item.metadata["index"] for item in mine] == list(range(count))
    writers = [item.metadata["writer"] for item in history]
    return sum(1 for before, after in pairwise(writers) if before != after)


if __name__ == "__main__":
    backend, target, prefix, session, tag, count = sys.argv[1:7]
    asyncio.run(_main(backend, target, prefix, session, tag, int(count)))
