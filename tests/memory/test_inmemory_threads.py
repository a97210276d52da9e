"""InMemoryMemory shared between threads, each with its own event loop (as run_sync does)."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from chainweave.memory import InMemoryMemory
from chainweave.types import Message

THREADS = 8


@pytest.fixture(autouse=True)
def _switch_often() -> Iterator[None]:
    """Let threads interleave after every few bytecodes, so races show up at once."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def _hammer(work: Callable[[int], Coroutine[Any, Any, None]]) -> list[BaseException]:
    """Run ``work(i)`` on THREADS threads at once, each in its own event loop."""
    errors: list[BaseException] = []
    ready = threading.Barrier(THREADS)

    def run(index: int) -> None:
        ready.wait()
        try:
            asyncio.run(work(index))
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_concurrent_appends_from_threads_lose_nothing() -> None:
    """Appends from many threads all land, each with its own seq, next to reads and clears."""
    memory = InMemoryMemory()
    rounds = 150

    async def work(index: int) -> None:
        for step in range(rounds):
            await memory.append("shared", [Message.user(f"{index}-{step}")])
            await memory.append(f"own-{index}", [Message.user("q"), Message.assistant("a")])
            await memory.history("shared", limit=3)
            await memory.append("scratch", [Message.user("x")])
            await memory.clear("scratch")
            await memory.sessions()

    assert _hammer(work) == []
    shared = asyncio.run(memory.history("shared"))
    assert [item.seq for item in shared] == list(range(1, THREADS * rounds + 1))
    assert len({item.message.text for item in shared}) == THREADS * rounds
    for index in range(THREADS):
        own = asyncio.run(memory.history(f"own-{index}"))
        assert [item.seq for item in own] == list(range(1, 2 * rounds + 1))


def test_evicting_sessions_from_threads_raises_nothing() -> None:
    """Threads that overflow max_sessions get no errors, and the store stays within it."""
    memory = InMemoryMemory(max_sessions=4, max_messages=5)

    async def work(index: int) -> None:
        for step in range(300):
            session = f"s{(index * 7 + step) % 12}"
            await memory.append(session, [Message.user("q"), Message.assistant("a")])
            await memory.history(session, limit=3)
            if step % 10 == 0:
                await memory.sessions()
            if step % 17 == 0:
                await memory.clear(session)
            if step % 23 == 0:
                await memory.delete(session)

    assert _hammer(work) == []
    sessions = asyncio.run(memory.sessions())
    assert len(sessions) <= 4
    for session in sessions:
        seqs = [item.seq for item in asyncio.run(memory.history(session))]
        assert len(seqs) <= 5
        assert seqs == sorted(set(seqs))
