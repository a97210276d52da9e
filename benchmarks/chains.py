"""Chain overhead, side by side with LangChain LCEL and with plain Python.

Two scenarios, each measured for chainweave, LCEL (``langchain-core``) and a plain
baseline in the same process:

* ``chain3``: a prompt template, then a mock chat model that answers at once with a
  fixed reply, then a text parser. Figures are per invocation, sync and async;
  ``overhead_us`` is the framework's time minus the plain baseline's (``str.format``,
  a function call, ``str.strip``). Target: chainweave's overhead at most a tenth of
  LCEL's.
* ``concurrent``: 1,000 chain3 runs at once, with the mock model waiting 10 ms per
  call; wall time of the whole batch. Target: within 2x of the plain
  ``asyncio.gather`` baseline.

Each framework's mock is the cheapest model it allows: for chainweave a ``ChatModel``
returning a prebuilt response, for LCEL a ``BaseChatModel`` subclass returning a
prebuilt result. Timings alternate between the three in rounds; figures are medians
over the rounds. LCEL is not a dependency of chainweave: ``make bench-chains`` installs
``langchain-core`` in its own virtual environment (``benchmarks/.venv``) and runs this
script there. Without it, the LCEL figures are ``null``.

Usage: python benchmarks/chains.py [--calls N] [--rounds R] [--concurrent N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from chainweave.chains import SimpleChain
from chainweave.types import ChatRequest, ChatResponse, StreamChunk, Usage

REPLY = "  Paris is the capital of France.  "
TOPIC = {"topic": "the capital of France"}
TEMPLATE = "Tell me briefly about {{ topic }}."


class InstantModel:
    """chainweave's cheapest mock: a ``ChatModel`` answering with a prebuilt response."""

    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        self.response = ChatResponse(id="r", model="mock", provider="mock", content=REPLY,
                                     usage=Usage(prompt_tokens=9, completion_tokens=7))

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """The prebuilt response, after ``latency`` seconds."""
        if self.latency:
            await asyncio.sleep(self.latency)
        return self.response

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        """The reply as one chunk."""
        yield StreamChunk(delta=REPLY, finish_reason="stop")


def chainweave_chain(latency: float = 0.0) -> SimpleChain:
    """chain3 in chainweave: template, model, text parser."""
    return SimpleChain("chain3", llm=InstantModel(latency), prompt=TEMPLATE, parser="text")


def lcel_chain(latency: float = 0.0) -> Any:
    """chain3 in LCEL, or None when langchain-core is not installed."""
    try:
        from langchain_core.language_models import BaseChatModel
        from langchain_core.messages import AIMessage
        from langchain_core.output_parsers import StrOutputParser
        from langchain_core.outputs import ChatGeneration, ChatResult
        from langchain_core.prompts import ChatPromptTemplate
    except ImportError:
        return None

    result = ChatResult(generations=[ChatGeneration(message=AIMessage(content=REPLY))])

    class InstantChatModel(BaseChatModel):
        """LCEL's cheapest mock: a chat model returning a prebuilt result."""

        @property
        def _llm_type(self) -> str:
            return "instant"

        def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None,
                      **kwargs: Any) -> ChatResult:
            return result

        async def _agenerate(self, messages: Any, stop: Any = None, run_manager: Any = None,
                             **kwargs: Any) -> ChatResult:
            if latency:
                await asyncio.sleep(latency)
            return result

    prompt = ChatPromptTemplate.from_messages([("user", "Tell me briefly about {topic}.")])
    return prompt | InstantChatModel() | StrOutputParser()


def plain_sync(inputs: dict[str, str]) -> str:
    """chain3 in plain Python."""
    prompt = "Tell me briefly about {topic}.".format(**inputs)
    return _model(prompt).strip()


def _model(prompt: str) -> str:
    return REPLY


async def plain_async(inputs: dict[str, str], latency: float = 0.0) -> str:
    """chain3 in plain async Python."""
    prompt = "Tell me briefly about {topic}.".format(**inputs)
    return (await _amodel(prompt, latency)).strip()


async def _amodel(prompt: str, latency: float) -> str:
    if latency:
        await asyncio.sleep(latency)
    return REPLY


def time_sync(fn: Callable[[], object], calls: int) -> float:
    """Mean µs per call of ``fn`` over ``calls`` calls."""
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls * 1e6


async def time_async(fn: Callable[[], Awaitable[object]], calls: int) -> float:
    """Mean µs per call of awaiting ``fn()`` ``calls`` times in a row."""
    started = time.perf_counter()
    for _ in range(calls):
        await fn()
    return (time.perf_counter() - started) / calls * 1e6


def _median(samples: list[float]) -> float:
    return round(statistics.median(samples), 2)


def bench_sync(calls: int, rounds: int) -> dict[str, Any]:
    """chain3 invoked synchronously."""
    ours, theirs = chainweave_chain(), lcel_chain()
    assert ours.run_sync(TOPIC)["result"] == REPLY  # same work: the parser keeps the text
    paths: dict[str, Callable[[], object] | None] = {
        "plain": lambda: plain_sync(TOPIC),
        "chainweave": lambda: ours.run_sync(TOPIC),
        "lcel": (lambda: theirs.invoke(TOPIC)) if theirs is not None else None,
    }
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for fn in paths.values():
        if fn is not None:
            time_sync(fn, calls // 10)  # warm up
    for _ in range(rounds):
        for name, fn in paths.items():
            if fn is not None:
                samples[name].append(time_sync(fn, calls))
    return _summary(samples)


async def bench_async(calls: int, rounds: int) -> dict[str, Any]:
    """chain3 awaited."""
    ours, theirs = chainweave_chain(), lcel_chain()
    paths: dict[str, Callable[[], Awaitable[object]] | None] = {
        "plain": lambda: plain_async(TOPIC),
        "chainweave": lambda: ours.run(TOPIC),
        "lcel": (lambda: theirs.ainvoke(TOPIC)) if theirs is not None else None,
    }
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for fn in paths.values():
        if fn is not None:
            await time_async(fn, calls // 10)
    for _ in range(rounds):
        for name, fn in paths.items():
            if fn is not None:
                samples[name].append(await time_async(fn, calls))
    return _summary(samples)


def _summary(samples: dict[str, list[float]]) -> dict[str, Any]:
    plain = statistics.median(samples["plain"])
    out: dict[str, Any] = {"plain_us": _median(samples["plain"])}
    for name in ("chainweave", "lcel"):
        if samples[name]:
            median = statistics.median(samples[name])
            out[f"{name}_us"] = round(median, 2)
            out[f"{name}_overhead_us"] = round(median - plain, 2)
        else:
            out[f"{name}_us"] = out[f"{name}_overhead_us"] = None
    if out["lcel_overhead_us"]:
        out["overhead_ratio_chainweave_to_lcel"] = round(
            out["chainweave_overhead_us"] / out["lcel_overhead_us"], 3)
    return out


async def bench_concurrent(runs: int, rounds: int, latency: float = 0.010) -> dict[str, Any]:
    """``runs`` chain3 runs at once, each model call waiting ``latency`` seconds."""
    ours, theirs = chainweave_chain(latency), lcel_chain(latency)
    inputs = [{"topic": f"topic {i}"} for i in range(runs)]

    async def plain() -> object:
        return await asyncio.gather(*(plain_async(item, latency) for item in inputs))

    paths: dict[str, Callable[[], Awaitable[object]] | None] = {
        "plain": plain,
        "chainweave": lambda: ours.batch(inputs),
        "lcel": (lambda: theirs.abatch(inputs)) if theirs is not None else None,
    }
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(rounds):
        for name, fn in paths.items():
            if fn is not None:
                started = time.perf_counter()
                results = await fn()
                samples[name].append((time.perf_counter() - started) * 1000.0)
                assert len(results) == runs  # type: ignore[arg-type]
    plain_ms = statistics.median(samples["plain"])
    out: dict[str, Any] = {"runs": runs, "latency_ms": latency * 1000,
                           "plain_ms": round(plain_ms, 1)}
    for name in ("chainweave", "lcel"):
        if samples[name]:
            median = statistics.median(samples[name])
            out[f"{name}_ms"] = round(median, 1)
            out[f"{name}_x_plain"] = round(median / plain_ms, 2)
        else:
            out[f"{name}_ms"] = out[f"{name}_x_plain"] = None
    return out


def main() -> None:
    """Print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--concurrent", type=int, default=1000)
    args = parser.parse_args()
    lcel_version = None
    if lcel_chain() is not None:
        import langchain_core

        lcel_version = langchain_core.__version__
    figures = {
        "benchmark": "chains",
        "python": sys.version.split()[0],
        "langchain_core": lcel_version,
        "chain3_sync": bench_sync(args.calls, args.rounds),
        "chain3_async": asyncio.run(bench_async(args.calls, args.rounds)),
        "concurrent": asyncio.run(bench_concurrent(args.concurrent, args.rounds)),
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
