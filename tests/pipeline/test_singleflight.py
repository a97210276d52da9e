"""SingleFlight: concurrent calls with one key share one run of the work."""

from __future__ import annotations

import asyncio

import pytest

from chainweave.pipeline.singleflight import SingleFlight


class Work:
    """Counts its runs and finishes when the test releases it."""

    def __init__(self, result: str = "done", error: Exception | None = None) -> None:
        self.runs = 0
        self.cancelled = 0
        self.release = asyncio.Event()
        self.result, self.error = result, error

    async def __call__(self) -> str:
        self.runs += 1
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if self.error is not None:
            raise self.error
        return self.result


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_concurrent_calls_share_one_run() -> None:
    """A hundred concurrent calls with one key run the work once and all get its result."""
    flight: SingleFlight[str] = SingleFlight()
    work = Work("shared")
    tasks = [asyncio.create_task(flight.do("k", work)) for _ in range(100)]
    await _settle()
    work.release.set()
    assert await asyncio.gather(*tasks) == ["shared"] * 100
    assert work.runs == 1


async def test_different_keys_run_separately() -> None:
    """Calls with different keys each run their own work."""
    flight: SingleFlight[str] = SingleFlight()
    first, second = Work("a"), Work("b")
    tasks = [asyncio.create_task(flight.do("a", first)),
             asyncio.create_task(flight.do("b", second))]
    await _settle()
    first.release.set()
    second.release.set()
    assert await asyncio.gather(*tasks) == ["a", "b"]
    assert (first.runs, second.runs) == (1, 1)


async def test_exception_reaches_every_caller() -> None:
    """When the work fails, every caller gets its exception."""
    flight: SingleFlight[str] = SingleFlight()
    error = RuntimeError("boom")
    work = Work(error=error)
    tasks = [asyncio.create_task(flight.do("k", work)) for _ in range(10)]
    await _settle()
    work.release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results == [error] * 10
    assert work.runs == 1


async def test_key_is_cleared_when_done() -> None:
    """After the work ends (even by failing), the next call runs the work again."""
    flight: SingleFlight[str] = SingleFlight()
    failing = Work(error=RuntimeError("boom"))
    failing.release.set()
    with pytest.raises(RuntimeError):
        await flight.do("k", failing)
    assert "k" not in flight
    assert len(flight) == 0
    succeeding = Work("second")
    succeeding.release.set()
    assert await flight.do("k", succeeding) == "second"
    assert (failing.runs, succeeding.runs) == (1, 1)
    assert len(flight) == 0


async def test_key_is_running_while_work_runs() -> None:
    """While the work runs, its key is in the flight."""
    flight: SingleFlight[str] = SingleFlight()
    work = Work()
    task = asyncio.create_task(flight.do("k", work))
    await _settle()
    assert "k" in flight
    work.release.set()
    await task
    assert "k" not in flight


async def test_cancelled_first_caller_does_not_cancel_the_others() -> None:
    """Cancelling the caller that started the work leaves it running for the rest."""
    flight: SingleFlight[str] = SingleFlight()
    work = Work("kept")
    first = asyncio.create_task(flight.do("k", work))
    await _settle()
    second = asyncio.create_task(flight.do("k", work))
    await _settle()
    first.cancel()
    await _settle()
    work.release.set()
    assert await second == "kept"
    assert first.cancelled()
    assert (work.runs, work.cancelled) == (1, 0)


async def test_work_is_cancelled_when_every_caller_is() -> None:
    """When every caller has been cancelled, the work is cancelled and the key freed."""
    flight: SingleFlight[str] = SingleFlight()
    work = Work()
    tasks = [asyncio.create_task(flight.do("k", work)) for _ in range(3)]
    await _settle()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await _settle()
    assert work.cancelled == 1
    assert "k" not in flight


async def test_caller_after_a_failure_does_not_get_the_old_error() -> None:
    """A call made right after the work failed starts afresh."""
    flight: SingleFlight[str] = SingleFlight()
    failing = Work(error=RuntimeError("old"))
    first = asyncio.create_task(flight.do("k", failing))
    await _settle()
    failing.release.set()
    with pytest.raises(RuntimeError):
        await first
    fresh = Work("new")
    fresh.release.set()
    assert await flight.do("k", fresh) == "new"
