"""Share one execution among concurrent calls with the same key.

When a hundred identical requests miss the cache at once, one of them should reach the
provider and the other ninety-nine should wait for its answer::

    flight: SingleFlight[ChatResponse] = SingleFlight()
    response = await flight.do(key, lambda: call_next(request))

The work runs in its own task, so a caller that is cancelled stops waiting without
cancelling the work for the others; the work is cancelled only when every caller has
gone. Its result, or its exception, goes to every caller. The key is free again as soon
as the work ends, so a failure is not remembered: the next call tries afresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["SingleFlight"]

T = TypeVar("T")


class _Flight(Generic[T]):
    __slots__ = ("task", "waiters")

    def __init__(self, task: asyncio.Task[T]) -> None:
        self.task = task
        self.waiters = 0


class SingleFlight(Generic[T]):
    """Concurrent :meth:`do` calls with one key share one run of the work.

    A SingleFlight belongs to one event loop at a time; a call from another loop (the
    sync bridge on another thread) runs its work on its own rather than waiting across
    loops.
    """

    def __init__(self) -> None:
        self._flights: dict[Hashable, _Flight[T]] = {}

    def __len__(self) -> int:
        """How many keys have work running."""
        return len(self._flights)

    def __contains__(self, key: Hashable) -> bool:
        """Whether work for ``key`` is running."""
        return key in self._flights

    def __repr__(self) -> str:
        return f"SingleFlight(running={len(self._flights)})"

    async def do(self, key: Hashable, fn: Callable[[], Awaitable[T]]) -> T:
        """Return ``await fn()``, sharing one run with concurrent calls for ``key``.

        The first caller's ``fn`` runs; later callers' ``fn`` are not called while it
        runs. Every caller gets its result or has its exception raised.
        """
        flight = self._flights.get(key)
        if flight is None:
            flight = self._start(key, fn)
        elif flight.task.get_loop() is not asyncio.get_running_loop():
            return await fn()
        flight.waiters += 1
        try:
            return await asyncio.shield(flight.task)
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.task.done():
                # Every caller was cancelled: nobody is left to want the result.
                self._forget(key, flight)
                flight.task.cancel()

    def _start(self, key: Hashable, fn: Callable[[], Awaitable[T]]) -> _Flight[T]:
        async def run() -> T:
            try:
                return await fn()
            finally:
                # Free the key in the same step the work ends: a caller arriving after
                # a failure must start afresh, not receive the old exception.
                self._forget(key, flight)

        flight: _Flight[T] = _Flight(asyncio.get_running_loop().create_task(run()))
        flight.task.add_done_callback(lambda task: self._finished(key, flight))
        self._flights[key] = flight
        return flight

    def _finished(self, key: Hashable, flight: _Flight[T]) -> None:
        # Also covers a task cancelled before it started, whose finally never ran.
        self._forget(key, flight)
        if not flight.task.cancelled():
            flight.task.exception()  # retrieved: every waiter may have gone

    def _forget(self, key: Hashable, flight: _Flight[T]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
