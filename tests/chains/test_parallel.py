"""ParallelChain: concurrent branches under fail_fast, collect and quorum policies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from chainweave.chains.base import Chain
from chainweave.chains.context import RunConfig
from chainweave.chains.events import ChainEnd, ChainStart, ErrorEvent, TokenEvent
from chainweave.chains.parallel import ParallelChain, Policy, Quorum, Verdict, quorum, verdict
from chainweave.chains.simple import SimpleChain
from chainweave.chains.transform import TransformChain, chain
from chainweave.errors import (
    ChainTimeoutError,
    ExecutionError,
    InputValidationError,
    QuorumError,
)
from chainweave.testing import MockProvider, MockReply
from chainweave.types import Usage

LONG = 10.0  # a straggler's latency: a run that waits for it would take far too long


class Probe:
    """Records what happened to a slow branch: started, cancelled, or finished."""

    def __init__(self) -> None:
        self.started = False
        self.cancelled = False
        self.finished = False


def slow(name: str, probe: Probe, seconds: float = LONG) -> TransformChain:
    """A branch that sleeps ``seconds`` and records whether it was cancelled."""

    async def run(inputs: dict[str, Any]) -> dict[str, Any]:
        probe.started = True
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            probe.cancelled = True
            raise
        probe.finished = True
        return {"value": name}

    return TransformChain(name, run, output_keys=["value"])


def quick(name: str, value: Any = None, delay: float = 0.0) -> TransformChain:
    """A branch that returns ``{"value": value}`` after ``delay`` seconds."""

    async def run(inputs: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(delay)
        return {"value": name if value is None else value}

    return TransformChain(name, run, output_keys=["value"])


def failing(name: str, error: Exception, delay: float = 0.0) -> TransformChain:
    """A branch that raises ``error`` after ``delay`` seconds."""

    async def run(inputs: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(delay)
        raise error

    return TransformChain(name, run, output_keys=["value"])


async def timed(make: Callable[[], Awaitable[Any]]) -> tuple[Any, float]:
    """The awaited result of ``make()`` and how many seconds it took."""
    started = time.perf_counter()
    result = await make()
    return result, time.perf_counter() - started


async def test_outputs_hold_each_branch_under_its_name() -> None:
    """Every branch's outputs come back under the branch's name."""

    @chain
    def upper(text: str) -> str:
        return text.upper()

    @chain
    async def length(text: str) -> int:
        return len(text)

    fan = ParallelChain("fan", {"u": upper, "n": length})
    assert await fan.run({"text": "abc"}) == {"u": {"upper": "ABC"}, "n": {"length": 3}}


def test_keys_are_union_of_branch_inputs_and_branch_names() -> None:
    """Composition relies on input_keys (union) and output_keys (branch names)."""
    a = TransformChain("a", lambda _: {}, input_keys=["x", "y"])
    b = TransformChain("b", lambda _: {}, input_keys=["y", "w"])
    assert ParallelChain("p", {"a": a, "b": b}).input_keys == ("w", "x", "y")
    assert ParallelChain("p", {"a": a, "b": b}).output_keys == ("a", "b")
    assert ParallelChain("p", {"a": a, "b": b}, policy="collect",
                         errors_key="failures").output_keys == ("a", "b", "failures")


async def test_branches_run_concurrently() -> None:
    """Branches overlap in time: total time is about the slowest branch, not the sum."""
    fan = ParallelChain("fan", {f"b{i}": quick(f"b{i}", delay=0.1) for i in range(5)})
    outputs, elapsed = await timed(lambda: fan.run({}))
    assert len(outputs) == 5
    assert elapsed < 0.3


async def test_fail_fast_cancels_siblings_and_raises_first_error_unchanged() -> None:
    """fail_fast: the first failure stops every sibling promptly and is raised as is."""
    probe = Probe()
    boom = ValueError("boom")
    fan = ParallelChain("fan", {"slow": slow("slow", probe), "bad": failing("bad", boom, 0.01)})
    started = time.perf_counter()
    with pytest.raises(ValueError, match="boom") as info:
        await fan.run({})
    assert time.perf_counter() - started < 1.0
    assert info.value is boom
    assert any("'bad'" in note for note in info.value.__notes__)
    assert (probe.started, probe.cancelled, probe.finished) == (True, True, False)


async def test_fail_fast_keeps_node_of_innermost_chain() -> None:
    """A chainweave error from a branch still names the chain it came from."""
    fan = ParallelChain("fan", {"ok": quick("ok"), "bad": failing("bad", ExecutionError("x"))})
    with pytest.raises(ExecutionError) as info:
        await fan.run({})
    assert info.value.node == "bad"


async def test_collect_keeps_successes_and_errors() -> None:
    """collect: successes under their names, failures under errors_key, no raise."""
    boom = RuntimeError("boom")
    fan = ParallelChain("fan", {"a": quick("a", delay=0.02), "b": failing("b", boom)},
                        policy="collect")
    run = await fan.invoke({})
    assert run.outputs == {"a": {"value": "a"}, "errors": {"b": boom}}
    assert run.metadata["parallel"]["fan"] == {"succeeded": ["a"], "failed": ["b"],
                                                "cancelled": []}


async def test_collect_errors_key_is_empty_when_nothing_failed() -> None:
    """collect: errors_key is always present, {} when every branch succeeded."""
    fan = ParallelChain("fan", {"a": quick("a"), "b": quick("b")}, policy="collect",
                        errors_key="problems")
    assert await fan.run({}) == {"a": {"value": "a"}, "b": {"value": "b"}, "problems": {}}


async def test_quorum_returns_after_n_successes_and_cancels_stragglers() -> None:
    """quorum(n): done once n branches succeed; the rest are cancelled and stop."""
    probe = Probe()
    branches: dict[str, Chain] = {"a": quick("a"), "b": quick("b", delay=0.01),
                                  "slow": slow("slow", probe)}
    fan = ParallelChain("fan", branches, policy=quorum(2))
    run, elapsed = await timed(lambda: fan.invoke({}))
    assert elapsed < 1.0
    assert run.outputs == {"a": {"value": "a"}, "b": {"value": "b"}, "errors": {}}
    assert (probe.cancelled, probe.finished) == (True, False)
    assert run.metadata["parallel"]["fan"]["cancelled"] == ["slow"]


async def test_quorum_reports_failures_so_far() -> None:
    """quorum(n): a failure that does not sink the quorum is listed under errors_key."""
    boom = RuntimeError("boom")
    fan = ParallelChain("fan", {"bad": failing("bad", boom), "a": quick("a", delay=0.01),
                                "b": quick("b", delay=0.01)}, policy=quorum(2))
    outputs = await fan.run({})
    assert outputs == {"a": {"value": "a"}, "b": {"value": "b"}, "errors": {"bad": boom}}


async def test_quorum_raises_as_soon_as_it_cannot_be_reached() -> None:
    """quorum(n): once too many branches failed, QuorumError is raised and the rest stop."""
    probe = Probe()
    one, two = RuntimeError("one"), RuntimeError("two")
    fan = ParallelChain("fan", {"x": failing("x", one), "y": failing("y", two, 0.01),
                                "slow": slow("slow", probe)}, policy=quorum(2))
    started = time.perf_counter()
    with pytest.raises(QuorumError) as info:
        await fan.run({})
    assert time.perf_counter() - started < 1.0
    error = info.value
    assert error.errors == {"x": one, "y": two}
    assert error.node == "fan"
    assert error.message.startswith("fan: quorum of 2 of 3 branches")
    assert "0 succeeded, 2 failed" in error.message
    assert (probe.cancelled, probe.finished) == (True, False)


async def test_global_timeout_fails_a_slow_branch() -> None:
    """A float timeout applies to every branch; a slow one fails with ChainTimeoutError."""
    probe = Probe()
    fan = ParallelChain("fan", {"fast": quick("fast"), "slow": slow("slow", probe)},
                        timeout=0.05)
    with pytest.raises(ChainTimeoutError) as info:
        await fan.run({})
    assert info.value.details == {"timeout": 0.05, "branch": "slow"}
    assert info.value.retryable
    assert "branch 'slow' of 'fan' timed out after 0.05s" in info.value.message
    assert probe.cancelled


async def test_timeout_mapping_applies_per_branch_under_collect() -> None:
    """A timeout mapping limits only the branches it names; collect keeps the others."""
    fan = ParallelChain("fan", {"patient": quick("patient", delay=0.1),
                                "hasty": slow("hasty", Probe())},
                        policy="collect", timeout={"hasty": 0.03})
    outputs = await fan.run({})
    assert outputs["patient"] == {"value": "patient"}
    assert isinstance(outputs["errors"]["hasty"], ChainTimeoutError)
    assert set(outputs) == {"patient", "errors"}


async def test_run_timeout_cancels_every_branch() -> None:
    """A whole-run timeout stops the running branches instead of leaving them behind."""
    first, second = Probe(), Probe()
    fan = ParallelChain("fan", {"a": slow("a", first), "b": slow("b", second)})
    with pytest.raises(ChainTimeoutError, match="run of chain 'fan'"):
        await fan.run({}, RunConfig(timeout=0.03))
    assert (first.cancelled, second.cancelled) == (True, True)


@pytest.mark.parametrize(("policy", "succeeded", "failed", "expected"), [
    ("fail_fast", 2, 0, "wait"),
    ("fail_fast", 0, 1, "fail"),
    ("fail_fast", 3, 0, "done"),
    ("collect", 1, 1, "wait"),
    ("collect", 1, 2, "done"),
    (Quorum(2), 1, 1, "wait"),
    (Quorum(2), 2, 0, "done"),
    (Quorum(2), 1, 2, "fail"),
    (Quorum(3), 0, 1, "fail"),
])
def test_verdict_decides_when_a_run_is_settled(policy: Policy, succeeded: int, failed: int,
                                               expected: Verdict) -> None:
    """The scheduler's decision for 3 branches after some have succeeded or failed."""
    assert verdict(policy, 3, succeeded, failed) == expected


def counting_branches(count: int, state: dict[str, int]) -> dict[str, Chain]:
    """Branches that track how many of them run at the same time in ``state["peak"]``."""

    async def run(inputs: dict[str, Any]) -> dict[str, Any]:
        state["now"] += 1
        state["peak"] = max(state["peak"], state["now"])
        await asyncio.sleep(0.01)
        state["now"] -= 1
        return {}

    return {f"b{i}": TransformChain(f"b{i}", run) for i in range(count)}


async def test_max_concurrency_limits_running_branches() -> None:
    """max_concurrency caps how many branches run at once, and all still run."""
    state = {"now": 0, "peak": 0}
    fan = ParallelChain("fan", counting_branches(6, state), max_concurrency=2)
    outputs = await fan.run({})
    assert len(outputs) == 6
    assert state["peak"] == 2


async def test_run_config_max_concurrency_is_the_default_limit() -> None:
    """Without its own limit the chain honours RunConfig.max_concurrency."""
    state = {"now": 0, "peak": 0}
    fan = ParallelChain("fan", counting_branches(5, state))
    await fan.run({}, RunConfig(max_concurrency=1))
    assert state["peak"] == 1


def llm_branch(name: str, reply: str, usage: Usage) -> SimpleChain:
    """A SimpleChain whose mock model answers ``reply`` with ``usage``."""
    return SimpleChain(name, MockProvider([MockReply(content=reply, usage=usage)]),
                       "Say something about {{ topic }}")


async def test_usage_is_summed_over_llm_branches() -> None:
    """invoke(...).usage counts every branch's LLM calls."""
    fan = ParallelChain("fan", {
        "a": llm_branch("a", "alpha", Usage(prompt_tokens=10, completion_tokens=2)),
        "b": llm_branch("b", "beta", Usage(prompt_tokens=7, completion_tokens=3)),
    })
    run = await fan.invoke({"topic": "tea"})
    assert run.outputs == {"a": {"result": "alpha"}, "b": {"result": "beta"}}
    assert (run.usage.prompt_tokens, run.usage.completion_tokens) == (17, 5)
    assert run.llm_calls == 2


async def test_stream_yields_events_from_branches() -> None:
    """Streaming shows each branch's start, tokens and end, nested under the parallel."""
    fan = ParallelChain("fan", {
        "a": llm_branch("a", "hello there", Usage(prompt_tokens=1, completion_tokens=2)),
        "b": quick("b"),
    })
    events = [event async for event in fan.stream({"topic": "tea"})]
    starts = {event.path for event in events if isinstance(event, ChainStart)}
    assert starts == {("fan",), ("fan", "a"), ("fan", "b")}
    tokens = [event for event in events if isinstance(event, TokenEvent)]
    assert "".join(event.text for event in tokens) == "hello there"
    assert all(event.path == ("fan", "a") for event in tokens)
    last = events[-1]
    assert isinstance(last, ChainEnd)
    assert last.chain == "fan"
    assert last.outputs["a"] == {"result": "hello there"}


async def test_stream_reports_branch_timeout_as_error_event() -> None:
    """A timed-out branch sends an ErrorEvent from that branch, even under collect."""
    fan = ParallelChain("fan", {"ok": quick("ok"), "slow": slow("slow", Probe())},
                        policy="collect", timeout={"slow": 0.02})
    events = [event async for event in fan.stream({})]
    errors = [event for event in events if isinstance(event, ErrorEvent)]
    assert [(event.path, type(event.exception)) for event in errors] == [
        (("fan", "slow"), ChainTimeoutError)]
    assert isinstance(events[-1], ChainEnd)


def test_quorum_needs_a_positive_integer() -> None:
    """quorum(n) refuses n < 1 and non-integers."""
    assert quorum(2) == Quorum(2)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InputValidationError, match="quorum"):
            quorum(bad)  # type: ignore[arg-type]


OK = TransformChain("ok", lambda _: {})


@pytest.mark.parametrize(("kwargs", "field", "text"), [
    ({"branches": {}}, "branches", "non-empty mapping"),
    ({"branches": [OK]}, "branches", "non-empty mapping"),
    ({"branches": {"": OK}}, "branches", "non-empty strings"),
    ({"branches": {"a": "not a chain"}}, "branches", "not chains"),
    ({"policy": "best_effort"}, "policy", "fail_fast"),
    ({"policy": quorum(3)}, "policy", r"quorum\(3\) needs at least 3"),
    ({"max_concurrency": 0}, "max_concurrency", ">= 1"),
    ({"timeout": -1}, "timeout", "seconds"),
    ({"timeout": {"a": 0}}, "timeout['a']", "seconds"),
    ({"timeout": {"zzz": 1.0}}, "timeout", "unknown branches"),
    ({"errors_key": "a"}, "errors_key", "also a branch"),
    ({"errors_key": ""}, "errors_key", "non-empty"),
])
def test_constructor_rejects_bad_arguments(kwargs: dict[str, Any], field: str,
                                           text: str) -> None:
    """Bad arguments raise InputValidationError naming the field and the chain."""
    arguments: dict[str, Any] = {"branches": {"a": OK, "b": OK}, **kwargs}
    branches = arguments.pop("branches")
    with pytest.raises(InputValidationError, match=text) as info:
        ParallelChain("fan", branches, **arguments)
    assert info.value.field == field
    assert info.value.node == "fan"
