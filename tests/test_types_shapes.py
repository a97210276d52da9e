"""Seed shapes: the vendor and legacy message, tool and parameter shapes that normalise."""

from __future__ import annotations

import json

import pytest

from chainweave.errors import InputValidationError
from chainweave.types import (
    ChatRequest,
    JsonSchemaFormat,
    Message,
    ResponseFormat,
    Tool,
    ToolCall,
    ToolChoice,
)
from tests.requests import WEATHER, request

# --- type and role aliases -------------------------------------------------------------


@pytest.mark.parametrize(
    ("seed_type", "role"), [("human", "user"), ("ai", "assistant"), ("system", "system")]
)
def test_langchain_type_becomes_role(seed_type: str, role: str) -> None:
    """``{"type": "human"|"ai"|"system"}`` messages are read as user/assistant/system."""
    assert Message.model_validate({"type": seed_type, "content": "x"}).role == role


def test_langchain_shaped_conversation_validates() -> None:
    """The microservice seed's structured messages make a valid request."""
    req = ChatRequest.model_validate({"messages": [
        {"type": "system", "content": "You are a helpful assistant."},
        {"type": "human", "content": "What is quantum computing?"},
        {"type": "ai", "content": "Quantum computing is a type of computation..."},
        {"type": "human", "content": "Can you give me a simple example?"},
    ]})
    assert [m.role for m in req.messages] == ["system", "user", "assistant", "user"]


def test_developer_role_is_system() -> None:
    """OpenAI's ``developer`` role is read as ``system``."""
    assert Message.model_validate({"role": "developer", "content": "x"}).role == "system"


# --- legacy functions ------------------------------------------------------------------


def test_function_role_becomes_tool() -> None:
    """A legacy ``role: function`` message becomes a tool message keeping its name."""
    msg = Message.model_validate({"role": "function", "name": "get_weather", "content": "sunny"})
    assert (msg.role, msg.name, msg.content) == ("tool", "get_weather", "sunny")


def test_function_role_takes_tool_call_id_from_name() -> None:
    """A legacy function message with no tool_call_id gets one made from its name."""
    msg = Message.model_validate({"role": "function", "name": "get_weather", "content": "sunny"})
    assert msg.tool_call_id is not None
    assert "get_weather" in msg.tool_call_id


def test_function_role_keeps_an_explicit_tool_call_id() -> None:
    """An explicit tool_call_id on a function message is not replaced by the name."""
    msg = Message.model_validate(
        {"role": "function", "name": "f", "tool_call_id": "call_9", "content": "x"}
    )
    assert msg.tool_call_id == "call_9"


def test_function_role_without_name_is_refused() -> None:
    """A function message with neither name nor tool_call_id cannot be answered to a call."""
    with pytest.raises(InputValidationError, match="tool_call_id"):
        Message.model_validate({"role": "function", "content": "sunny"})


def test_function_call_becomes_tool_calls() -> None:
    """A legacy ``function_call`` on an assistant message becomes one tool call."""
    msg = Message.model_validate({
        "role": "assistant",
        "content": None,
        "function_call": {"name": "get_weather", "arguments": '{"location": "Paris"}'},
    })
    assert msg.tool_calls is not None
    [call] = msg.tool_calls
    assert (call.name, call.parsed_arguments()) == ("get_weather", {"location": "Paris"})


def test_function_call_does_not_replace_tool_calls() -> None:
    """When both are given, ``tool_calls`` wins over the legacy ``function_call``."""
    msg = Message.model_validate({
        "role": "assistant",
        "tool_calls": [{"id": "c1", "name": "new"}],
        "function_call": {"name": "old", "arguments": "{}"},
    })
    assert [c.name for c in msg.tool_calls or ()] == ["new"]


def test_legacy_function_call_and_answer_pair_up() -> None:
    """A legacy function_call and the function message answering it share one id."""
    call = Message.model_validate({"role": "assistant", "content": None,
                                   "function_call": {"name": "get_weather", "arguments": "{}"}})
    answer = Message.model_validate({"role": "function", "name": "get_weather", "content": "sunny"})
    assert call.tool_calls is not None
    assert answer.tool_call_id == call.tool_calls[0].id


# --- tools and tool calls --------------------------------------------------------------


def test_openai_nested_tool_call_shape() -> None:
    """OpenAI's ``{"id", "type", "function": {"name", "arguments"}}`` tool call is read."""
    call = ToolCall.model_validate({
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'},
    })
    assert (call.id, call.name, call.arguments) == (
        "call_1", "get_weather", '{"location": "Paris"}'
    )


def test_tool_call_object_arguments_become_json_text() -> None:
    """Arguments given as an object are stored as their JSON text."""
    call = ToolCall.model_validate({"id": "c", "name": "f", "arguments": {"a": [1, 2]}})
    assert json.loads(call.arguments) == {"a": [1, 2]}


def test_nested_tool_call_object_arguments_become_json_text() -> None:
    """Object arguments inside OpenAI's nested shape are stored as JSON text too."""
    call = ToolCall.model_validate({"id": "c", "function": {"name": "f", "arguments": {"a": 1}}})
    assert json.loads(call.arguments) == {"a": 1}


def test_openai_nested_tool_shape() -> None:
    """OpenAI's ``{"type": "function", "function": {...}}`` declaration is read as a Tool."""
    tool = Tool.model_validate({"type": "function", "function": WEATHER})
    assert (tool.name, tool.parameters["required"]) == ("get_weather", ["location"])


def test_flat_function_declarations_via_functions() -> None:
    """The seed's flat ``functions=[{name, description, parameters}]`` become ``tools``."""
    req = request(functions=[WEATHER])
    assert req.tools is not None
    assert [(t.name, t.description) for t in req.tools] == [
        ("get_weather", "Get weather information")
    ]


# --- request parameters ----------------------------------------------------------------


def test_stop_string_becomes_list() -> None:
    """A single stop string is stored as a one-item list."""
    assert request(stop="END").stop == ["END"]


def test_stop_list_is_kept() -> None:
    """A list of stop sequences is kept as given."""
    assert request(stop=["a", "b"]).stop == ["a", "b"]


def test_seed_request_parameters_validate() -> None:
    """The workflow seed's parameter set is a valid request."""
    req = request(model="glm-4.6", temperature=0.7, max_tokens=100, top_p=1.0, top_k=40,
                  frequency_penalty=0.5, presence_penalty=-0.5, stop="\n\n")
    assert (req.model, req.top_k, req.stop) == ("glm-4.6", 40, ["\n\n"])


# --- ToolChoice ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "mode"),
    [("auto", "auto"), ("none", "none"), ("required", "required"), ("any", "required")],
)
def test_tool_choice_strings(raw: str, mode: str) -> None:
    """Tool-choice strings, Anthropic's ``any`` included, map onto a mode."""
    assert ToolChoice.model_validate(raw).mode == mode


@pytest.mark.parametrize(
    ("raw", "mode"),
    [({"type": "auto"}, "auto"), ({"type": "any"}, "required"), ({"type": "none"}, "none")],
)
def test_tool_choice_anthropic_type_dicts(raw: dict[str, str], mode: str) -> None:
    """Anthropic's ``{"type": "auto"|"any"|"none"}`` dicts map onto a mode."""
    assert ToolChoice.model_validate(raw).mode == mode


def test_tool_choice_openai_function_shape() -> None:
    """OpenAI's ``{"type": "function", "function": {"name"}}`` names one tool."""
    choice = ToolChoice.model_validate({"type": "function", "function": {"name": "f"}})
    assert (choice.mode, choice.name) == ("tool", "f")


def test_tool_choice_anthropic_tool_shape() -> None:
    """Anthropic's ``{"type": "tool", "name"}`` names one tool."""
    choice = ToolChoice.model_validate({"type": "tool", "name": "f"})
    assert (choice.mode, choice.name) == ("tool", "f")


# --- ResponseFormat --------------------------------------------------------------------


def test_response_format_from_string() -> None:
    """A bare type string is a response format."""
    assert ResponseFormat.model_validate("json_object").type == "json_object"


def test_json_schema_format_wire_shape() -> None:
    """OpenAI's ``{"type": "json_schema", "json_schema": {"name", "schema"}}`` is read."""
    fmt = ResponseFormat.model_validate(
        {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}}}
    )
    assert fmt.json_schema == JsonSchemaFormat(name="answer", schema={"type": "object"})
