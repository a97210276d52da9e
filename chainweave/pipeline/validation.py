"""The validation stage: size limits checked before anything else runs.

A request with too many messages, a message that is too long, or a request too long in
total (characters, or estimated tokens) is refused with
:class:`~chainweave.errors.RequestTooLargeError` naming the limit, the figure and the
message at fault; no later stage and no provider sees it. Token figures are estimates
(:func:`chainweave.estimate_tokens`) and are only computed when a token limit is set.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from chainweave.errors import InputValidationError, RequestTooLargeError
from chainweave.pipeline.base import Call, NextChat, NextStream, Stage, closing_stream
from chainweave.tokens import MESSAGE_OVERHEAD, REPLY_PRIMING, estimate_tokens
from chainweave.types import ChatRequest, ChatResponse, Message, StreamChunk

__all__ = ["SizeLimits"]


def _chars(message: Message) -> int:
    total = len(message.text) + len(message.name or "")
    for call in message.tool_calls or ():
        total += len(call.name) + len(call.arguments)
    return total


class SizeLimits(Stage):
    """Refuse requests over any of the limits given; ``None`` turns a limit off.

    Args:
        max_messages: Most messages in one request.
        max_message_chars: Most characters in one message (text, name, tool calls).
        max_request_chars: Most characters over all messages.
        max_message_tokens: Most estimated tokens of one message's content.
        max_request_tokens: Most estimated prompt tokens of the request (framing
            included, as :func:`~chainweave.estimate_tokens` counts them).
    """

    name = "validation"

    def __init__(self, *, max_messages: int | None = None, max_message_chars: int | None = None,
                 max_request_chars: int | None = None, max_message_tokens: int | None = None,
                 max_request_tokens: int | None = None) -> None:
        limits = {"max_messages": max_messages, "max_message_chars": max_message_chars,
                  "max_request_chars": max_request_chars,
                  "max_message_tokens": max_message_tokens,
                  "max_request_tokens": max_request_tokens}
        for name, value in limits.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise InputValidationError(
                    f"SizeLimits.{name} must be a positive integer or None, got {value!r}",
                    field=name)
        self.max_messages = max_messages
        self.max_message_chars = max_message_chars
        self.max_request_chars = max_request_chars
        self.max_message_tokens = max_message_tokens
        self.max_request_tokens = max_request_tokens

    def check(self, request: ChatRequest) -> None:
        """Raise :class:`RequestTooLargeError` if ``request`` is over a limit."""
        messages = request.messages
        if self.max_messages is not None and len(messages) > self.max_messages:
            self._refuse("messages", "max_messages", len(messages), self.max_messages,
                         "messages")
        if self.max_message_chars is not None or self.max_request_chars is not None:
            self._check_chars(messages)
        if self.max_message_tokens is not None or self.max_request_tokens is not None:
            self._check_tokens(messages, request.model)

    def _check_chars(self, messages: list[Message]) -> None:
        total = 0
        for index, message in enumerate(messages):
            size = _chars(message)
            if self.max_message_chars is not None and size > self.max_message_chars:
                self._refuse(f"messages[{index}]", "max_message_chars", size,
                             self.max_message_chars, "characters")
            total += size
        if self.max_request_chars is not None and total > self.max_request_chars:
            self._refuse("messages", "max_request_chars", total, self.max_request_chars,
                         "characters")

    def _check_tokens(self, messages: list[Message], model: str | None) -> None:
        total = REPLY_PRIMING
        for index, message in enumerate(messages):
            size = estimate_tokens([message], model) - REPLY_PRIMING - MESSAGE_OVERHEAD
            if self.max_message_tokens is not None and size > self.max_message_tokens:
                self._refuse(f"messages[{index}]", "max_message_tokens", size,
                             self.max_message_tokens, "estimated tokens")
            total += size + MESSAGE_OVERHEAD
        if self.max_request_tokens is not None and total > self.max_request_tokens:
            self._refuse("messages", "max_request_tokens", total, self.max_request_tokens,
                         "estimated tokens")

    @staticmethod
    def _refuse(where: str, limit: str, actual: int, allowed: int, unit: str) -> None:
        raise RequestTooLargeError(
            f"request too large: {where} has {actual} {unit}, over {limit}={allowed}",
            field=where, details={"limit": limit, "actual": actual, "allowed": allowed})

    async def chat(self, request: ChatRequest, call: Call, call_next: NextChat) -> ChatResponse:
        """Check the limits, then pass the request on."""
        self.check(request)
        return await call_next(request)

    async def stream(self, request: ChatRequest, call: Call,
                     call_next: NextStream) -> AsyncIterator[StreamChunk]:
        """Check the limits, then stream; a refusal raises before the first chunk."""
        self.check(request)
        async with closing_stream(call_next(request)) as chunks:
            async for chunk in chunks:
                yield chunk

    def __repr__(self) -> str:
        set_limits = ", ".join(
            f"{name}={value}" for name, value in vars(self).items() if value is not None)
        return f"SizeLimits({set_limits})"
