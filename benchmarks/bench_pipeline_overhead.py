"""Overhead of the full default pipeline on a 1 KB prompt, over the bare model.

The model answers at once with a prebuilt response, so everything measured is the
pipeline's own work. The "full" stage list is what the settings build with every stage
switched on: audit (JSON lines to a file), validation, security (input and output),
idempotency, cache, rate limit (limits far above the load). Three paths:

- ``miss``: every request is new (its own request_id and prompt), so idempotency and
  the cache store a result: the most work the pipeline does;
- ``hit``: the same request (no request_id) again and again: answered by the cache;
- ``defaults``: the stage list ``Settings()`` builds with nothing configured (validation,
  security, idempotency), with a fresh request each time.

Requests run one after another in alternating batches (bare, then pipeline); figures
are medians over the batches of per-request time, and "added" is pipeline minus bare.
Target: at most 150 µs median added per request.

With ``--stages``, it also measures each stage of the full list alone (a pipeline of that
one stage, fresh requests as in ``miss``) the same way, to show where the time goes.

Usage: python benchmarks/bench_pipeline_overhead.py [--calls N] [--rounds R] [--stages]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from chainweave.config import Settings
from chainweave.pipeline import Pipeline, default_stages
from chainweave.types import ChatRequest, ChatResponse, Message, StreamChunk, Usage

_WORDS = ("the quarterly report shows revenue growth in every region while costs held "
          "steady; please summarise the main drivers and risks for the board in plain "
          "language, with numbers where they help. ")
PROMPT = (_WORDS * (1024 // len(_WORDS) + 1))[:1024]
REPLY = ChatResponse(id="r", model="gpt-4o-mini", provider="bare",
                     content="Revenue grew in every region; costs held steady. " * 4,
                     usage=Usage(prompt_tokens=256, completion_tokens=40))


class Bare:
    """A model that answers at once with the same response."""

    async def chat(self, request: ChatRequest) -> ChatResponse:
        return REPLY

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        yield StreamChunk(delta=REPLY.content, finish_reason="stop", usage=REPLY.usage)


def _settings(audit_path: Path, *, full: bool) -> Settings:
    if not full:
        return Settings()
    return Settings.model_validate({
        "security": {"audit_enabled": True, "audit_path": str(audit_path)},
        "cache": {"enabled": True, "max_size": 100_000},
        "idempotency": {"max_size": 100_000},
        "rate_limit": {"requests_per_minute": 1e9, "tokens_per_minute": 1e12},
    })


def _requests(count: int, *, fresh: bool) -> list[ChatRequest]:
    if not fresh:
        same = ChatRequest(model="gpt-4o-mini", temperature=0, messages=[Message.user(PROMPT)])
        return [same] * count
    return [ChatRequest(model="gpt-4o-mini", temperature=0, request_id=f"req-{i}-{time.time_ns()}",
                        messages=[Message.user(f"{i} {PROMPT}"[:1024])]) for i in range(count)]


async def per_call_us(call: Callable[[ChatRequest], object], requests: list[ChatRequest]) -> float:
    """Mean microseconds per request over one batch of sequential requests."""
    started = time.perf_counter()
    for request in requests:
        await call(request)  # type: ignore[misc]
    return (time.perf_counter() - started) / len(requests) * 1e6


async def measure(bare: Bare, pipeline: Pipeline, calls: int, rounds: int, *,
                  fresh: bool) -> dict[str, float]:
    """Alternate bare and pipeline batches; medians and the difference."""
    await per_call_us(pipeline.chat, _requests(calls, fresh=fresh))  # warm up
    bare_us, piped_us = [], []
    for _ in range(rounds):
        batch = _requests(calls, fresh=fresh)
        bare_us.append(await per_call_us(bare.chat, batch))
        piped_us.append(await per_call_us(pipeline.chat, batch))
    await pipeline.aclose()
    b, p = statistics.median(bare_us), statistics.median(piped_us)
    return {"bare_us_per_call": round(b, 2), "pipeline_us_per_call": round(p, 2),
            "added_us_per_call": round(p - b, 2)}


async def bench(path: str, calls: int, rounds: int, audit: Path) -> dict[str, object]:
    """The figures for one path."""
    bare = Bare()
    pipeline = Pipeline.from_settings(bare, _settings(audit, full=path != "defaults"))
    figures = await measure(bare, pipeline, calls, rounds, fresh=path != "hit")
    return {"path": path, "stages": [s.name for s in pipeline.stages], **figures}


async def bench_stages(calls: int, rounds: int, audit: Path) -> list[dict[str, object]]:
    """The figures for each stage of the full list alone, on fresh requests."""
    results: list[dict[str, object]] = []
    for stage in default_stages(_settings(audit, full=True)):
        bare = Bare()
        figures = await measure(bare, Pipeline(bare, [stage]), calls, rounds, fresh=True)
        results.append({"stage": stage.name, **figures})
    return results


def main() -> None:
    """Print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--stages", action="store_true",
                        help="also measure each stage of the full list alone")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        audit = Path(folder) / "audit.jsonl"
        results = [asyncio.run(bench(path, args.calls, args.rounds, audit))
                   for path in ("miss", "hit", "defaults")]
        stages = asyncio.run(bench_stages(args.calls, args.rounds, audit)) if args.stages \
            else None
    report: dict[str, object] = {
        "benchmark": "pipeline_overhead_1kb_prompt", "prompt_chars": len(PROMPT),
        "calls_per_batch": args.calls, "rounds": args.rounds, "target_added_us": 150,
        "results": results}
    if stages is not None:
        report["stages_alone"] = stages
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
