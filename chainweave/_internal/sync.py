"""The one bridge from synchronous code into chainweave's async core."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from chainweave.errors import SetupError

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a fresh event loop and return its result.

    Raises:
        SetupError: when called from inside a running event loop, where blocking would
            deadlock it; ``await`` the async method there instead.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise SetupError(
        "run_sync() was called inside a running event loop; await the async method instead"
    )
