"""Routing overhead of ProviderManager: the manager over MockProvider deployments against
the same MockProvider called directly, at 1, 3 and 50 deployments.

Calls are awaited one after another (the overhead is per call, not contention), in
alternating batches; the figures are medians of per-call time over the batches, and
the added time is manager minus direct. Target: under 20 µs median added per call.

Usage: python benchmarks/bench_manager_overhead.py [--calls N] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable

from chainweave.providers.manager import ProviderManager
from chainweave.testing import MockProvider
from chainweave.types import ChatRequest, ChatResponse, Message

REQUEST = ChatRequest(model="gpt-4o-mini", messages=[Message.user("ping")])


async def per_call_us(call: Callable[[ChatRequest], Awaitable[ChatResponse]],
                      calls: int) -> float:
    """Mean microseconds per call over one batch of sequential calls."""
    started = time.perf_counter()
    for _ in range(calls):
        await call(REQUEST)
    return (time.perf_counter() - started) / calls * 1e6


async def bench(deployments: int, calls: int, rounds: int) -> dict[str, float | int]:
    """Alternate direct and managed batches; return medians and the difference."""
    direct = MockProvider(["pong"])
    manager = ProviderManager()
    for i in range(deployments):
        manager.register(f"d{i}", MockProvider(["pong"]), ["gpt-4o-mini"])
    await per_call_us(direct.chat, calls)  # warm up both paths
    await per_call_us(manager.chat, calls)
    direct_us, managed_us = [], []
    for _ in range(rounds):
        direct_us.append(await per_call_us(direct.chat, calls))
        managed_us.append(await per_call_us(manager.chat, calls))
    d, m = statistics.median(direct_us), statistics.median(managed_us)
    return {"deployments": deployments, "direct_us_per_call": round(d, 2),
            "manager_us_per_call": round(m, 2), "added_us_per_call": round(m - d, 2)}


def main() -> None:
    """Print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    results = [asyncio.run(bench(n, args.calls, args.rounds)) for n in (1, 3, 50)]
    print(json.dumps({"benchmark": "provider_manager_routing_overhead",
                      "calls_per_batch": args.calls, "rounds": args.rounds,
                      "target_added_us": 20, "results": results}, indent=2))


if __name__ == "__main__":
    main()
