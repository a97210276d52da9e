"""The validation stage: message count, characters and estimated tokens."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainweave.errors import InputValidationError, RequestTooLargeError
from chainweave.pipeline import Pipeline
from chainweave.pipeline.validation import SizeLimits
from chainweave.testing import MockProvider
from chainweave.tokens import estimate_tokens
from chainweave.types import ChatRequest, Message


def _request(*texts: str) -> ChatRequest:
    return ChatRequest(messages=[Message.user(t) for t in texts])


@pytest.mark.parametrize(("limits", "texts", "field", "limit"), [
    ({"max_messages": 2}, ["a", "b", "c"], "messages", "max_messages"),
    ({"max_message_chars": 5}, ["ok", "too long"], "messages[1]", "max_message_chars"),
    ({"max_request_chars": 5}, ["abc", "def"], "messages", "max_request_chars"),
    ({"max_message_tokens": 3}, ["hi", "word " * 20], "messages[1]", "max_message_tokens"),
    ({"max_request_tokens": 20}, ["word " * 10, "word " * 10], "messages",
     "max_request_tokens"),
])
async def test_over_a_limit_is_refused_before_the_provider(
        limits: dict[str, int], texts: list[str], field: str, limit: str) -> None:
    """A request over a limit raises RequestTooLargeError naming it; no call is made."""
    model = MockProvider()
    pipeline = Pipeline(model, [SizeLimits(**limits)])
    with pytest.raises(RequestTooLargeError, match=limit) as caught:
        await pipeline.chat(_request(*texts))
    assert caught.value.field == field
    assert caught.value.details["limit"] == limit
    assert caught.value.details["actual"] > caught.value.details["allowed"]
    assert model.requests == []


async def test_streams_are_refused_before_the_first_chunk() -> None:
    """A streamed request over a limit raises on iteration; no provider call."""
    model = MockProvider()
    with pytest.raises(RequestTooLargeError):
        async for _ in Pipeline(model, [SizeLimits(max_messages=1)]).stream(_request("a", "b")):
            pass
    assert model.requests == []


async def test_at_the_limit_passes() -> None:
    """Limits are inclusive: exactly at the limit is allowed."""
    model = MockProvider(["ok"])
    stage = SizeLimits(max_messages=2, max_message_chars=3, max_request_chars=6)
    assert (await Pipeline(model, [stage]).chat(_request("abc", "def"))).content == "ok"


@given(st.lists(st.text(max_size=40), min_size=1, max_size=6), st.integers(1, 120))
def test_request_chars_limit_matches_the_sum(texts: list[str], limit: int) -> None:
    """The request is refused exactly when its characters exceed the limit."""
    request = ChatRequest(messages=[Message.user(t) for t in texts])
    stage = SizeLimits(max_request_chars=limit)
    if sum(map(len, texts)) > limit:
        with pytest.raises(RequestTooLargeError):
            stage.check(request)
    else:
        stage.check(request)


def test_token_limit_uses_the_estimate() -> None:
    """The request token figure is estimate_tokens of the messages."""
    request = _request("some words here", "and more words")
    figure = estimate_tokens(request.messages)
    SizeLimits(max_request_tokens=figure).check(request)
    with pytest.raises(RequestTooLargeError) as caught:
        SizeLimits(max_request_tokens=figure - 1).check(request)
    assert caught.value.details["actual"] == figure


def test_tool_call_arguments_count_as_characters() -> None:
    """An assistant message's tool-call arguments count towards its size."""
    message = Message.model_validate({"role": "assistant", "tool_calls": [
        {"id": "c1", "name": "f", "arguments": '{"x": "' + "y" * 50 + '"}'}]})
    request = ChatRequest(messages=[Message.user("hi"), message])
    with pytest.raises(RequestTooLargeError, match=r"messages\[1\]"):
        SizeLimits(max_message_chars=40).check(request)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "10"])
def test_bad_limits_are_refused(bad: object) -> None:
    """A limit that is not a positive integer is an InputValidationError naming it."""
    with pytest.raises(InputValidationError, match="max_messages") as caught:
        SizeLimits(max_messages=bad)  # type: ignore[arg-type]
    assert caught.value.field == "max_messages"
