"""N chat calls through the OpenAI adapter vs. the same calls with a bare httpx client.

A stub server speaking OpenAI's wire format runs in a separate process on 127.0.0.1.
Both sides use identically configured ``httpx.AsyncClient``s and run the same number
of calls at the same concurrency, in alternating rounds; the bare side builds the JSON
body and parses the reply's text, the adapter side builds a ``ChatRequest`` and gets a
``ChatResponse``. Prints JSON, per transport (httpx's own pool, and aiohttp's with
the ``aiohttp`` extra): per-side medians of wall time and client CPU time per call, and
the adapter/bare ratios. Target: wall ratio <= 1.15 at 200 concurrent.

Usage: python benchmarks/bench_openai_adapter.py [--calls N] [--concurrency C]
           [--rounds R] [--transport httpx|aiohttp ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from chainweave._internal.http import Transport
from chainweave.providers import make_client
from chainweave.providers.openai import OpenAIProvider
from chainweave.types import ChatRequest, Message

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-bench-0000000000000000000000"


async def run_calls(call: Callable[[int], Awaitable[str]], calls: int,
                    concurrency: int) -> tuple[float, float]:
    """Run ``calls`` calls with at most ``concurrency`` in flight; return wall and CPU s."""
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            text = await call(i)
            assert text == "pong", text

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(i) for i in range(calls)))
    return time.perf_counter() - wall, time.process_time() - cpu


def make_side(side: str, url: str,
              transport: Transport) -> tuple[Callable[[int], Awaitable[str]], httpx.AsyncClient]:
    """A fresh client and the call function for one side of the comparison."""
    client = make_client(transport=transport)
    if side == "bare_httpx":
        headers = {"Authorization": f"Bearer {KEY}"}

        async def bare(i: int) -> str:
            body = {"model": "gpt-4o-mini",
                    "messages": [{"role": "user", "content": f"ping {i}"}], "temperature": 0}
            resp = await client.post(f"{url}/v1/chat/completions", json=body, headers=headers)
            resp.raise_for_status()
            return str(resp.json()["choices"][0]["message"]["content"])

        return bare, client
    provider = OpenAIProvider(api_key=KEY, base_url=f"{url}/v1", client=client)

    async def adapter(i: int) -> str:
        request = ChatRequest(model="gpt-4o-mini", messages=[Message.user(f"ping {i}")],
                              temperature=0)
        return (await provider.chat(request)).content

    return adapter, client


async def bench(url: str, calls: int, concurrency: int, rounds: int,
                transport: Transport) -> dict[str, object]:
    """Alternate bare and adapter rounds, each on a fresh client warmed to full pool size."""
    sides = ("bare_httpx", "adapter")
    results: dict[str, list[tuple[float, float]]] = {side: [] for side in sides}
    for r in range(rounds):
        for side in sides if r % 2 == 0 else reversed(sides):
            call, client = make_side(side, url, transport)
            await run_calls(call, concurrency, concurrency)  # open the pool's connections
            results[side].append(await run_calls(call, calls, concurrency))
            await client.aclose()

    def per_call_us(side: str, index: int) -> float:
        return statistics.median(r[index] for r in results[side]) / calls * 1e6

    figures: dict[str, object] = {"transport": transport}
    for side in sides:
        figures[f"{side}_wall_us_per_call"] = round(per_call_us(side, 0), 1)
        figures[f"{side}_cpu_us_per_call"] = round(per_call_us(side, 1), 1)
    figures["wall_ratio"] = round(per_call_us("adapter", 0) / per_call_us("bare_httpx", 0), 3)
    figures["cpu_ratio"] = round(per_call_us("adapter", 1) / per_call_us("bare_httpx", 1), 3)
    return figures


def main() -> None:
    """Start the stub server process, run the benchmark, print JSON figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--transport", action="append", choices=["httpx", "aiohttp"],
                        help="repeatable; default: both")
    args = parser.parse_args()
    transports: list[Transport] = args.transport or ["httpx", "aiohttp"]
    server = subprocess.Popen([sys.executable, "-m", "tests.stubserver"], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        httpx.get(f"{url}/health", timeout=5)  # the server is up once it answers anything
        results = [asyncio.run(bench(url, args.calls, args.concurrency, args.rounds, t))
                   for t in transports]
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(json.dumps({"benchmark": "openai_adapter_vs_bare_httpx", "calls": args.calls,
                      "concurrency": args.concurrency, "rounds": args.rounds,
                      "target_wall_ratio": 1.15, "results": results}, indent=2))


if __name__ == "__main__":
    main()
