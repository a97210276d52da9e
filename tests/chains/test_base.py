"""The Chain base: run, invoke, run_sync, stream, batch, inputs, timeouts, spans, errors."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import BaseModel

from chainweave.chains import (
    Chain,
    ChainEnd,
    ChainStart,
    ErrorEvent,
    RunConfig,
    RunContext,
    SimpleChain,
    TokenEvent,
    TransformChain,
    chain,
)
from chainweave.errors import (
    ChainInputError,
    ChainTimeoutError,
    ExecutionError,
    InputValidationError,
    RateLimitError,
    SetupError,
)
from chainweave.testing import MockProvider, MockReply, capture_spans
from chainweave.types import StreamChunk, StreamError, Usage


class Echo(Chain):
    """Returns its input under ``echo``, after an optional delay."""

    def __init__(self, name: str = "echo", delay: float = 0.0) -> None:
        super().__init__(name, input_keys=["text"], output_keys=["echo"])
        self.delay = delay
        self.started = 0
        self.finished = 0

    async def _call(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        self.started += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        self.finished += 1
        return {"echo": inputs["text"]}


class Failing(Chain):
    """Always raises ``error``."""

    def __init__(self, error: Exception, name: str = "failing") -> None:
        super().__init__(name, input_keys=["text"], output_keys=["echo"])
        self.error = error

    async def _call(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        raise self.error


# --- running --------------------------------------------------------------------------


async def test_run_returns_outputs() -> None:
    """``run`` returns the chain's outputs dict."""
    assert await Echo().run({"text": "hi"}) == {"echo": "hi"}


async def test_bare_value_fills_the_only_input() -> None:
    """A one-input chain takes a bare value; keyword inputs work too."""
    assert await Echo().run("hi") == {"echo": "hi"}
    assert await Echo().run(text="kw") == {"echo": "kw"}


async def test_bare_value_for_a_many_input_chain_is_refused() -> None:
    """A bare value for a chain with several inputs is a clear error, not a guess."""
    two = TransformChain("two", lambda d: {"out": 1}, input_keys=["a", "b"], output_keys=["out"])
    with pytest.raises(ChainInputError, match="exactly one input key"):
        await two.run("x")


async def test_missing_inputs_are_all_listed() -> None:
    """Every missing input is named at once, with what was given."""
    three = TransformChain("three", lambda d: {"out": 1}, input_keys=["a", "b", "c"],
                           output_keys=["out"])
    with pytest.raises(ChainInputError) as caught:
        await three.run({"b": 1})
    assert caught.value.missing == ["a", "c"]
    assert caught.value.node == "three"
    assert "'a', 'c'" in str(caught.value)


async def test_callers_inputs_are_not_mutated() -> None:
    """A run never changes the dict the caller passed."""
    inputs = {"text": "hi"}
    seq = Echo() | TransformChain("t", lambda d: {"x": 1}, output_keys=["x"])
    await seq.run(inputs)
    assert inputs == {"text": "hi"}


async def test_invoke_reports_usage_metadata_and_timing() -> None:
    """``invoke`` gives the outputs with usage summed over LLM calls, run id and metadata."""
    llm = MockProvider([MockReply("one", usage=Usage(prompt_tokens=10, completion_tokens=2,
                                                      cost_usd=0.001)),
                        MockReply("two", usage=Usage(prompt_tokens=5, completion_tokens=3,
                                                     cost_usd=0.002))])
    first = SimpleChain("first", llm, "Say {{ text }}", output_key="a")
    second = SimpleChain("second", llm, "Again {{ a }}", output_key="b")
    run = await (first | second).invoke({"text": "x"},
                                        RunConfig(run_id="run-1", metadata={"user": "u1"}))
    assert run.outputs == {"b": "two"}
    assert run.run_id == "run-1"
    assert run.usage.prompt_tokens == 15
    assert run.usage.completion_tokens == 5
    assert run.usage.total_tokens == 20
    assert run.usage.cost_usd == pytest.approx(0.003)
    assert run.llm_calls == 2
    assert run.metadata == {"user": "u1"}
    assert run.elapsed_ms > 0


def test_run_sync_from_plain_code() -> None:
    """``run_sync`` runs the chain from synchronous code."""
    assert Echo().run_sync({"text": "sync"}) == {"echo": "sync"}


async def test_run_sync_refuses_inside_a_loop() -> None:
    """Inside a running loop ``run_sync`` says to await instead of deadlocking."""
    with pytest.raises(SetupError, match="await"):
        Echo().run_sync({"text": "x"})


async def test_outputs_must_include_declared_keys() -> None:
    """A chain that does not return a promised output fails naming it."""
    broken = TransformChain("broken", lambda d: {"other": 1}, output_keys=["wanted"])
    with pytest.raises(ExecutionError, match="'wanted'") as caught:
        await broken.run({})
    assert caught.value.node == "broken"


async def test_outputs_must_be_a_dict() -> None:
    """A chain returning something other than a dict fails clearly."""
    broken = TransformChain("broken", lambda d: "text")
    with pytest.raises(ExecutionError, match="not a dict"):
        await broken.run({})


@pytest.mark.parametrize("name", ["", "   ", None, 3])
def test_chain_name_is_required(name: Any) -> None:
    """A chain needs a non-empty name."""
    with pytest.raises(InputValidationError, match="name"):
        Echo(name)


def test_duplicate_keys_are_refused() -> None:
    """Duplicate input keys are a construction error."""
    with pytest.raises(InputValidationError, match="duplicates"):
        TransformChain("t", lambda d: d, input_keys=["a", "a"])


# --- RunConfig and timeouts -----------------------------------------------------------


@pytest.mark.parametrize(("field", "value"), [
    ("timeout", 0), ("timeout", -1), ("timeout", float("inf")), ("timeout", "5"),
    ("max_concurrency", 0), ("max_concurrency", True), ("run_id", ""), ("tags", "one"),
    ("metadata", ["x"]),
])
def test_run_config_validates(field: str, value: Any) -> None:
    """A bad RunConfig field is refused up front, naming the field."""
    with pytest.raises(InputValidationError) as caught:
        RunConfig(**{field: value})
    assert caught.value.field == field


async def test_run_timeout_cancels_the_run() -> None:
    """``RunConfig.timeout`` stops a slow run with a retryable ChainTimeoutError."""
    slow = Echo(delay=5)
    started = time.perf_counter()
    with pytest.raises(ChainTimeoutError) as caught:
        await slow.run({"text": "x"}, RunConfig(timeout=0.05))
    assert time.perf_counter() - started < 1
    assert caught.value.retryable
    assert slow.finished == 0


async def test_inner_timeout_error_is_not_mistaken_for_the_run_timeout() -> None:
    """A TimeoutError raised by the chain itself passes through unchanged."""
    failing = Failing(TimeoutError("upstream"))
    with pytest.raises(TimeoutError, match="upstream"):
        await failing.run({"text": "x"}, RunConfig(timeout=10))


# --- errors ---------------------------------------------------------------------------


async def test_error_keeps_its_type_and_names_the_innermost_chain() -> None:
    """A provider error inside a sequence keeps its type; ``node`` names the failing step."""
    llm = MockProvider([RateLimitError("slow down", retry_after=2)])
    step = SimpleChain("summarize", llm, "{{ text }}")
    seq = Echo() | TransformChain("prep", lambda d: {"text": d["echo"]}, output_keys=["text"]) \
        | step
    with pytest.raises(RateLimitError) as caught:
        await seq.run({"text": "x"})
    assert caught.value.node == "summarize"
    assert caught.value.retry_after == 2


async def test_foreign_error_gets_a_note_naming_the_chain() -> None:
    """A plain Python error keeps its type and gains a note naming the chain."""
    with pytest.raises(ZeroDivisionError) as caught:
        await (Echo() | TransformChain("divide", lambda d: {"x": 1 / 0},
                                       output_keys=["x"])).run({"text": "x"})
    assert any("'divide'" in note for note in caught.value.__notes__)
    assert sum("chainweave" in note for note in caught.value.__notes__) == 1


# --- stream ---------------------------------------------------------------------------


async def test_stream_yields_start_tokens_and_end_in_order() -> None:
    """Streaming a run gives start, token deltas from the LLM step, then end with outputs."""
    llm = MockProvider([MockReply(chunks=["Hel", "lo", "!"])])
    completion = SimpleChain("completion", llm, "Complete: {{ input }}")
    events = [event async for event in completion.stream({"input": "x"})]
    assert isinstance(events[0], ChainStart)
    assert events[0].inputs == {"input": "x"}
    assert [e.text for e in events if isinstance(e, TokenEvent)] == ["Hel", "lo", "!"]
    assert isinstance(events[-1], ChainEnd)
    assert events[-1].outputs == {"result": "Hello!"}
    assert events[-1].usage.total_tokens > 0
    assert all(e.run_id == events[0].run_id for e in events)


async def test_stream_nests_paths() -> None:
    """Events of a nested chain carry the path from the outermost chain."""
    seq = Echo() | TransformChain("t", lambda d: {"x": 1}, output_keys=["x"])
    events = [event async for event in seq.stream({"text": "x"})]
    starts = [e for e in events if isinstance(e, ChainStart)]
    assert [e.path for e in starts] == [("echo | t",), ("echo | t", "echo"),
                                        ("echo | t", "t")]


async def test_stream_sends_one_error_event_then_raises() -> None:
    """A failure is reported once, by the chain it came from, then raised."""
    seq = Echo() | Failing(ValueError("bad"), name="fails")
    events: list[Any] = []

    async def consume() -> None:
        async for event in seq.stream({"text": "x"}):
            events.append(event)

    with pytest.raises(ValueError, match="bad"):
        await consume()
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    assert len(errors) == 1
    assert errors[0].chain == "fails"
    assert errors[0].to_dict()["error"]["error_type"] == "internal_error"


async def test_leaving_a_stream_early_cancels_the_run() -> None:
    """Breaking out of ``stream`` cancels the chain's work at once."""
    cancelled = asyncio.Event()

    class Slow(Echo):
        async def _call(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                cancelled.set()
                raise
            return {"echo": inputs["text"]}

    stream = Slow().stream({"text": "x"})
    async for event in stream:
        assert isinstance(event, ChainStart)
        break
    await stream.aclose()
    assert cancelled.is_set()


async def test_event_dicts_are_json_ready() -> None:
    """``to_dict`` gives plain data with the event type, for SSE."""
    events = [event.to_dict() async for event in Echo().stream({"text": "x"})]
    assert [e["type"] for e in events] == ["chain_start", "chain_end"]
    assert events[1]["outputs"] == {"echo": "x"}


# --- batch ----------------------------------------------------------------------------


async def test_batch_keeps_input_order() -> None:
    """Batch results come back in input order."""
    @chain
    async def slow_upper(text: str) -> str:
        await asyncio.sleep(0.01 if text == "a" else 0)
        return text.upper()

    assert await slow_upper.batch(["a", "b", "c"]) == [
        {"slow_upper": "A"}, {"slow_upper": "B"}, {"slow_upper": "C"}]


def _tracked() -> tuple[TransformChain, list[int]]:
    """A chain echoing ``text`` after a short wait, and ``[peak]`` concurrent runs seen."""
    running = 0
    peak = [0]

    @chain
    async def tracked(text: str) -> str:
        nonlocal running
        running += 1
        peak[0] = max(peak[0], running)
        await asyncio.sleep(0.005)
        running -= 1
        return text

    return tracked, peak


async def test_batch_limits_concurrency() -> None:
    """``max_concurrency`` bounds how many runs are in flight at once."""
    tracked, peak = _tracked()
    await tracked.batch([str(i) for i in range(12)], max_concurrency=3)
    assert peak == [3]


async def test_batch_uses_run_config_concurrency() -> None:
    """Without its own limit, batch takes ``RunConfig.max_concurrency``."""
    tracked, peak = _tracked()
    await tracked.batch([str(i) for i in range(8)], RunConfig(max_concurrency=2))
    assert peak == [2]


async def test_batch_return_exceptions_keeps_going() -> None:
    """With ``return_exceptions`` a failed item's error takes its place."""
    @chain
    def invert(x: float) -> float:
        return 1 / x

    results = await invert.batch([1, 0, 4], return_exceptions=True)
    assert results[0] == {"invert": 1.0}
    assert isinstance(results[1], ZeroDivisionError)
    assert results[2] == {"invert": 0.25}


async def test_batch_failure_cancels_the_rest() -> None:
    """Without ``return_exceptions`` the first failure cancels the other runs."""
    finished: list[str] = []

    @chain
    async def work(text: str) -> str:
        if text == "bad":
            raise ValueError("bad item")
        await asyncio.sleep(5)
        finished.append(text)
        return text

    started = time.perf_counter()
    with pytest.raises(ValueError, match="bad item"):
        await work.batch(["a", "bad", "c"])
    assert time.perf_counter() - started < 1
    assert finished == []


async def test_batch_checks_every_item_before_running() -> None:
    """An item lacking inputs is refused before any item runs."""
    echo = Echo()
    with pytest.raises(ChainInputError, match="batch item 1"):
        await echo.batch([{"text": "a"}, {"other": 1}])
    assert echo.started == 0


async def test_batch_gives_each_run_its_own_id() -> None:
    """Items of a batch do not share the config's run id."""
    ids: list[str] = []

    class Record(Echo):
        async def _call(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
            ids.append(ctx.run_id)
            return {"echo": inputs["text"]}

    await Record().batch(["a", "b"], RunConfig(run_id="fixed"))
    assert len(set(ids)) == 2
    assert "fixed" not in ids


@pytest.mark.parametrize("bad", ["text", {"text": "a"}, 5])
async def test_batch_needs_a_list(bad: Any) -> None:
    """``batch`` of a non-list is a clear error."""
    with pytest.raises(InputValidationError, match="list of inputs"):
        await Echo().batch(bad)


# --- spans ----------------------------------------------------------------------------


async def test_every_chain_emits_a_span_named_after_it() -> None:
    """Each chain's run is a ``chainweave.chain`` span, nested under its parent's."""
    seq = Echo() | TransformChain("t", lambda d: {"x": 1}, output_keys=["x"])
    with capture_spans() as spans:
        await seq.run({"text": "x"}, RunConfig(tags=("nightly",)))
    by_name = {span.name: span for span in spans}
    assert set(by_name) == {"chainweave.chain echo | t", "chainweave.chain echo",
                            "chainweave.chain t"}
    outer = by_name["chainweave.chain echo | t"]
    assert by_name["chainweave.chain echo"].parent.span_id == outer.context.span_id
    assert outer.attributes["chain.name"] == "echo | t"
    assert outer.attributes["chainweave.tags"] == ("nightly",)


async def test_failed_chain_span_records_the_error() -> None:
    """A failing chain's span has error status and the exception recorded."""
    with capture_spans() as spans, pytest.raises(ValueError, match="bad"):
        await Failing(ValueError("bad")).run({"text": "x"})
    (span,) = spans
    assert not span.status.is_ok
    assert span.events[0].name == "exception"


async def test_event_dicts_serialise_models_and_errors() -> None:
    """Outputs holding pydantic models or exceptions still give JSON-ready event dicts."""
    class Point(BaseModel):
        x: int

    odd = TransformChain("odd", lambda d: {"p": Point(x=1), "err": RateLimitError("slow"),
                                           "when": {1, 2}}, output_keys=["p", "err", "when"])
    events = [event.to_dict() async for event in odd.stream({})]
    decoded = json.loads(json.dumps(events[-1]))
    assert decoded["outputs"]["p"] == {"x": 1}
    assert decoded["outputs"]["err"]["error_type"] == "rate_limit_error"
    assert sorted(decoded["outputs"]["when"]) == [1, 2]


async def test_error_chunks_in_a_stream_keep_their_class() -> None:
    """An error delivered inside a stream is raised as its own class, as ``run`` would."""
    async def failing_stream(request: Any) -> AsyncIterator[StreamChunk]:
        yield StreamChunk(delta="par")
        yield StreamChunk(error=StreamError.from_exception(
            RateLimitError("slow down", retry_after=3)), finish_reason="error")

    llm = MockProvider()
    llm.stream = failing_stream  # type: ignore[method-assign]
    step = SimpleChain("ask", llm, "{{ q }}")

    async def consume() -> None:
        async for _ in step.stream("?"):
            pass

    with pytest.raises(RateLimitError) as caught:
        await consume()
    assert caught.value.retry_after == 3
    assert caught.value.node == "ask"


async def test_stream_reports_run_timeouts_and_missing_inputs() -> None:
    """A run timeout and a missing input each end the stream with an ErrorEvent."""
    timed = [event async for event in _events(Echo(delay=5), {"text": "x"},
                                               RunConfig(timeout=0.05))]
    assert isinstance(timed[-1], ErrorEvent)
    assert timed[-1].error is not None
    assert timed[-1].error.error_type == "chain_timeout"
    missing = [event async for event in _events(Echo(), {})]
    assert [type(e) for e in missing] == [ChainStart, ErrorEvent]


async def _events(chain_: Chain, inputs: dict[str, Any],
                  config: RunConfig | None = None) -> AsyncIterator[Any]:
    """The events of a stream, stopping quietly at its error."""
    try:
        async for event in chain_.stream(inputs, config):
            yield event
    except Exception:
        return


async def test_top_level_fallback_ends_with_the_chains_own_end_event() -> None:
    """When a fallback answers, the stream still ends with the chain's ChainEnd."""
    guarded = Failing(RateLimitError("busy"), name="primary").with_fallbacks([Echo("backup")])
    events = [event async for event in guarded.stream({"text": "x"})]
    assert isinstance(events[-1], ChainEnd)
    assert events[-1].path == ("primary",)
    assert events[-1].outputs == {"echo": "x"}


async def test_batch_of_nothing_is_nothing() -> None:
    """An empty batch returns an empty list."""
    assert await Echo().batch([]) == []


async def test_non_string_input_keys_do_not_break_the_error() -> None:
    """A missing-input error is still clear when the given keys are not all strings."""
    with pytest.raises(ChainInputError, match="missing input 'text'"):
        await Echo().run({1: "a", "b": 2})


async def test_spans_do_not_carry_secrets() -> None:
    """A key in a failing chain's error is redacted from its span."""
    key = "sk-proj-A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6"
    with capture_spans() as spans, pytest.raises(RuntimeError):
        await Failing(RuntimeError(f"upstream 401 for Bearer {key}")).run({"text": "x"})
    (span,) = spans
    assert key not in str(span.status.description)
    assert all(key not in str(event.attributes) for event in span.events)
