"""OpenAI wire-format fixtures shared by the OpenAI, OpenRouter and Azure adapter tests."""

from __future__ import annotations

from typing import Any

from tests.stubserver import Reply, sse_chunks, sse_event

KEY = "sk-test-abcdefghijklmnopqrstuvwxyz0123456789"


def completion(content: str | None = "Paris.", *, finish: str = "stop",
               tool_calls: list[dict[str, Any]] | None = None,
               usage: dict[str, Any] | None = None, model: str = "gpt-4o-mini") -> dict[str, Any]:
    """A ``chat.completion`` body as OpenAI sends it."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-123", "object": "chat.completion", "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": usage or {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
    }


def chunk(delta: dict[str, Any], finish: str | None = None,
          model: str = "gpt-4o-mini") -> dict[str, Any]:
    """One ``chat.completion.chunk``."""
    return {"id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1700000000,
            "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def usage_chunk(prompt: int = 12, completion_tokens: int = 3) -> dict[str, Any]:
    """The usage-only chunk sent last when ``stream_options.include_usage`` is on."""
    return {"id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "gpt-4o-mini", "choices": [],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion_tokens,
                      "total_tokens": prompt + completion_tokens}}


def text_stream(*pieces: str, done: bool = True, usage: bool = True) -> list[str]:
    """SSE events streaming ``pieces`` as text deltas."""
    events = [sse_event(chunk({"role": "assistant", "content": ""}))]
    events += [sse_event(chunk({"content": p})) for p in pieces]
    events.append(sse_event(chunk({}, finish="stop")))
    if usage:
        events.append(sse_event(usage_chunk()))
    if done:
        events.append(sse_event("[DONE]"))
    return events


def sse_reply(events: list[str], **kwargs: Any) -> Reply:
    """A streamed reply, cut into small irregular pieces."""
    return Reply(headers={"content-type": "text/event-stream"}, chunks=sse_chunks(events),
                 **kwargs)


def error_reply(status: int, message: str, *, type_: str = "invalid_request_error",
                code: str | int | None = None, headers: dict[str, str] | None = None) -> Reply:
    """An OpenAI error body."""
    return Reply(status, json={"error": {"message": message, "type": type_, "param": None,
                                         "code": code}}, headers=headers or {})
