"""The one sync bridge: results, errors, and refusal inside a running loop."""

from __future__ import annotations

import asyncio
import gc
import inspect
import os
import threading
import warnings

import pytest

from chainweave._internal.sync import run_sync
from chainweave.errors import SetupError


async def answer(value: int = 42) -> int:
    """Return ``value`` after giving the loop a turn."""
    await asyncio.sleep(0)
    return value


class Boom(Exception):
    """A distinctive error to propagate."""


async def explode() -> None:
    """Raise Boom after giving the loop a turn."""
    await asyncio.sleep(0)
    raise Boom("kaboom")


def test_returns_the_result() -> None:
    """``run_sync`` returns what the coroutine returns."""
    assert run_sync(answer(7)) == 7


def test_propagates_the_exception() -> None:
    """An exception from the coroutine reaches the caller unchanged."""
    with pytest.raises(Boom, match="kaboom"):
        run_sync(explode())


async def _current_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def test_calls_on_one_thread_share_a_living_loop() -> None:
    """Calls on one thread reuse one open loop, so pooled connections stay usable."""
    first, second = run_sync(_current_loop()), run_sync(_current_loop())
    assert first is second
    assert not first.is_closed()


def test_each_thread_has_its_own_loop() -> None:
    """A call from another thread runs on that thread's loop, not this one's."""
    here = run_sync(_current_loop())
    there: list[asyncio.AbstractEventLoop] = []
    worker = threading.Thread(target=lambda: there.append(run_sync(_current_loop())))
    worker.start()
    worker.join()
    assert there[0] is not here


async def test_refuses_inside_a_running_loop() -> None:
    """Called from async code, ``run_sync`` raises SetupError saying to await instead."""
    with pytest.raises(SetupError, match="await"):
        run_sync(answer())


async def test_refused_coroutine_is_closed() -> None:
    """The refused coroutine is closed, not left to warn that it was never awaited."""
    coro = answer()
    with pytest.raises(SetupError):
        run_sync(coro)
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


async def test_refusal_emits_no_never_awaited_warning() -> None:
    """No "coroutine was never awaited" RuntimeWarning follows a refusal."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(SetupError):
            run_sync(answer())
        gc.collect()
    assert [w for w in caught if "never awaited" in str(w.message)] == []


async def test_works_from_a_worker_thread_of_a_running_loop() -> None:
    """A thread with no loop of its own may use the bridge while the main loop runs."""
    assert await asyncio.to_thread(run_sync, answer(5)) == 5


def test_interrupt_cancels_the_task_and_lets_it_clean_up() -> None:
    """Ctrl-C during a call cancels the coroutine, runs its cleanup, then propagates."""
    cleaned: list[str] = []

    def interrupt() -> None:
        raise KeyboardInterrupt

    async def long_call() -> None:
        asyncio.get_running_loop().call_soon(interrupt)
        try:
            await asyncio.sleep(10)
        finally:
            cleaned.append("closed")

    with pytest.raises(KeyboardInterrupt):
        run_sync(long_call())
    assert cleaned == ["closed"]
    assert run_sync(answer(3)) == 3


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_finished_threads_do_not_leak_loops() -> None:
    """Short-lived threads calling run_sync leave no event loops or descriptors behind."""
    def call_once() -> None:
        assert run_sync(answer(1)) == 1

    def batch(count: int) -> None:
        threads = [threading.Thread(target=call_once) for _ in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        gc.collect()

    batch(5)
    before = _open_descriptors()
    batch(60)
    assert _open_descriptors() - before < 10
