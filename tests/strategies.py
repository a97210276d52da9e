"""Hypothesis strategies shared by the test suite.

Strategies named after a type (``messages``, ``chat_requests``, ...) build values through
the public constructors, so everything they draw is valid by construction. The
``*_dicts`` strategies draw loosely shaped, mostly invalid input for fuzzing validation.
"""

from __future__ import annotations

import json
import string
from typing import Any

from hypothesis import strategies as st

from chainweave._internal.sse import ServerSentEvent
from chainweave.types import (
    ChatRequest,
    ContentPart,
    ImagePart,
    ImageURL,
    JsonSchemaFormat,
    Message,
    ResponseFormat,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
    Usage,
)

__all__ = [
    "KEY_CHARS",
    "TOOL_NAME_CHARS",
    "api_keys",
    "chat_request_dicts",
    "chat_requests",
    "content_parts",
    "contents",
    "identifiers",
    "json_objects",
    "json_schemas",
    "json_values",
    "message_dicts",
    "messages",
    "response_formats",
    "sse_events",
    "texts",
    "tool_calls",
    "tool_choices",
    "tool_names",
    "tools",
    "usages",
]

KEY_CHARS = string.ascii_letters + string.digits + "_-"
TOOL_NAME_CHARS = KEY_CHARS + "."

texts = st.text(max_size=40)
identifiers = st.text(alphabet=KEY_CHARS, min_size=1, max_size=24)
tool_names = st.text(alphabet=TOOL_NAME_CHARS, min_size=1, max_size=64)

# JSON as it comes off the wire: no NaN or infinity, which JSON cannot carry.
_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
json_values: st.SearchStrategy[Any] = st.recursive(
    _json_scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=8,
)
json_objects = st.dictionaries(st.text(max_size=10), json_values, max_size=4)

json_schemas: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries({
    "type": st.just("object"),
    "properties": st.dictionaries(
        identifiers,
        st.fixed_dictionaries(
            {"type": st.sampled_from(["string", "number", "integer", "boolean"])}
        ),
        max_size=3,
    ),
})


def api_keys() -> st.SearchStrategy[str]:
    """Secrets as vendors issue them: 8 to 64 characters of letters, digits, ``_`` and ``-``.

    ``"REDACTED"`` itself is left out: a secret spelled like the mask would be found again
    inside every mask.
    """
    return st.text(alphabet=KEY_CHARS, min_size=8, max_size=64).filter(
        lambda key: key != "REDACTED"
    )


# --- content and tools -----------------------------------------------------------------

_image_urls = st.one_of(
    identifiers.map(lambda path: f"https://example.com/{path}.png"),
    st.binary(min_size=1, max_size=12).map(
        lambda raw: f"data:image/png;base64,{raw.hex()}"
    ),
)


def content_parts() -> st.SearchStrategy[ContentPart]:
    """A text part or an image part."""
    text_parts = st.builds(TextPart, text=texts)
    image_parts = st.builds(
        ImagePart,
        image_url=st.builds(
            ImageURL, url=_image_urls, detail=st.none() | st.sampled_from(["auto", "low", "high"])
        ),
    )
    return text_parts | image_parts


def contents() -> st.SearchStrategy[str | list[ContentPart]]:
    """Message content: a string, or a list of parts."""
    return texts | st.lists(content_parts(), min_size=1, max_size=3)


def tool_calls() -> st.SearchStrategy[ToolCall]:
    """A tool call whose arguments are a JSON document."""
    return st.builds(
        ToolCall, id=identifiers, name=tool_names, arguments=json_values.map(json.dumps)
    )


def tools() -> st.SearchStrategy[Tool]:
    """A tool declaration with a small object schema."""
    return st.builds(
        Tool,
        name=tool_names,
        description=texts,
        parameters=json_schemas,
        strict=st.none() | st.booleans(),
    )


def tool_choices(names: list[str] | None = None) -> st.SearchStrategy[ToolChoice]:
    """A tool choice; mode ``tool`` only when ``names`` offers a tool to name."""
    modes = st.sampled_from(["auto", "none", "required"]).map(lambda m: ToolChoice(mode=m))
    if not names:
        return modes
    named = st.sampled_from(names).map(lambda n: ToolChoice(mode="tool", name=n))
    return modes | named


def response_formats() -> st.SearchStrategy[ResponseFormat]:
    """Plain text, any JSON object, or JSON following a schema."""
    schema_formats = st.builds(
        JsonSchemaFormat,
        name=st.text(min_size=1, max_size=64),
        schema=json_schemas,
        description=st.none() | texts,
        strict=st.none() | st.booleans(),
    )
    return st.one_of(
        st.sampled_from(["text", "json_object"]).map(lambda t: ResponseFormat(type=t)),
        schema_formats.map(lambda f: ResponseFormat(type="json_schema", json_schema=f)),
    )


# --- messages and requests -------------------------------------------------------------


@st.composite
def messages(draw: st.DrawFn, roles: tuple[str, ...] = ("system", "user", "assistant", "tool"),
             ) -> Message:
    """A valid message of one of ``roles``, obeying the role rules."""
    role = draw(st.sampled_from(roles))
    name = draw(st.none() | identifiers)
    if role == "tool":
        return Message(role="tool", tool_call_id=draw(identifiers), content=draw(texts),
                       name=name)
    if role == "assistant":
        calls = draw(st.none() | st.lists(tool_calls(), min_size=1, max_size=3))
        content = draw(st.none() | contents()) if calls else draw(contents())
        return Message(role="assistant", content=content, tool_calls=calls, name=name)
    return Message(role=role, content=draw(contents()), name=name)


@st.composite
def chat_requests(draw: st.DrawFn) -> ChatRequest:
    """A valid chat request using every optional field some of the time."""
    declared = draw(st.none() | st.lists(tools(), max_size=3, unique_by=lambda t: t.name))
    names = [t.name for t in declared or ()]
    maybe = st.none
    return ChatRequest(
        model=draw(maybe() | st.text(min_size=1, max_size=30)),
        messages=draw(st.lists(messages(), min_size=1, max_size=4)),
        temperature=draw(maybe() | st.floats(0, 2)),
        max_tokens=draw(maybe() | st.integers(min_value=1)),
        top_p=draw(maybe() | st.floats(0, 1)),
        top_k=draw(maybe() | st.integers(min_value=1)),
        stop=draw(maybe() | st.lists(texts, max_size=4)),
        frequency_penalty=draw(maybe() | st.floats(-2, 2)),
        presence_penalty=draw(maybe() | st.floats(-2, 2)),
        seed=draw(maybe() | st.integers()),
        tools=declared,
        tool_choice=draw(maybe() | tool_choices(names)),
        response_format=draw(maybe() | response_formats()),
        request_id=draw(maybe() | identifiers),
        user=draw(maybe() | identifiers),
        timeout=draw(maybe() | st.floats(min_value=0, max_value=1e6, exclude_min=True)),
        metadata=draw(json_objects),
        extra_body=draw(json_objects),
    )


def usages() -> st.SearchStrategy[Usage]:
    """Token counts, with a cost some of the time."""
    counts = st.integers(min_value=0, max_value=10**9)
    return st.builds(
        Usage,
        prompt_tokens=counts,
        completion_tokens=counts,
        cost_usd=st.none() | st.floats(min_value=0, max_value=1e6),
    )


# --- loosely shaped input, for fuzzing -------------------------------------------------

_role_words = st.sampled_from(
    ["system", "user", "assistant", "tool", "human", "ai", "developer", "function", "robot"]
)
_loose_tool_calls = st.fixed_dictionaries({}, optional={
    "id": identifiers | json_values,
    "type": st.just("function") | json_values,
    "name": tool_names | json_values,
    "arguments": texts | json_values,
    "function": st.fixed_dictionaries(
        {}, optional={"name": tool_names | json_values, "arguments": texts | json_values}
    ) | json_values,
})
_loose_parts = st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["text", "image_url", "audio"]) | json_values,
    "text": texts | json_values,
    "image_url": texts | st.fixed_dictionaries({"url": texts}) | json_values,
})


def message_dicts() -> st.SearchStrategy[dict[str, Any]]:
    """Dicts shaped roughly like messages in any of the accepted shapes, mostly invalid."""
    return st.fixed_dictionaries({}, optional={
        "role": _role_words | json_values,
        "type": _role_words | json_values,
        "content": texts | st.lists(_loose_parts, max_size=3) | json_values,
        "name": identifiers | json_values,
        "tool_calls": st.lists(_loose_tool_calls, max_size=2) | json_values,
        "tool_call_id": identifiers | json_values,
        "function_call": _loose_tool_calls | json_values,
        "extra": json_values,
    })


def chat_request_dicts() -> st.SearchStrategy[dict[str, Any]]:
    """Dicts shaped roughly like chat requests, mostly invalid, for fuzzing validation."""
    numbers = st.integers() | st.floats() | json_values
    loose_tools = st.lists(
        st.fixed_dictionaries({}, optional={
            "type": st.just("function") | json_values,
            "name": tool_names | json_values,
            "parameters": json_schemas | json_values,
            "function": st.fixed_dictionaries({"name": tool_names | json_values}) | json_values,
        }),
        max_size=2,
    )
    return st.fixed_dictionaries({}, optional={
        "model": texts | json_values,
        "messages": st.lists(message_dicts(), max_size=3) | json_values,
        "temperature": numbers,
        "max_tokens": numbers,
        "top_p": numbers,
        "top_k": numbers,
        "frequency_penalty": numbers,
        "presence_penalty": numbers,
        "stop": texts | st.lists(texts, max_size=2) | json_values,
        "tools": loose_tools | json_values,
        "functions": loose_tools | json_values,
        "tool_choice": st.sampled_from(["auto", "none", "required", "any", "tool"])
        | st.fixed_dictionaries({"type": json_values, "name": json_values})
        | json_values,
        "response_format": st.sampled_from(["text", "json_object", "json_schema"])
        | st.fixed_dictionaries({"type": json_values}, optional={"json_schema": json_values})
        | json_values,
        "timeout": numbers,
        "metadata": json_values,
        "unknown_field": json_values,
    })


# --- server-sent events ----------------------------------------------------------------

_field_values = st.text(max_size=20).filter(lambda s: "\r" not in s and "\n" not in s)


def sse_events() -> st.SearchStrategy[ServerSentEvent]:
    """Events a server could send: data of any text without CR (LF splits it into lines),
    a one-line event name, and sometimes an id (without NUL) and a retry time."""
    return st.builds(
        ServerSentEvent,
        event=_field_values.filter(bool) | st.just("message"),
        data=st.text(max_size=40).filter(lambda s: "\r" not in s),
        id=st.none() | _field_values.filter(lambda s: "\0" not in s),
        retry=st.none() | st.integers(min_value=0, max_value=10**9),
    )
