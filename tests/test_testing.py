"""chainweave.testing: FunctionProvider, record and replay cassettes, capture_spans."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import chainweave.providers.mock as mock_module
from chainweave import testing
from chainweave.errors import (
    CassetteMissError,
    ConfigurationError,
    ExecutionError,
    InputValidationError,
    ProviderUnavailableError,
    RateLimitError,
    StreamInterruptedError,
)
from chainweave.testing import (
    FunctionProvider,
    MockFailure,
    MockProvider,
    MockReply,
    RecordingModel,
    ReplayModel,
    capture_spans,
    request_hash,
)
from chainweave.types import ChatModel, ChatRequest, ChatResponse, StreamChunk, ToolCall
from tests import strategies


def ask(prompt: str = "Summarise the plot of Hamlet", **params: Any) -> ChatRequest:
    return ChatRequest.from_prompt(prompt, model="gpt-4o-mini", **params)


async def drain(stream: AsyncIterator[StreamChunk], received: list[StreamChunk]) -> None:
    async for chunk in stream:
        received.append(chunk)


async def collect(model: ChatModel, request: ChatRequest) -> list[StreamChunk]:
    received: list[StreamChunk] = []
    await drain(model.stream(request), received)
    return received


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --- re-exports and FunctionProvider --------------------------------------------------


def test_mock_doubles_are_re_exported() -> None:
    """testing re-exports the mock provider's classes themselves."""
    assert testing.MockProvider is mock_module.MockProvider
    assert testing.MockReply is mock_module.MockReply
    assert testing.MockFailure is mock_module.MockFailure


def test_all_names_are_exported() -> None:
    """testing.__all__ is sorted and names only attributes the module has."""
    assert sorted(testing.__all__) == testing.__all__
    assert all(hasattr(testing, name) for name in testing.__all__)


async def test_function_provider_answers_with_a_sync_function() -> None:
    """A sync function's string becomes the reply text."""
    provider = FunctionProvider(lambda request: request.messages[-1].text.upper())
    response = await provider.chat(ask("hello"))
    assert response.content == "HELLO"
    assert response.provider == "function"


async def test_function_provider_awaits_an_async_function() -> None:
    """An async function's result is awaited."""
    async def answer(request: ChatRequest) -> str:
        await asyncio.sleep(0)
        return f"{len(request.messages)} message(s)"

    assert (await FunctionProvider(answer).chat(ask())).content == "1 message(s)"


async def test_function_provider_returns_a_chat_response_as_given() -> None:
    """A ChatResponse from the function is returned unchanged."""
    given = ChatResponse(id="x", model="m", provider="p", content="fixed")
    assert await FunctionProvider(lambda _: given).chat(ask()) == given


async def test_function_provider_streams_the_text_in_words() -> None:
    """stream splits the function's text into word chunks and finishes."""
    chunks = await collect(FunctionProvider(lambda _: "alpha beta gamma"), ask())
    assert [c.delta for c in chunks if c.delta] == ["alpha ", "beta ", "gamma"]
    assert chunks[-1].finish_reason == "stop"


async def test_function_provider_raises_a_returned_failure() -> None:
    """A MockFailure from the function raises the matching provider error."""
    provider = FunctionProvider(lambda _: MockFailure(status=503), name="fn")
    with pytest.raises(ProviderUnavailableError) as caught:
        await provider.chat(ask())
    assert caught.value.provider == "fn"


async def test_function_provider_rejects_a_result_of_another_type() -> None:
    """A function returning something else fails with a clear error."""
    provider = FunctionProvider(lambda _: 42)  # type: ignore[arg-type,return-value]
    with pytest.raises(InputValidationError, match="returned int"):
        await provider.chat(ask())


# --- recording -------------------------------------------------------------------------


async def test_recording_writes_one_line_per_interaction(tmp_path: Path) -> None:
    """Each chat and stream call appends one JSON line with hash, request and result."""
    path = tmp_path / "c.jsonl"
    model = RecordingModel(MockProvider(["one", "two"]), path)
    await model.chat(ask())
    await collect(model, ask("other"))
    first, second = lines(path)
    assert first["kind"] == "chat"
    assert first["hash"] == request_hash(ask())
    assert first["request"]["messages"][0]["content"] == "Summarise the plot of Hamlet"
    assert first["response"]["content"] == "one"
    assert second["kind"] == "stream"
    assert "".join(c.get("delta", "") for c in second["chunks"]) == "two"
    assert second["complete"] is True


async def test_recording_records_and_reraises_an_error(tmp_path: Path) -> None:
    """An inner error is re-raised and recorded with its type and fields."""
    path = tmp_path / "c.jsonl"
    model = RecordingModel(MockProvider([MockFailure(status=429, retry_after=3.0)]), path)
    with pytest.raises(RateLimitError):
        await model.chat(ask())
    error = lines(path)[0]["error"]
    assert error["type"] == "RateLimitError"
    assert (error["status_code"], error["retry_after"], error["retryable"]) == (429, 3.0, True)


async def test_recording_passes_stream_chunks_through_live(tmp_path: Path) -> None:
    """The caller gets each chunk before the wrapped stream produces the next one."""
    release = asyncio.Event()

    class Gated:
        async def chat(self, request: ChatRequest) -> ChatResponse:
            raise NotImplementedError

        async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
            yield StreamChunk(delta="first ")
            await release.wait()
            yield StreamChunk(delta="second", finish_reason="stop")

    stream = RecordingModel(Gated(), tmp_path / "c.jsonl").stream(ask())
    first = await asyncio.wait_for(anext(stream), timeout=5)
    assert first.delta == "first "
    release.set()
    assert (await anext(stream)).finish_reason == "stop"
    await stream.aclose()  # type: ignore[attr-defined]


async def test_recording_marks_a_stream_closed_early(tmp_path: Path) -> None:
    """A stream its consumer stops reading is recorded as incomplete."""
    path = tmp_path / "c.jsonl"
    stream = RecordingModel(MockProvider(["a b c d"]), path).stream(ask())
    await anext(stream)
    await stream.aclose()  # type: ignore[attr-defined]
    record = lines(path)[0]
    assert record["complete"] is False
    assert len(record["chunks"]) == 1


async def test_concurrent_recording_writes_valid_jsonl(tmp_path: Path) -> None:
    """Many concurrent chats and streams leave one whole JSON line each."""
    path = tmp_path / "c.jsonl"
    model = RecordingModel(MockProvider(chunk_delay=0.001), path)
    calls = [model.chat(ask(f"chat {i}")) for i in range(40)]
    calls += [collect(model, ask(f"stream {i}")) for i in range(40)]
    await asyncio.gather(*calls)
    records = lines(path)
    assert len(records) == 80
    assert sorted(r["kind"] for r in records) == ["chat"] * 40 + ["stream"] * 40


async def test_cassette_never_holds_a_key(tmp_path: Path) -> None:
    """Key-shaped strings are redacted before they are written."""
    key = "sk-" + "a1b2c3d4" * 4
    path = tmp_path / "c.jsonl"
    await RecordingModel(MockProvider([f"your key is {key}"]), path).chat(ask())
    assert key not in path.read_text(encoding="utf-8")


# --- replay ----------------------------------------------------------------------------


async def test_chat_round_trip_replays_an_equal_response(tmp_path: Path) -> None:
    """A recorded chat replays as an equal ChatResponse."""
    path = tmp_path / "c.jsonl"
    reply = MockReply("Denmark, revenge.", tool_calls=[ToolCall(id="c1", name="f")])
    recorded = await RecordingModel(MockProvider([reply]), path).chat(ask())
    assert await ReplayModel(path).chat(ask()) == recorded


async def test_stream_round_trip_replays_equal_chunks(tmp_path: Path) -> None:
    """A recorded stream replays the same chunks, tool-call fragments included."""
    path = tmp_path / "c.jsonl"
    call = ToolCall(id="c1", name="search", arguments={"query": "hamlet summary"})
    inner = MockProvider([MockReply("Looking it up \u2028 now", tool_calls=[call])])
    recorded = await collect(RecordingModel(inner, path), ask())
    assert await collect(ReplayModel(path), ask()) == recorded


async def test_chat_error_round_trip_raises_the_same_error(tmp_path: Path) -> None:
    """A recorded error replays as the same class with the same fields."""
    path = tmp_path / "c.jsonl"
    recording = RecordingModel(MockProvider([MockFailure(status=429, retry_after=2.5)]), path)
    with pytest.raises(RateLimitError) as original:
        await recording.chat(ask())
    with pytest.raises(RateLimitError) as replayed:
        await ReplayModel(path).chat(ask())
    assert replayed.value.to_dict() == original.value.to_dict()


async def test_stream_error_round_trip_replays_chunks_then_the_error(tmp_path: Path) -> None:
    """A stream that broke replays its chunks, then the same error."""
    path = tmp_path / "c.jsonl"
    inner = MockProvider([MockReply("one two three", truncate_after=2)])
    recorded: list[StreamChunk] = []
    with pytest.raises(StreamInterruptedError) as original:
        await drain(RecordingModel(inner, path).stream(ask()), recorded)
    replayed: list[StreamChunk] = []
    with pytest.raises(StreamInterruptedError) as again:
        await drain(ReplayModel(path).stream(ask()), replayed)
    assert replayed == recorded
    assert again.value.to_dict() == original.value.to_dict()


async def test_identical_requests_replay_in_recorded_order(tmp_path: Path) -> None:
    """The same request recorded twice replays its two answers in order."""
    path = tmp_path / "c.jsonl"
    recording = RecordingModel(MockProvider(["first", "second"]), path)
    await recording.chat(ask())
    await recording.chat(ask())
    replay = ReplayModel(path)
    assert [(await replay.chat(ask())).content for _ in range(2)] == ["first", "second"]
    assert replay.remaining == 0


async def test_replay_ignores_volatile_fields(tmp_path: Path) -> None:
    """A request differing only in request_id, metadata and timeout still replays."""
    path = tmp_path / "c.jsonl"
    await RecordingModel(MockProvider(["ok"]), path).chat(ask(request_id="a", timeout=5))
    again = ask(request_id="b", metadata={"trace": "t"}, timeout=9)
    assert (await ReplayModel(path).chat(again)).content == "ok"


async def test_replay_miss_names_hash_model_prompt_and_count(tmp_path: Path) -> None:
    """An unrecorded request raises CassetteMissError saying what was asked for."""
    path = tmp_path / "c.jsonl"
    await RecordingModel(MockProvider(), path).chat(ask())
    other = ask("A very different question about Macbeth " * 5)
    with pytest.raises(CassetteMissError) as caught:
        await ReplayModel(path).chat(other)
    message = str(caught.value)
    assert request_hash(other)[:16] in message
    assert "gpt-4o-mini" in message
    assert "A very different question about Macbeth" in message
    assert "holds 1 recordings" in message
    assert "never recorded" in message


async def test_replay_asked_more_often_than_recorded_raises(tmp_path: Path) -> None:
    """Asking for a request more times than it was recorded is a miss."""
    path = tmp_path / "c.jsonl"
    await RecordingModel(MockProvider(), path).chat(ask())
    replay = ReplayModel(path)
    await replay.chat(ask())
    with pytest.raises(CassetteMissError, match="recorded 1 time"):
        await replay.chat(ask())


async def test_allow_repeats_replays_the_last_recording(tmp_path: Path) -> None:
    """With allow_repeats, extra asks get the last recording again."""
    path = tmp_path / "c.jsonl"
    await RecordingModel(MockProvider(["only"]), path).chat(ask())
    replay = ReplayModel(path, allow_repeats=True)
    assert [(await replay.chat(ask())).content for _ in range(3)] == ["only"] * 3


async def test_a_chat_recording_does_not_answer_a_stream(tmp_path: Path) -> None:
    """A stream call misses when only a chat was recorded, and the error says so."""
    path = tmp_path / "c.jsonl"
    await RecordingModel(MockProvider(), path).chat(ask())
    with pytest.raises(CassetteMissError, match=r"1 recorded as chat"):
        await collect(ReplayModel(path), ask())


async def test_replaying_past_an_early_closed_stream_raises(tmp_path: Path) -> None:
    """Reading past the end of a stream recorded as closed early is a miss."""
    path = tmp_path / "c.jsonl"
    stream = RecordingModel(MockProvider(["a b c"]), path).stream(ask())
    await anext(stream)
    await stream.aclose()  # type: ignore[attr-defined]
    with pytest.raises(CassetteMissError, match="closed it"):
        await collect(ReplayModel(path), ask())


async def test_an_error_of_another_class_replays_as_execution_error(tmp_path: Path) -> None:
    """A non-chainweave error replays as an ExecutionError naming its type."""
    path = tmp_path / "c.jsonl"
    with pytest.raises(KeyError):
        await RecordingModel(MockProvider([KeyError("gone")]), path).chat(ask())
    with pytest.raises(ExecutionError, match="replayed KeyError") as caught:
        await ReplayModel(path).chat(ask())
    assert caught.value.details["recorded_type"] == "KeyError"


async def test_corrupt_cassette_line_names_the_file_and_line(tmp_path: Path) -> None:
    """A line that is not a record fails loading with the file and line number."""
    path = tmp_path / "c.jsonl"
    recording = RecordingModel(MockProvider(), path)
    await recording.chat(ask("one"))
    await recording.chat(ask("two"))
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"v": 1, "kind": "chat", "hash": "abc", "respo\n')
    with pytest.raises(ConfigurationError, match=rf"{path.name}:3: not a cassette record"):
        ReplayModel(path)


def test_a_record_missing_its_response_is_corrupt(tmp_path: Path) -> None:
    """A chat record without a response or an error is reported with its line."""
    path = tmp_path / "c.jsonl"
    path.write_text('\n{"v": 1, "kind": "chat", "hash": "abc"}\n', encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r":2: not a cassette record: no 'response'"):
        ReplayModel(path)


def test_a_missing_cassette_is_a_configuration_error(tmp_path: Path) -> None:
    """Replaying a cassette that does not exist fails clearly."""
    with pytest.raises(ConfigurationError, match="cannot read cassette"):
        ReplayModel(tmp_path / "absent.jsonl")


# --- request hash ----------------------------------------------------------------------

volatile_changes = st.fixed_dictionaries({
    "request_id": st.none() | strategies.identifiers,
    "metadata": strategies.json_objects,
    "timeout": st.none() | st.floats(min_value=0.1, max_value=600),
})
sent_fields: dict[str, st.SearchStrategy[Any]] = {
    "model": st.text(min_size=1, max_size=30),
    "messages": st.lists(strategies.messages(), min_size=1, max_size=3),
    "temperature": st.floats(0, 2),
    "max_tokens": st.integers(min_value=1),
    "top_p": st.floats(0, 1),
    "top_k": st.integers(min_value=1),
    "stop": st.lists(strategies.texts, max_size=3),
    "frequency_penalty": st.floats(-2, 2),
    "presence_penalty": st.floats(-2, 2),
    "seed": st.integers(),
    "tools": st.lists(strategies.tools(), max_size=2),
    "tool_choice": strategies.tool_choices(),
    "response_format": strategies.response_formats(),
    "user": strategies.identifiers,
    "extra_body": strategies.json_objects,
}
fast = settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fast
@given(strategies.chat_requests(), volatile_changes)
def test_request_hash_ignores_volatile_fields(request: ChatRequest,
                                              changes: dict[str, Any]) -> None:
    """request_id, metadata and timeout never change the hash."""
    assert request_hash(request.model_copy(update=changes)) == request_hash(request)


@fast
@given(strategies.chat_requests(), st.sampled_from(sorted(sent_fields)), st.data())
def test_request_hash_changes_with_any_sent_field(request: ChatRequest, field: str,
                                                  data: st.DataObject) -> None:
    """Changing any field that is sent to the model changes the hash."""
    optional = field not in ("messages", "extra_body")
    value = data.draw(sent_fields[field] | st.none() if optional else sent_fields[field],
                      label=field)
    assume(value != getattr(request, field))
    changed = request.model_copy(update={field: value})
    assert request_hash(changed) != request_hash(request)


# --- spans -----------------------------------------------------------------------------


def test_capture_spans_collects_spans_from_the_global_tracer() -> None:
    """Spans made through opentelemetry.trace.get_tracer inside the block are captured."""
    tracer = trace.get_tracer("tests")
    with (
        capture_spans() as spans,
        tracer.start_as_current_span("outer"),
        tracer.start_as_current_span("inner"),
    ):
        pass
    assert spans.names() == ["inner", "outer"]
    assert spans[1].name == "outer"
    assert len(spans.named("inner")) == 1


def test_spans_after_the_block_are_not_captured() -> None:
    """Capture stops when the block ends, and the captured spans stay readable."""
    tracer = trace.get_tracer("tests")
    with capture_spans() as spans, tracer.start_as_current_span("during"):
        pass
    with tracer.start_as_current_span("after"):
        pass
    assert spans.names() == ["during"]


def test_nested_capture_blocks_each_see_their_spans() -> None:
    """An inner block sees the spans finished inside it; the outer block sees all."""
    tracer = trace.get_tracer("tests")
    with capture_spans() as outer:
        with tracer.start_as_current_span("first"):
            pass
        with capture_spans() as inner, tracer.start_as_current_span("second"):
            pass
    assert outer.names() == ["first", "second"]
    assert inner.names() == ["second"]


def test_capture_spans_on_a_given_provider() -> None:
    """A provider passed in is captured from, alongside its own processors."""
    own = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(own))
    with capture_spans(provider) as spans, provider.get_tracer("t").start_as_current_span("local"):
        pass
    assert spans.names() == ["local"]
    assert [span.name for span in own.get_finished_spans()] == ["local"]


def test_capture_spans_works_when_the_app_set_a_provider_first() -> None:
    """In a fresh process whose app set its own SDK provider, capture still works."""
    script = textwrap.dedent("""
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from chainweave.testing import capture_spans

        app_exporter = InMemorySpanExporter()
        app_provider = TracerProvider()
        app_provider.add_span_processor(SimpleSpanProcessor(app_exporter))
        trace.set_tracer_provider(app_provider)
        with capture_spans() as spans:
            with trace.get_tracer("app").start_as_current_span("work"):
                pass
        assert spans.names() == ["work"], spans.names()
        assert trace.get_tracer_provider() is app_provider
        assert [s.name for s in app_exporter.get_finished_spans()] == ["work"]
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-W", "error", "-c", script],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
