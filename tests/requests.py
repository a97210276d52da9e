"""Small request fixtures shared by the types tests."""

from __future__ import annotations

from typing import Any

from chainweave.types import ChatRequest

HI = [{"role": "user", "content": "hi"}]
WEATHER = {
    "name": "get_weather",
    "description": "Get weather information",
    "parameters": {
        "type": "object",
        "properties": {"location": {"type": "string"}},
        "required": ["location"],
    },
}


def request(**fields: Any) -> ChatRequest:
    """A one-message request with ``fields`` added."""
    return ChatRequest.model_validate({"messages": HI, **fields})
