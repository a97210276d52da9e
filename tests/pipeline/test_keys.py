"""Request fingerprints: what they cover, what they ignore, and that they never drift."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainweave.errors import InputValidationError
from chainweave.pipeline.keys import request_fingerprint
from chainweave.types import ChatRequest, Message, Tool, ToolCall
from tests.strategies import chat_requests, identifiers, json_objects

# A fixed request and its fingerprint. If this changes, every cache and idempotency
# entry written before is silently orphaned: bump FINGERPRINT_VERSION and say so.
GOLDEN_REQUEST: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "system", "content": "Be brief."},
                 {"role": "user", "content": "Hello, wörld"}],
    "temperature": 0,
    "max_tokens": 64,
    "tools": [{"name": "lookup", "description": "Find a thing",
               "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}],
    "extra_body": {"b": [1, 2.5], "a": None},
    "request_id": "r-1",
    "metadata": {"tenant": "t"},
}
GOLDEN_FINGERPRINT = "1446ecc23b103da26a61179404f18ffbb4b9a1edf343a09500d33ed84b93efe6"


def _request(**fields: Any) -> ChatRequest:
    return ChatRequest.model_validate({"messages": [{"role": "user", "content": "hi"}],
                                       **fields})


def test_fingerprint_is_hex_sha256() -> None:
    """A fingerprint is 64 lowercase hex digits."""
    fingerprint = request_fingerprint(_request())
    assert len(fingerprint) == 64
    assert set(fingerprint) <= set("0123456789abcdef")


def test_golden_fingerprint() -> None:
    """A fixed request keeps the fingerprint it has always had."""
    assert request_fingerprint(ChatRequest.model_validate(GOLDEN_REQUEST)) == GOLDEN_FINGERPRINT


def test_fingerprint_is_the_same_in_another_process() -> None:
    """A fresh interpreter with another hash seed computes the same fingerprint."""
    code = ("import json, sys; from chainweave.types import ChatRequest; "
            "from chainweave.pipeline.keys import request_fingerprint; "
            "print(request_fingerprint(ChatRequest.model_validate(json.loads(sys.argv[1]))))")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run([sys.executable, "-c", code, json.dumps(GOLDEN_REQUEST)],
                            capture_output=True, text=True, env=env, check=True)
    assert result.stdout.strip() == GOLDEN_FINGERPRINT


@pytest.mark.parametrize("field", [
    {"request_id": "another"}, {"user": "someone"}, {"timeout": 12.5},
    {"metadata": {"trace": "x", "cache": True}},
])
def test_volatile_fields_are_ignored(field: dict[str, Any]) -> None:
    """request_id, user, timeout and metadata do not change the fingerprint."""
    assert request_fingerprint(_request(**field)) == request_fingerprint(_request())


@pytest.mark.parametrize("field", [
    {"model": "gpt-4o"},
    {"messages": [{"role": "user", "content": "hi!"}]},
    {"messages": [{"role": "user", "content": "hi", "name": "ann"}]},
    {"temperature": 0}, {"temperature": 0.7}, {"max_tokens": 10}, {"top_p": 0.9},
    {"top_k": 5}, {"stop": ["\n"]}, {"frequency_penalty": 0.5},
    {"presence_penalty": -0.5}, {"seed": 7},
    {"tools": [{"name": "f", "parameters": {"type": "object"}}]},
    {"tools": [{"name": "f", "parameters": {"type": "object"}}], "tool_choice": "auto"},
    {"response_format": "json_object"},
    {"extra_body": {"logprobs": True}},
])
def test_semantic_fields_change_the_fingerprint(field: dict[str, Any]) -> None:
    """Each field that is sent to a model changes the fingerprint."""
    assert request_fingerprint(_request(**field)) != request_fingerprint(_request())


def test_tool_call_arguments_compare_as_json() -> None:
    """Tool-call arguments with keys in another order or other spacing are the same."""
    def with_arguments(arguments: str) -> ChatRequest:
        call = ToolCall(id="c1", name="f", arguments=arguments)
        return ChatRequest(messages=[Message.user("q"), Message.assistant(tool_calls=[call]),
                                     Message.tool("c1", "42")])

    same = request_fingerprint(with_arguments('{"a": 1, "b": [2]}'))
    assert request_fingerprint(with_arguments('{"b":[2],"a":1}')) == same
    assert request_fingerprint(with_arguments('{"a": 2, "b": [2]}')) != same
    # A JSON string and bare text spelling the same characters are different arguments.
    assert request_fingerprint(with_arguments('"x"')) != request_fingerprint(
        with_arguments("x"))


def test_non_request_is_refused() -> None:
    """Anything but a ChatRequest raises InputValidationError naming the field."""
    with pytest.raises(InputValidationError) as info:
        request_fingerprint({"messages": []})  # type: ignore[arg-type]
    assert info.value.field == "request"


# --- properties ------------------------------------------------------------------------


def _shuffled(value: Any, rnd: random.Random) -> Any:
    """``value`` with the keys of every dict, and of JSON objects in tool-call
    arguments, in a random order."""
    if isinstance(value, dict):
        items = list(value.items())
        rnd.shuffle(items)
        shuffled = {key: _shuffled(item, rnd) for key, item in items}
        if isinstance(shuffled.get("arguments"), str) and "id" in shuffled:
            shuffled["arguments"] = _shuffled_json_text(shuffled["arguments"], rnd)
        return shuffled
    if isinstance(value, list):
        return [_shuffled(item, rnd) for item in value]
    return value


def _shuffled_json_text(text: str, rnd: random.Random) -> str:
    try:
        parsed = json.loads(text)
    except ValueError:
        return text
    return json.dumps(_shuffled(parsed, rnd))


@settings(max_examples=200)
@given(chat_requests(), st.randoms(use_true_random=False))
def test_fingerprint_ignores_key_order(request: ChatRequest, rnd: random.Random) -> None:
    """Rebuilding a request from its dict with every nested key order shuffled
    (messages, tool calls, tools, response_format, extra_body) keeps its fingerprint."""
    reordered = ChatRequest.model_validate(_shuffled(request.model_dump(by_alias=True), rnd))
    assert request_fingerprint(reordered) == request_fingerprint(request)


def _other(value: float | None, choices: tuple[float, float] = (0.5, 0.25)) -> float:
    return choices[1] if value == choices[0] else choices[0]


Change = Callable[[ChatRequest], dict[str, Any]]

SEMANTIC_CHANGES: dict[str, Change] = {
    "model": lambda r: {"model": (r.model or "") + "x"},
    "messages+": lambda r: {"messages": [*r.messages, Message.user("one more")]},
    "messages<": lambda r: {"messages": [Message.user("first"), *r.messages]},
    "temperature": lambda r: {"temperature": _other(r.temperature, (1.5, 0.5))},
    "max_tokens": lambda r: {"max_tokens": (r.max_tokens or 0) + 1},
    "top_p": lambda r: {"top_p": _other(r.top_p)},
    "top_k": lambda r: {"top_k": (r.top_k or 0) + 1},
    "stop": lambda r: {"stop": [*(r.stop or []), "STOP-MARK"]},
    "frequency_penalty": lambda r: {"frequency_penalty": _other(r.frequency_penalty)},
    "presence_penalty": lambda r: {"presence_penalty": _other(r.presence_penalty)},
    "seed": lambda r: {"seed": (r.seed or 0) + 1},
    "tools": lambda r: {"tools": [*(r.tools or []), Tool(name="added_tool")]},
    "tool_choice": lambda r: {"tool_choice": None if r.tool_choice else {"mode": "none"}},
    "response_format": lambda r: {
        "response_format": None if r.response_format else {"type": "json_object"}},
    "extra_body": lambda r: {"extra_body": {**r.extra_body,
                                            "added": [r.extra_body.get("added"), 1]}},
}


@settings(max_examples=200)
@given(chat_requests(), st.sampled_from(sorted(SEMANTIC_CHANGES)))
def test_fingerprint_changes_with_any_semantic_field(request: ChatRequest,
                                                     field: str) -> None:
    """Changing any field that is sent to the model changes the fingerprint."""
    update = SEMANTIC_CHANGES[field](request)
    changed = ChatRequest.model_validate({**request.model_dump(by_alias=True), **update})
    assert request_fingerprint(changed) != request_fingerprint(request)


@given(chat_requests(), st.none() | identifiers, st.none() | identifiers, json_objects)
def test_fingerprint_ignores_volatile_fields(request: ChatRequest, request_id: str | None,
                                             user: str | None,
                                             metadata: dict[str, Any]) -> None:
    """Any request_id, user, timeout or metadata gives the same fingerprint."""
    changed = request.model_copy(update={"request_id": request_id, "user": user,
                                         "timeout": 3.0, "metadata": metadata})
    assert request_fingerprint(changed) == request_fingerprint(request)
