"""The server-sent events decoder, against the WHATWG event-stream rules."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable

from hypothesis import example, given
from hypothesis import strategies as st

from chainweave._internal.sse import ServerSentEvent, SSEDecoder, iter_sse
from tests.strategies import sse_events


def decode(lines: Iterable[str]) -> list[ServerSentEvent]:
    """Every event a fresh decoder dispatches for ``lines``."""
    decoder = SSEDecoder()
    return [event for line in lines if (event := decoder.feed(line)) is not None]


async def aiter_lines(lines: Iterable[str]) -> AsyncIterator[str]:
    """``lines`` as an async iterator, the way httpx hands them over."""
    for line in lines:
        yield line


async def collect(lines: Iterable[str]) -> list[ServerSentEvent]:
    """Every event ``iter_sse`` yields for ``lines``."""
    return [event async for event in iter_sse(aiter_lines(lines))]


# --- field parsing ---------------------------------------------------------------------


def test_data_with_space() -> None:
    """``data: x`` carries ``x``: one space after the colon is dropped."""
    assert decode(["data: hello", ""]) == [ServerSentEvent(event="message", data="hello")]


def test_data_without_space() -> None:
    """``data:x`` carries ``x`` too."""
    assert decode(["data:hello", ""])[0].data == "hello"


def test_only_one_leading_space_is_dropped() -> None:
    """A second space after the colon belongs to the value."""
    assert decode(["data:  two", ""])[0].data == " two"


def test_trailing_spaces_are_kept() -> None:
    """Whitespace at the end of a value is part of the value."""
    assert decode(["data: x  ", ""])[0].data == "x  "


def test_colon_inside_value_is_kept() -> None:
    """Only the first colon separates name from value."""
    assert decode(['data: {"a": "b:c"}', ""])[0].data == '{"a": "b:c"}'


def test_multiline_data_joined_by_newline() -> None:
    """Several data lines make one value joined by ``\\n``, with no trailing newline."""
    assert decode(["data: one", "data: two", "data:", "data: four", ""])[0].data == (
        "one\ntwo\n\nfour"
    )


def test_field_name_without_colon_has_empty_value() -> None:
    """A bare ``data`` line is a data field with an empty value, so the event dispatches."""
    assert decode(["data", ""]) == [ServerSentEvent(event="message", data="")]


def test_comment_lines_are_ignored() -> None:
    """Lines starting with a colon are comments, even between data lines."""
    assert decode([": keep-alive", "data: a", ":comment: data: b", "data: c", ""])[0].data == (
        "a\nc"
    )


def test_comment_alone_dispatches_nothing() -> None:
    """A keep-alive comment followed by a blank line is not an event."""
    assert decode([": ping", ""]) == []


def test_unknown_fields_are_ignored() -> None:
    """Fields other than data, event, id and retry are ignored."""
    assert decode(["foo: bar", "Data: x", "data: y", ""])[0].data == "y"


def test_event_name() -> None:
    """``event:`` sets the event's type."""
    assert decode(["event: message_start", "data: {}", ""])[0].event == "message_start"


def test_event_name_defaults_to_message() -> None:
    """An event without ``event:`` has type ``message``."""
    assert decode(["data: x", ""])[0].event == "message"


def test_event_name_does_not_carry_over() -> None:
    """The event type resets after each dispatch."""
    events = decode(["event: ping", "data: 1", "", "data: 2", ""])
    assert [e.event for e in events] == ["ping", "message"]


def test_empty_event_name_means_message() -> None:
    """``event:`` with an empty value leaves the default type."""
    assert decode(["event:", "data: x", ""])[0].event == "message"


def test_id_is_set() -> None:
    """``id:`` sets the event's id."""
    assert decode(["id: 42", "data: x", ""])[0].id == "42"


def test_id_persists_to_later_events() -> None:
    """The last event id stays until another id field changes it."""
    events = decode(["id: 7", "data: a", "", "data: b", "", "id: 8", "data: c", ""])
    assert [e.id for e in events] == ["7", "7", "8"]


def test_id_with_nul_is_ignored() -> None:
    """An id containing NUL is ignored and the previous id kept."""
    events = decode(["id: 1", "data: a", "", "id: 2\0", "data: b", ""])
    assert [e.id for e in events] == ["1", "1"]


def test_empty_id_resets_the_id() -> None:
    """``id:`` with an empty value sets the id to the empty string."""
    assert decode(["id: 1", "data: a", "", "id:", "data: b", ""])[1].id == ""


def test_retry_digits() -> None:
    """``retry:`` with ASCII digits sets the reconnection time in milliseconds."""
    assert decode(["retry: 3000", "data: x", ""])[0].retry == 3000


def test_retry_with_non_digits_is_ignored() -> None:
    """``retry:`` values that are not all digits are ignored."""
    events = decode(["retry: 10", "retry: 3s", "retry: -1", "retry: 1.5", "retry: ",
                     "data: x", ""])
    assert events[0].retry == 10


def test_retry_with_non_ascii_digits_is_ignored() -> None:
    """Superscript and Arabic-Indic digits are not the ASCII digits the spec allows."""
    decoder = SSEDecoder()
    for line in ["retry: 5", "retry: \u00b2", "retry: \u0663", "data: x"]:
        assert decoder.feed(line) is None
    assert decoder.feed("") == ServerSentEvent(event="message", data="x", retry=5)


def test_retry_too_long_for_int_is_ignored() -> None:
    """A retry value longer than int() accepts is ignored instead of raising."""
    assert decode(["retry: " + "9" * 5000, "data: x", ""])[0].retry is None


# --- dispatch --------------------------------------------------------------------------


def test_no_event_before_blank_line() -> None:
    """Field lines alone dispatch nothing; the blank line does."""
    decoder = SSEDecoder()
    assert [decoder.feed(line) for line in ["event: e", "data: x"]] == [None, None]
    assert decoder.feed("") == ServerSentEvent(event="e", data="x")


def test_event_without_data_is_not_dispatched() -> None:
    """A block with an event name and no data dispatches nothing."""
    assert decode(["event: ping", "id: 3", ""]) == []


def test_event_name_of_undispatched_block_is_dropped() -> None:
    """An event name from a block without data does not leak into the next event."""
    assert decode(["event: ping", "", "data: x", ""])[0].event == "message"


def test_repeated_blank_lines_dispatch_once() -> None:
    """Extra blank lines between events dispatch nothing more."""
    assert len(decode(["data: a", "", "", "", "data: b", ""])) == 2


def test_data_does_not_carry_over() -> None:
    """Each event has only the data lines of its own block."""
    assert [e.data for e in decode(["data: a", "", "data: b", ""])] == ["a", "b"]


async def test_iter_sse_yields_events_in_order() -> None:
    """``iter_sse`` yields each dispatched event in stream order."""
    lines = ["event: start", "data: 1", "", "data: 2", "", "data: [DONE]", ""]
    assert [(e.event, e.data) for e in await collect(lines)] == [
        ("start", "1"), ("message", "2"), ("message", "[DONE]")
    ]


async def test_iter_sse_drops_trailing_partial_event() -> None:
    """A last event with no blank line after it (a cut stream) is not yielded."""
    assert [e.data for e in await collect(["data: 1", "", "data: cut off"])] == ["1"]


async def test_iter_sse_of_empty_stream() -> None:
    """An empty stream yields nothing."""
    assert await collect([]) == []


# --- properties ------------------------------------------------------------------------


def encode(events: list[ServerSentEvent], newline: str) -> str:
    """The wire text of ``events``, the way a server writes them."""
    blocks = []
    for event in events:
        lines = [f"event: {event.event}"]
        if event.id is not None:
            lines.append(f"id: {event.id}")
        if event.retry is not None:
            lines.append(f"retry: {event.retry}")
        lines.extend(f"data: {line}" for line in event.data.split("\n"))
        blocks.append(newline.join(lines) + newline + newline)
    return ": stream opened" + newline + "".join(blocks)


def split_lines(text: str) -> list[str]:
    """Split wire text the way httpx's line decoder does: on CRLF, CR or LF."""
    return re.split(r"\r\n|\r|\n", text)[:-1]


def carried_over(events: list[ServerSentEvent]) -> list[ServerSentEvent]:
    """What a client sees: id and retry persist until an event changes them."""
    seen: list[ServerSentEvent] = []
    last_id: str | None = None
    last_retry: int | None = None
    for event in events:
        last_id = event.id if event.id is not None else last_id
        last_retry = event.retry if event.retry is not None else last_retry
        seen.append(ServerSentEvent(event.event, event.data, last_id, last_retry))
    return seen


@given(st.lists(sse_events(), max_size=6), st.sampled_from(["\n", "\r\n", "\r"]))
@example([ServerSentEvent(event=" spaced", data=" lead\n\ntrail ")], "\n")
def test_encoded_events_decode_to_themselves(events: list[ServerSentEvent],
                                             newline: str) -> None:
    """Any events, written with any one line ending, decode back to the same events."""
    assert decode(split_lines(encode(events, newline))) == carried_over(events)


@given(st.lists(sse_events(), min_size=1, max_size=4))
async def test_iter_sse_matches_decoder(events: list[ServerSentEvent]) -> None:
    """``iter_sse`` over encoded events yields exactly what the decoder dispatches."""
    lines = split_lines(encode(events, "\n"))
    assert await collect(lines) == carried_over(events)


_field_lines = st.tuples(
    st.sampled_from(["data", "event", "id", "retry", "", ":", "other"]),
    st.sampled_from([":", ": ", ""]),
    st.text(max_size=12),
).map("".join)


@given(st.lists(st.text(max_size=20) | _field_lines | st.just(""), max_size=20))
@example(["retry: \u00b2", ""])
@example(["retry:" + "1" * 5000, "data", ""])
def test_arbitrary_lines_never_raise(lines: list[str]) -> None:
    """Any sequence of lines decodes without raising, and every event has data."""
    for event in decode(lines):
        assert isinstance(event.data, str)
        assert event.event
