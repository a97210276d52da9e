"""StreamAccumulator: chunks back into text, whole tool calls and a response."""

from __future__ import annotations

from chainweave.streaming import StreamAccumulator
from chainweave.types import StreamChunk, ToolCall, ToolCallDelta, Usage


def _interleaved() -> list[StreamChunk]:
    """Two tool calls whose fragments arrive interleaved, then the finish."""
    frag = ToolCallDelta
    return [
        StreamChunk(id="resp_1", model="gpt-4o", tool_call_deltas=[
            frag(index=0, id="call_a", name="get_weather", arguments='{"loc'),
        ]),
        StreamChunk(tool_call_deltas=[frag(index=1, id="call_b", name="get_time")]),
        StreamChunk(tool_call_deltas=[frag(index=0, arguments='ation": "Paris"}')]),
        StreamChunk(tool_call_deltas=[frag(index=1, arguments='{"tz": "CET"}')]),
        StreamChunk(finish_reason="tool_calls", raw_finish_reason="tool_calls",
                    usage=Usage(prompt_tokens=5, completion_tokens=7)),
    ]


def test_accumulator_joins_fragments_by_index() -> None:
    """Interleaved fragments are joined per index into whole calls, in index order."""
    acc = StreamAccumulator()
    for chunk in _interleaved():
        acc.add(chunk)
    assert [(c.id, c.name, c.parsed_arguments()) for c in acc.tool_calls()] == [
        ("call_a", "get_weather", {"location": "Paris"}),
        ("call_b", "get_time", {"tz": "CET"}),
    ]


def test_accumulator_orders_calls_by_index_not_arrival() -> None:
    """A call whose first fragment arrives later but has a lower index comes first."""
    acc = StreamAccumulator()
    acc.add_tool_fragment(ToolCallDelta(index=1, id="b", name="second"))
    acc.add_tool_fragment(ToolCallDelta(index=0, id="a", name="first"))
    assert [c.name for c in acc.tool_calls()] == ["first", "second"]


def test_accumulator_keeps_first_name() -> None:
    """A name repeated on a later fragment does not get appended or replaced."""
    acc = StreamAccumulator()
    acc.add_tool_fragment(ToolCallDelta(index=0, id="a", name="f"))
    acc.add_tool_fragment(ToolCallDelta(index=0, name="f", arguments="{}"))
    assert acc.tool_calls()[0].name == "f"


def test_accumulator_invents_missing_ids() -> None:
    """A call whose fragments never carried an id gets ``call_<index>``."""
    acc = StreamAccumulator()
    acc.add_tool_fragment(ToolCallDelta(index=3, name="f"))
    assert acc.tool_calls()[0].id == "call_3"


def test_accumulator_empty_arguments_are_an_empty_object() -> None:
    """A call with no argument fragments has ``{}`` as arguments."""
    acc = StreamAccumulator()
    acc.add_tool_fragment(ToolCallDelta(index=0, id="a", name="f"))
    assert acc.tool_calls()[0].arguments == "{}"


def test_accumulator_response() -> None:
    """The assembled response carries text, calls, finish reason, usage, id and model."""
    acc = StreamAccumulator()
    acc.add(StreamChunk(delta="Hel", id="r1", model="gpt-4o-2024"))
    acc.add(StreamChunk(delta="lo"))
    for chunk in _interleaved():
        acc.add(chunk)
    resp = acc.response(provider="openai", model="gpt-4o", latency_ms=12.0)
    assert (resp.id, resp.model, resp.provider, resp.content) == (
        "r1", "gpt-4o-2024", "openai", "Hello"
    )
    assert (resp.finish_reason, resp.usage.total_tokens, len(resp.tool_calls)) == (
        "tool_calls", 12, 2
    )


def test_accumulator_defaults_when_stream_says_little() -> None:
    """A stream with only text ends as ``stop`` with the caller's model and empty usage."""
    acc = StreamAccumulator()
    acc.add(StreamChunk(delta="hi"))
    resp = acc.response(provider="p", model="m")
    assert (resp.model, resp.finish_reason, resp.usage, resp.tool_calls) == (
        "m", "stop", Usage(), []
    )




def test_accumulator_takes_assembled_calls_from_a_final_chunk() -> None:
    """Calls sent only whole, on the last chunk, are kept rather than lost."""
    acc = StreamAccumulator()
    call = ToolCall(id="call_1", name="lookup", arguments='{"q": "x"}')
    acc.add(StreamChunk(delta="checking"))
    acc.add(StreamChunk(finish_reason="tool_calls", tool_calls=[call]))
    assert acc.tool_calls() == [call]


def test_accumulator_prefers_fragments_over_repeated_whole_calls() -> None:
    """When fragments arrived, the final chunk's assembled copy does not duplicate them."""
    acc = StreamAccumulator()
    acc.add(StreamChunk(tool_call_deltas=[ToolCallDelta(index=0, id="c", name="f",
                                                        arguments="{}")]))
    acc.add(StreamChunk(finish_reason="tool_calls",
                        tool_calls=[ToolCall(id="c", name="f", arguments="{}")]))
    assert len(acc.tool_calls()) == 1
