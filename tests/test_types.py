"""The typed vocabulary: validation and value rules."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainweave.errors import InputValidationError
from chainweave.types import (
    ChatRequest,
    ChatResponse,
    ImagePart,
    JsonSchemaFormat,
    Message,
    ResponseFormat,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
    Usage,
    normalize_finish_reason,
)
from tests.requests import HI, WEATHER, request
from tests.strategies import chat_request_dicts, chat_requests, message_dicts


def validation_error(**fields: Any) -> InputValidationError:
    """The error a request with ``fields`` raises."""
    with pytest.raises(InputValidationError) as info:
        request(**fields)
    return info.value


# --- ChatRequest ranges ----------------------------------------------------------------

OUT_OF_RANGE = [
    ("temperature", -0.1),
    ("temperature", 2.01),
    ("top_p", -0.1),
    ("top_p", 1.01),
    ("frequency_penalty", -2.01),
    ("frequency_penalty", 2.01),
    ("presence_penalty", -2.01),
    ("presence_penalty", 2.01),
    ("max_tokens", 0),
    ("max_tokens", -5),
    ("top_k", 0),
    ("timeout", 0),
]

AT_THE_BOUNDS = [
    ("temperature", 0),
    ("temperature", 2),
    ("top_p", 0),
    ("top_p", 1),
    ("frequency_penalty", -2),
    ("frequency_penalty", 2),
    ("presence_penalty", -2),
    ("presence_penalty", 2),
    ("max_tokens", 1),
    ("top_k", 1),
]


@pytest.mark.parametrize(("field", "value"), OUT_OF_RANGE)
def test_out_of_range_parameter_names_its_field(field: str, value: float) -> None:
    """An out-of-range parameter raises InputValidationError whose field is that parameter."""
    assert validation_error(**{field: value}).field == field


@pytest.mark.parametrize(("field", "value"), OUT_OF_RANGE)
def test_out_of_range_message_names_the_field(field: str, value: float) -> None:
    """The message of an out-of-range error says which field of ChatRequest was wrong."""
    assert f"ChatRequest.{field}:" in str(validation_error(**{field: value}))


@pytest.mark.parametrize(("field", "value"), AT_THE_BOUNDS)
def test_bounds_are_inclusive(field: str, value: float) -> None:
    """A parameter exactly at its documented bound is accepted."""
    assert getattr(request(**{field: value}), field) == value


def test_out_of_range_error_is_also_a_value_error() -> None:
    """Callers catching ValueError still catch validation errors."""
    with pytest.raises(ValueError, match="temperature"):
        request(temperature=5)


def test_empty_messages_are_refused() -> None:
    """A request with no messages names the messages field."""
    with pytest.raises(InputValidationError, match=r"ChatRequest\.messages") as info:
        ChatRequest(messages=[])
    assert info.value.field == "messages"


def test_missing_messages_are_refused() -> None:
    """A request without a messages key names the messages field."""
    with pytest.raises(InputValidationError) as info:
        ChatRequest.model_validate({"model": "gpt-4o"})
    assert info.value.field == "messages"


def test_nested_field_is_a_dotted_path() -> None:
    """A bad value inside a message is located by its dotted path."""
    with pytest.raises(InputValidationError) as info:
        ChatRequest.model_validate({"messages": [*HI, {"role": "robot", "content": "x"}]})
    assert info.value.field == "messages.1.role"


def test_every_problem_is_listed() -> None:
    """Each wrong field gets its own entry in ``errors``, not just the first."""
    err = validation_error(temperature=9, top_p=9)
    assert {e["field"] for e in err.errors} == {"temperature", "top_p"}


def test_errors_do_not_echo_the_input() -> None:
    """A rejected value (which may be a secret) is not copied into ``errors``."""
    err = validation_error(user=["hunter2-is-my-password"])
    assert "hunter2" not in repr(err.errors)


def test_unknown_field_is_refused() -> None:
    """A misspelt parameter is an error rather than silently ignored."""
    assert validation_error(temprature=0.5).field == "temprature"


def test_model_validate_and_constructor_agree() -> None:
    """The constructor raises InputValidationError too, not pydantic's ValidationError."""
    with pytest.raises(InputValidationError):
        ChatRequest(messages=[Message.user("x")], top_k=0)


# --- tools and constructors ------------------------------------------------------------


def test_parsed_arguments_refuses_non_json() -> None:
    """Arguments that are not JSON raise InputValidationError naming ``arguments``."""
    with pytest.raises(InputValidationError, match="not JSON") as info:
        ToolCall(id="c", name="f", arguments="{oops").parsed_arguments()
    assert info.value.field == "arguments"


def test_tool_name_must_be_wire_safe() -> None:
    """A tool name with characters vendors refuse is rejected at the source."""
    with pytest.raises(InputValidationError) as info:
        Tool(name="get weather")
    assert info.value.field == "name"


def test_from_prompt_builds_system_and_user() -> None:
    """``from_prompt`` makes a system message (when given) and a user message."""
    req = ChatRequest.from_prompt("hello", system="be brief", temperature=0.1)
    assert [(m.role, m.content) for m in req.messages] == [
        ("system", "be brief"), ("user", "hello")
    ]


# --- ToolChoice ------------------------------------------------------------------------


def test_tool_choice_tool_mode_needs_a_name() -> None:
    """Mode ``tool`` without a name is refused."""
    with pytest.raises(InputValidationError, match="name is required"):
        ToolChoice(mode="tool")


def test_tool_choice_name_only_with_tool_mode() -> None:
    """A name with a mode other than ``tool`` is refused."""
    with pytest.raises(InputValidationError, match="name is required"):
        ToolChoice(mode="auto", name="f")


def test_tool_choice_must_name_a_declared_tool() -> None:
    """A request whose tool_choice names a tool it does not declare is refused."""
    with pytest.raises(InputValidationError, match="not in tools"):
        request(tools=[WEATHER], tool_choice={"type": "tool", "name": "get_time"})


def test_tool_choice_naming_a_declared_tool_is_accepted() -> None:
    """A tool_choice naming a declared tool validates."""
    req = request(tools=[WEATHER], tool_choice={"type": "tool", "name": "get_weather"})
    assert req.tool_choice == ToolChoice(mode="tool", name="get_weather")


# --- ResponseFormat --------------------------------------------------------------------


def test_json_schema_format_needs_a_schema() -> None:
    """Type ``json_schema`` without ``json_schema`` is refused."""
    with pytest.raises(InputValidationError, match="json_schema is required"):
        ResponseFormat(type="json_schema")


def test_schema_only_with_json_schema_type() -> None:
    """A ``json_schema`` with another type is refused."""
    with pytest.raises(InputValidationError, match="json_schema is required"):
        ResponseFormat.model_validate(
            {"type": "json_object", "json_schema": {"schema": {"type": "object"}}}
        )


def test_json_schema_dumps_under_its_wire_name() -> None:
    """Dumped by alias, the schema goes out as ``schema`` as vendors expect."""
    fmt = JsonSchemaFormat(schema={"type": "object"})
    assert fmt.model_dump(by_alias=True)["schema"] == {"type": "object"}


def test_unknown_response_format_type_is_refused() -> None:
    """A response format type outside text/json_object/json_schema is refused."""
    with pytest.raises(InputValidationError):
        ResponseFormat.model_validate("yaml")


# --- Message rules ---------------------------------------------------------------------


def test_tool_message_needs_tool_call_id() -> None:
    """A tool message without tool_call_id is refused."""
    with pytest.raises(InputValidationError, match="tool_call_id"):
        Message(role="tool", content="42")


@pytest.mark.parametrize("role", ["system", "user"])
def test_system_and_user_need_content(role: str) -> None:
    """System and user messages without content are refused."""
    with pytest.raises(InputValidationError, match="needs content"):
        Message(role=role)  # type: ignore[arg-type]


def test_assistant_needs_content_or_tool_calls() -> None:
    """An empty assistant message is refused."""
    with pytest.raises(InputValidationError, match="content or tool_calls"):
        Message(role="assistant")


def test_assistant_with_only_tool_calls_is_valid() -> None:
    """An assistant message may carry tool calls and no text."""
    msg = Message.assistant(tool_calls=[ToolCall(id="c", name="f")])
    assert (msg.content, msg.text) == (None, "")


def test_only_assistants_carry_tool_calls() -> None:
    """A user message with tool calls is refused."""
    with pytest.raises(InputValidationError, match="only assistant"):
        Message(role="user", content="x", tool_calls=[ToolCall(id="c", name="f")])


def test_unknown_role_is_refused() -> None:
    """A role outside the four (after aliases) is refused, naming ``role``."""
    with pytest.raises(InputValidationError) as info:
        Message.model_validate({"role": "robot", "content": "x"})
    assert info.value.field == "role"


def test_message_constructors() -> None:
    """The named constructors build messages of their role."""
    assert [m.role for m in (
        Message.system("s"), Message.user("u"), Message.assistant("a"), Message.tool("c", "t")
    )] == ["system", "user", "assistant", "tool"]


def test_text_joins_text_parts_and_skips_images() -> None:
    """``Message.text`` is the text parts joined, images left out."""
    msg = Message.model_validate({"role": "user", "content": [
        {"type": "text", "text": "look at "},
        {"type": "image_url", "image_url": "https://example.com/cat.png"},
        {"type": "text", "text": "this"},
    ]})
    assert msg.text == "look at this"


def test_text_of_string_content() -> None:
    """``Message.text`` of string content is the string."""
    assert Message.user("hello").text == "hello"


def test_image_part_from_url_string() -> None:
    """An image part given as a bare URL string gets an ImageURL."""
    part = ImagePart.model_validate({"image_url": "https://example.com/cat.png"})
    assert (part.image_url.url, part.image_url.detail) == ("https://example.com/cat.png", None)


def test_image_part_with_detail() -> None:
    """OpenAI's ``{"url", "detail"}`` image shape keeps its detail."""
    part = ImagePart.model_validate(
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA", "detail": "low"}}
    )
    assert part.image_url.detail == "low"


def test_content_part_type_is_required() -> None:
    """A content part of an unknown type is refused."""
    with pytest.raises(InputValidationError):
        Message.model_validate({"role": "user", "content": [{"type": "audio", "data": "x"}]})


# --- Usage and ChatResponse ------------------------------------------------------------


def test_usage_total_is_computed() -> None:
    """A Usage without total_tokens gets prompt + completion."""
    assert Usage(prompt_tokens=3, completion_tokens=4).total_tokens == 7


def test_usage_explicit_total_is_kept() -> None:
    """A vendor-reported total is kept even when it differs from the sum."""
    assert Usage(prompt_tokens=3, completion_tokens=4, total_tokens=10).total_tokens == 10


def test_usage_negative_tokens_are_refused() -> None:
    """Negative token counts are refused."""
    with pytest.raises(InputValidationError) as info:
        Usage(prompt_tokens=-1)
    assert info.value.field == "prompt_tokens"


def test_usage_add_sums_tokens() -> None:
    """Adding usages sums each count."""
    total = Usage(prompt_tokens=1, completion_tokens=2) + Usage(prompt_tokens=10,
                                                                completion_tokens=20)
    assert (total.prompt_tokens, total.completion_tokens, total.total_tokens) == (11, 22, 33)


def test_usage_add_unknown_costs_stay_unknown() -> None:
    """The sum of two usages without cost has no cost."""
    assert (Usage(prompt_tokens=1) + Usage(prompt_tokens=2)).cost_usd is None


def test_usage_add_known_cost_survives_unknown() -> None:
    """A known cost plus an unknown one is the known cost."""
    assert (Usage(cost_usd=0.5) + Usage()).cost_usd == 0.5
    assert (Usage() + Usage(cost_usd=0.25)).cost_usd == 0.25


def test_usage_add_sums_costs() -> None:
    """Two known costs add up."""
    assert (Usage(cost_usd=0.5) + Usage(cost_usd=0.25)).cost_usd == 0.75


def test_response_message_is_assistant_text() -> None:
    """``ChatResponse.message`` is an assistant message with the content."""
    resp = ChatResponse(id="r", model="m", provider="p", content="Paris")
    assert (resp.message.role, resp.message.content) == ("assistant", "Paris")


def test_response_message_with_tool_calls_has_no_empty_text() -> None:
    """A tool-call reply becomes an assistant message with the calls and no empty text."""
    call = ToolCall(id="c", name="f")
    msg = ChatResponse(id="r", model="m", provider="p", tool_calls=[call]).message
    assert (msg.content, msg.tool_calls) == (None, [call])


def test_response_message_of_empty_reply_is_valid() -> None:
    """An empty text reply still makes a valid assistant message."""
    assert ChatResponse(id="r", model="m", provider="p").message.content == ""


def test_message_is_frozen() -> None:
    """Assigning to a message field raises and leaves the message unchanged."""
    msg = Message.user("x")
    with pytest.raises(ValueError, match="frozen"):
        msg.content = "y"  # type: ignore[misc]
    assert msg.content == "x"


def test_request_is_frozen() -> None:
    """Assigning to a request field raises."""
    req = request()
    with pytest.raises(ValueError, match="frozen"):
        req.temperature = 1.0  # type: ignore[misc]


def test_usage_is_frozen() -> None:
    """Usage, which computes its total, is still frozen to callers."""
    usage = Usage(prompt_tokens=1)
    with pytest.raises(ValueError, match="frozen"):
        usage.total_tokens = 5  # type: ignore[misc]


# --- finish reasons --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("tool_calls", "tool_calls"),
        ("function_call", "tool_calls"),
        ("content_filter", "content_filter"),
    ],
)
def test_openai_finish_reasons(raw: str, normal: str) -> None:
    """OpenAI's finish reasons map onto the normal four."""
    assert normalize_finish_reason(raw) == normal


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
def test_anthropic_stop_reasons(raw: str, normal: str) -> None:
    """Anthropic's stop reasons map onto the normal four."""
    assert normalize_finish_reason(raw) == normal


def test_finish_reason_case_insensitive() -> None:
    """Upper-case vendor words (Gemini's ``MAX_TOKENS``) map too."""
    assert normalize_finish_reason("MAX_TOKENS") == "length"


def test_finish_reason_none_stays_none() -> None:
    """A chunk without a finish reason stays without one."""
    assert normalize_finish_reason(None) is None


def test_unknown_finish_reason_is_stop() -> None:
    """An unknown vendor word becomes ``stop``."""
    assert normalize_finish_reason("something_new") == "stop"


# --- properties ------------------------------------------------------------------------


@given(chat_requests())
def test_request_round_trips_through_json(req: ChatRequest) -> None:
    """A valid request dumped to JSON-mode data validates back to an equal request."""
    assert ChatRequest.model_validate(req.model_dump(mode="json")) == req


@given(chat_requests())
def test_request_round_trips_through_json_text(req: ChatRequest) -> None:
    """A valid request serialised to JSON text validates back to an equal request."""
    assert ChatRequest.model_validate(json.loads(req.model_dump_json())) == req


@given(chat_request_dicts())
def test_arbitrary_request_dicts_raise_only_input_validation_error(data: dict[str, Any]) -> None:
    """Whatever JSON-shaped dict arrives, validation raises InputValidationError or nothing."""
    with contextlib.suppress(InputValidationError):
        ChatRequest.model_validate(data)


@given(message_dicts())
def test_arbitrary_message_dicts_raise_only_input_validation_error(data: dict[str, Any]) -> None:
    """Whatever JSON-shaped dict arrives, Message validation raises only InputValidationError."""
    with contextlib.suppress(InputValidationError):
        Message.model_validate(data)


def test_text_part_is_a_content_part() -> None:
    """A TextPart object can be used directly in message content."""
    msg = Message(role="user", content=[TextPart(text="a"), TextPart(text="b")])
    assert msg.text == "ab"


@pytest.mark.parametrize("args", [{1, 2}, object(), {(1, 2): "tuple key"}])
def test_unserialisable_arguments_are_a_validation_error(args: object) -> None:
    """Tool-call arguments that are not JSON-serialisable raise InputValidationError."""
    with pytest.raises(InputValidationError) as info:
        ToolCall.model_validate({"id": "c", "name": "f", "arguments": args})
    assert info.value.field == "arguments"


@given(chat_request_dicts(), st.sampled_from([b"{}", {1}, object()]))
def test_python_objects_raise_only_input_validation_error(
    data: dict[str, object], thing: object
) -> None:
    """Non-JSON Python values anywhere in a request dict give InputValidationError only."""
    data = {**data, "messages": [{"role": "assistant", "tool_calls": [
        {"id": "c", "name": "f", "arguments": thing}]}]}
    with contextlib.suppress(InputValidationError):
        ChatRequest.model_validate(data)


def test_whole_model_error_has_no_field() -> None:
    """A rule about the whole message names no field rather than an empty one."""
    with pytest.raises(InputValidationError) as info:
        Message(role="user")
    assert info.value.field is None
