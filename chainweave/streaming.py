"""Assembling a stream of chunks back into text, whole tool calls and a response."""

from __future__ import annotations

from typing import Any

from chainweave.types import (
    ChatResponse,
    FinishReason,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    Usage,
)

__all__ = ["StreamAccumulator"]


class StreamAccumulator:
    """Collect stream chunks into text, whole tool calls and a final response.

    Tool-call fragments are joined by their ``index``: the first fragment brings ``id``
    and ``name``, later ones append to ``arguments``.
    """

    __slots__ = ("_calls", "_parts", "_refusal", "chunks", "finish_reason", "id", "model",
                 "raw_finish_reason", "usage")

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._refusal: list[str] = []
        self.chunks = 0
        self._calls: dict[int, dict[str, str]] = {}
        self.finish_reason: FinishReason | None = None
        self.raw_finish_reason: str | None = None
        self.usage: Usage | None = None
        self.id: str | None = None
        self.model: str | None = None

    def add(self, chunk: StreamChunk) -> None:
        """Fold one chunk in."""
        self.chunks += 1
        if chunk.delta:
            self._parts.append(chunk.delta)
        if chunk.refusal:
            self._refusal.append(chunk.refusal)
        for frag in chunk.tool_call_deltas:
            self.add_tool_fragment(frag)
        if chunk.tool_calls and not self._calls:
            # A source that sends only assembled calls (on its last chunk) loses nothing.
            for index, call in enumerate(chunk.tool_calls):
                self._calls[index] = {"id": call.id, "name": call.name,
                                      "arguments": call.arguments}
        if chunk.finish_reason is not None:
            self.finish_reason = chunk.finish_reason
            self.raw_finish_reason = chunk.raw_finish_reason
        if chunk.usage is not None:
            self.usage = chunk.usage
        self.id = self.id or chunk.id
        self.model = self.model or chunk.model

    def add_tool_fragment(self, frag: ToolCallDelta) -> None:
        """Fold one tool-call fragment in."""
        call = self._calls.setdefault(frag.index, {"id": "", "name": "", "arguments": ""})
        if frag.id:
            call["id"] = frag.id
        if frag.name and not call["name"]:
            call["name"] = frag.name
        call["arguments"] += frag.arguments

    @property
    def text(self) -> str:
        """All text so far."""
        return "".join(self._parts)

    @property
    def refusal(self) -> str | None:
        """The refusal text so far, if the model refused."""
        return "".join(self._refusal) or None

    def progress(self) -> dict[str, Any]:
        """What arrived before a stream broke, for ``StreamInterruptedError.details``."""
        return {"partial_content": self.text, "chunks": self.chunks}

    def tool_calls(self) -> list[ToolCall]:
        """The tool calls assembled so far, in index order."""
        return [
            ToolCall(id=c["id"] or f"call_{i}", name=c["name"], arguments=c["arguments"] or "{}")
            for i, c in sorted(self._calls.items())
        ]

    def response(self, *, provider: str, model: str, latency_ms: float = 0.0) -> ChatResponse:
        """The complete response the chunks add up to."""
        return ChatResponse(
            id=self.id or "",
            model=self.model or model,
            provider=provider,
            content=self.text,
            refusal=self.refusal,
            tool_calls=self.tool_calls(),
            finish_reason=self.finish_reason or "stop",
            raw_finish_reason=self.raw_finish_reason,
            usage=self.usage or Usage(),
            latency_ms=latency_ms,
        )
