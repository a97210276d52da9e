"""TransformChain and ``@chain``: plain functions as chains, blocking ones in a thread."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from typing import Any

import pytest

from chainweave.chains import TransformChain, chain
from chainweave.errors import ChainInputError, InputValidationError


async def test_sync_and_async_functions() -> None:
    """A TransformChain runs sync and async functions alike."""
    async def shout(d: dict[str, Any]) -> dict[str, Any]:
        return {"out": d["text"].upper()}

    sync = TransformChain("sync", lambda d: {"out": d["text"][::-1]}, input_keys=["text"],
                          output_keys=["out"])
    asynchronous = TransformChain("async", shout, input_keys=["text"], output_keys=["out"])
    assert await sync.run("abc") == {"out": "cba"}
    assert await asynchronous.run("abc") == {"out": "ABC"}


async def test_blocking_function_runs_off_the_event_loop() -> None:
    """A blocking function runs in a worker thread, so the loop keeps serving others."""
    loop_thread = threading.get_ident()
    seen: list[int] = []

    def slow(d: dict[str, Any]) -> dict[str, Any]:
        seen.append(threading.get_ident())
        time.sleep(0.2)
        return {"done": True}

    blocking = TransformChain("slow", slow, output_keys=["done"], blocking=True)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        for _ in range(10):
            await asyncio.sleep(0.01)
            ticks += 1

    await asyncio.gather(blocking.run({}), ticker())
    assert seen
    assert seen[0] != loop_thread
    assert ticks == 10


def test_blocking_async_function_is_refused() -> None:
    """``blocking=True`` is for sync functions; an async one is a construction error."""
    async def fn(d: dict[str, Any]) -> dict[str, Any]:
        return d

    with pytest.raises(InputValidationError, match="blocking"):
        TransformChain("t", fn, blocking=True)


def test_non_callable_is_refused() -> None:
    """The function must be callable."""
    with pytest.raises(InputValidationError, match="callable"):
        TransformChain("t", "not a function")  # type: ignore[arg-type]


async def test_async_partial_and_callable_object_are_awaited() -> None:
    """Async partials and objects with an async ``__call__`` are recognised as async."""
    async def add(n: int, d: dict[str, Any]) -> dict[str, Any]:
        return {"out": d["x"] + n}

    class Adder:
        async def __call__(self, d: dict[str, Any]) -> dict[str, Any]:
            return {"out": d["x"] + 100}

    part = TransformChain("p", functools.partial(add, 5), input_keys=["x"], output_keys=["out"])
    obj = TransformChain("o", Adder(), input_keys=["x"], output_keys=["out"])
    assert await part.run({"x": 1}) == {"out": 6}
    assert await obj.run({"x": 1}) == {"out": 101}


async def test_decorator_maps_parameters_to_inputs() -> None:
    """``@chain`` makes required parameters the inputs and wraps the result."""
    @chain
    def word_count(text: str, minimum: int = 0) -> int:
        """Count words."""
        return max(minimum, len(text.split()))

    assert word_count.name == "word_count"
    assert word_count.input_keys == ("text",)
    assert word_count.output_keys == ("word_count",)
    assert word_count.description == "Count words."
    assert await word_count.run("a b c") == {"word_count": 3}
    assert await word_count.run({"text": "a", "minimum": 5}) == {"word_count": 5}


async def test_decorator_options() -> None:
    """Name, output key, several output keys, ``**kwargs`` and async all work."""
    @chain(name="stats", output_keys=["length", "upper"])
    async def text_stats(text: str) -> dict[str, Any]:
        return {"length": len(text), "upper": text.upper()}

    @chain(output_key="keys")
    def everything(**inputs: Any) -> list[str]:
        return sorted(inputs)

    assert text_stats.name == "stats"
    assert await text_stats.run("ab") == {"length": 2, "upper": "AB"}
    assert await everything.run({"b": 1, "a": 2}) == {"keys": ["a", "b"]}


async def test_decorated_missing_input_is_named() -> None:
    """A decorated chain's missing parameter is a ChainInputError naming it."""
    @chain
    def greet(name: str, greeting: str) -> str:
        return f"{greeting}, {name}"

    with pytest.raises(ChainInputError) as caught:
        await greet.run({"name": "Ada"})
    assert caught.value.missing == ["greeting"]


def test_decorator_refuses_positional_only_and_conflicting_options() -> None:
    """Positional-only parameters and output_key with output_keys are refused."""
    def positional(x: int, /) -> int:
        return x

    with pytest.raises(InputValidationError, match="positional-only"):
        chain(positional)
    with pytest.raises(InputValidationError, match="not both"):
        chain(output_key="a", output_keys=["b"])


async def test_decorated_blocking_function_runs_in_a_thread() -> None:
    """``@chain(blocking=True)`` runs the function off the loop thread."""
    loop_thread = threading.get_ident()

    @chain(blocking=True)
    def where() -> int:
        return threading.get_ident()

    assert (await where.run({}))["where"] != loop_thread


async def test_sync_function_returning_a_coroutine_is_awaited() -> None:
    """A sync callable that returns a coroutine (a lambda over an async function) works."""
    async def fetch(d: dict[str, Any]) -> dict[str, Any]:
        return {"out": d["x"] * 2}

    assert await TransformChain("t", lambda d: fetch(d), input_keys=["x"],
                                output_keys=["out"]).run({"x": 2}) == {"out": 4}
