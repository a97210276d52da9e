"""Anthropic Messages wire-format fixtures shared by the adapter's chat and stream tests."""

from __future__ import annotations

from typing import Any

from chainweave.providers.anthropic import AnthropicProvider
from chainweave.types import ChatRequest, Message, Tool
from tests.stubserver import StubServer, sse_event

KEY = "sk-ant-api03-test-only-Zq8xW2vN5mK7pL0r"
MODEL = "claude-3-5-sonnet-20241022"
MESSAGES = "/v1/messages"
WEATHER = Tool(name="get_weather", description="Weather for a city",
               parameters={"type": "object", "properties": {"city": {"type": "string"}}})

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "temp": {"type": "number"}},
          "required": ["city", "temp"]}
JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "weather_report", "schema": SCHEMA}}


def make_provider(stub: StubServer) -> AnthropicProvider:
    """An adapter pointed at the stub server."""
    return AnthropicProvider(api_key=KEY, base_url=stub.url, default_model=MODEL)


def message(*blocks: dict[str, Any], stop_reason: str = "end_turn",
            usage: dict[str, int] | None = None) -> dict[str, Any]:
    """An Anthropic message body."""
    content = list(blocks) or [{"type": "text", "text": "Hello!"}]
    return {"id": "msg_01", "type": "message", "role": "assistant", "model": MODEL,
            "content": content, "stop_reason": stop_reason, "stop_sequence": None,
            "usage": usage or {"input_tokens": 10, "output_tokens": 5}}


def error_body(kind: str, text: str = "something went wrong") -> dict[str, Any]:
    """An Anthropic error body."""
    return {"type": "error", "error": {"type": kind, "message": text}, "request_id": "req_1"}


def ask(text: str = "hi", **params: Any) -> ChatRequest:
    """A one-message request."""
    return ChatRequest(messages=[Message.user(text)], **params)


def ev(kind: str, **fields: Any) -> str:
    """One Anthropic stream event: the SSE event name repeats the data's type."""
    return sse_event({"type": kind, **fields}, kind)


def start(input_tokens: int = 12) -> str:
    """The message_start event."""
    return ev("message_start", message={
        "id": "msg_s1", "type": "message", "role": "assistant", "model": MODEL, "content": [],
        "stop_reason": None, "usage": {"input_tokens": input_tokens, "output_tokens": 1}})


def block(index: int, content: dict[str, Any], deltas: list[dict[str, str]]) -> list[str]:
    """A content block: its start, its deltas, its stop."""
    return [ev("content_block_start", index=index, content_block=content),
            *(ev("content_block_delta", index=index, delta=d) for d in deltas),
            ev("content_block_stop", index=index)]


def text_block(index: int, *pieces: str) -> list[str]:
    """A streamed text block."""
    return block(index, {"type": "text", "text": ""},
                 [{"type": "text_delta", "text": p} for p in pieces])


def tool_block(index: int, call_id: str, name: str, *fragments: str) -> list[str]:
    """A streamed tool_use block whose input arrives as JSON fragments."""
    return block(index, {"type": "tool_use", "id": call_id, "name": name, "input": {}},
                 [{"type": "input_json_delta", "partial_json": f} for f in fragments])


def finish(stop_reason: str = "end_turn", output_tokens: int = 9) -> list[str]:
    """message_delta and message_stop."""
    return [ev("message_delta", delta={"stop_reason": stop_reason},
               usage={"output_tokens": output_tokens}), ev("message_stop")]
