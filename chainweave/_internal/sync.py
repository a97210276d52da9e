"""The one bridge from synchronous code into chainweave's async core."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import Coroutine
from typing import Any, TypeVar

from chainweave.errors import SetupError

T = TypeVar("T")

_local = threading.local()


def _runner() -> asyncio.Runner:
    """This thread's event loop runner, kept for the life of the thread.

    One loop per thread, not one per call: HTTP clients keep their pooled connections
    on the loop that opened them, so a fresh loop per call would strand them.
    """
    runner: asyncio.Runner | None = getattr(_local, "runner", None)
    if runner is None:
        runner = asyncio.Runner()
        _local.runner = runner
        # Closed when the thread is gone (or at exit for threads still alive), so
        # short-lived worker threads do not each leave a loop and its descriptors.
        weakref.finalize(threading.current_thread(), _close, runner)
    return runner


def _close(runner: asyncio.Runner) -> None:
    """Close a finished thread's runner; from inside another running loop, just its loop."""
    try:
        runner.close()
    except RuntimeError:
        with contextlib.suppress(Exception):
            runner.get_loop().close()


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on this thread's event loop and return its result.

    Raises:
        SetupError: when called from inside a running event loop, where blocking would
            deadlock it; ``await`` the async method there instead.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        coro.close()
        raise SetupError(
            "run_sync() was called inside a running event loop; await the async method instead"
        )
    # ``Runner.run`` installs and removes a SIGINT handler on every call (about 15 µs);
    # driving the runner's loop directly keeps the bridge at a few microseconds. On
    # Ctrl-C the task is cancelled and allowed to clean up before the interrupt goes on.
    loop = _runner().get_loop()
    task = loop.create_task(coro)
    try:
        return loop.run_until_complete(task)
    except BaseException:
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                loop.run_until_complete(task)
        raise
