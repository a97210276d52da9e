"""FunctionTool and @tool: schemas from type hints, argument validation, calling."""

from __future__ import annotations

import asyncio
import enum
import functools
import json
import threading
from datetime import date
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field

from chainweave.chains.tools import FunctionTool, format_tool_result, tool
from chainweave.errors import InputValidationError
from chainweave.types import Tool


class Point(BaseModel):
    """A point on the plane."""

    x: int
    y: int = 0


class Color(enum.Enum):
    """A colour."""

    RED = "red"
    BLUE = "blue"


def search(query: str, limit: int = 5, mode: Literal["fast", "deep"] = "fast",
           tags: list[str] | None = None) -> list[str]:
    """Search the catalogue.

    Looks through every shelf.

    Args:
        query (str): What to look for.
        limit: How many results
            to return at most.
        mode: Fast or thorough.
    """
    return [query] * limit


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


# --- schemas -------------------------------------------------------------------------


def test_schema_from_type_hints_and_defaults() -> None:
    """Parameters become typed JSON-schema properties; those without defaults are required."""
    schema = FunctionTool.from_function(search).parameters
    props = schema["properties"]
    assert schema["type"] == "object"
    assert schema["required"] == ["query"]
    assert props["query"]["type"] == "string"
    assert props["limit"] == {"type": "integer", "default": 5, "title": "Limit",
                              "description": "How many results to return at most."}
    assert props["mode"]["enum"] == ["fast", "deep"]
    assert props["tags"]["anyOf"] == [{"type": "array", "items": {"type": "string"}},
                                      {"type": "null"}]
    assert "title" not in schema


def test_description_is_docstring_summary() -> None:
    """The tool's description is the docstring's first paragraph, not the Args section."""
    assert FunctionTool.from_function(search).description == "Search the catalogue."


def test_docstring_args_describe_parameters() -> None:
    """Google-style Args entries (with or without a type) describe their parameters."""
    props = FunctionTool.from_function(search).parameters["properties"]
    assert props["query"]["description"] == "What to look for."
    assert props["mode"]["description"] == "Fast or thorough."
    assert "description" not in props["tags"]


def test_annotated_field_description_wins_over_docstring() -> None:
    """An Annotated Field's description and constraints are kept; the docstring fills gaps."""
    def rate(score: Annotated[int, Field(description="From 1 to 5.", ge=1, le=5)],
             note: str = "") -> str:
        """Rate it.

        Args:
            score: Ignored, the annotation says it.
            note: A comment.
        """
        return note

    props = FunctionTool.from_function(rate).parameters["properties"]
    assert props["score"]["description"] == "From 1 to 5."
    assert (props["score"]["minimum"], props["score"]["maximum"]) == (1, 5)
    assert props["note"]["description"] == "A comment."


def test_nested_model_and_enum_schema() -> None:
    """A pydantic model parameter is described in $defs; an enum lists its values."""
    def draw(at: Point, color: Color = Color.RED) -> str:
        return f"{at} {color}"

    schema = FunctionTool.from_function(draw).parameters
    assert schema["properties"]["at"] == {"$ref": "#/$defs/Point"}
    assert schema["$defs"]["Point"]["required"] == ["x"]
    assert schema["$defs"]["Color"]["enum"] == ["red", "blue"]


async def test_parameter_names_that_shadow_pydantic_attributes() -> None:
    """Parameters named like pydantic attributes (json, model_config) work unchanged."""
    def encode(json: str, model_config: int = 1) -> str:
        return json * model_config

    made = FunctionTool.from_function(encode)
    assert set(made.parameters["properties"]) == {"json", "model_config"}
    assert await made.invoke({"json": "ab", "model_config": 2}) == "abab"


def test_spec_is_a_tool_for_requests() -> None:
    """``spec`` is the chainweave Tool a ChatRequest carries."""
    spec = tool(description="Sum them.")(add).spec
    assert isinstance(spec, Tool)
    assert (spec.name, spec.description) == ("add", "Sum them.")
    assert spec.parameters["required"] == ["a", "b"]


def test_decorator_bare_and_with_arguments() -> None:
    """``@tool`` and ``@tool(name=...)`` both give tools; the function stays callable."""
    @tool
    def double(n: int) -> int:
        return 2 * n

    @tool(name="triple-it")
    def triple(n: int) -> int:
        return 3 * n

    assert isinstance(double, FunctionTool)
    assert (double.name, triple.name) == ("double", "triple-it")
    assert double(4) == 8


@pytest.mark.parametrize("name", ["has space", "", "x" * 65, "dot.name"])
def test_invalid_tool_name_rejected(name: str) -> None:
    """A name outside ^[A-Za-z0-9_-]{1,64}$ is refused when the tool is made."""
    with pytest.raises(InputValidationError, match="tool name") as info:
        FunctionTool.from_function(add, name=name)
    assert info.value.field == "name"


def test_lambda_needs_a_name() -> None:
    """A lambda has no usable name; the error says to pass one."""
    with pytest.raises(InputValidationError, match="pass name="):
        FunctionTool.from_function(lambda a: a)
    assert FunctionTool.from_function(lambda a: a, name="echo").name == "echo"


def test_star_args_kwargs_and_positional_only_rejected() -> None:
    """*args, **kwargs and positional-only parameters cannot be passed by name: refused."""
    def star(*items: int) -> int:
        return 0

    def kw(**options: int) -> int:
        return 0

    def positional(a: int, /) -> int:
        return a

    for fn, param in ((star, "items"), (kw, "options"), (positional, "a")):
        with pytest.raises(InputValidationError) as info:
            FunctionTool.from_function(fn)
        assert info.value.field == param


def test_blocking_async_rejected() -> None:
    """blocking=True is for sync functions; declaring an async one blocking is an error."""
    async def fetch() -> str:
        return ""

    with pytest.raises(InputValidationError) as info:
        FunctionTool.from_function(fetch, blocking=True)
    assert info.value.field == "blocking"


def test_unschemable_hint_rejected() -> None:
    """A type pydantic cannot describe is an error when the tool is made, not when called."""
    def bad(lock: threading.Lock) -> None:
        return None

    with pytest.raises(InputValidationError, match="no JSON schema") as info:
        FunctionTool.from_function(bad)
    assert info.value.field == "fn"


# --- invoke --------------------------------------------------------------------------


async def test_invoke_coerces_in_lax_mode() -> None:
    """JSON arguments are validated leniently: "3" for an int arrives as 3."""
    assert await tool(add).invoke('{"a": "3", "b": 4}') == 7


async def test_invoke_accepts_a_mapping_and_builds_models() -> None:
    """A mapping works as arguments, and a model parameter receives a model instance."""
    seen: list[Any] = []

    def place(at: Point) -> int:
        seen.append(at)
        return at.x

    assert await FunctionTool.from_function(place).invoke({"at": {"x": 2}}) == 2
    assert seen == [Point(x=2, y=0)]


async def test_invoke_uses_defaults() -> None:
    """Arguments left out take the parameter's default."""
    assert await FunctionTool.from_function(search).invoke('{"query": "q"}') == ["q"] * 5


async def test_invoke_bad_json() -> None:
    """Arguments that are not JSON raise InputValidationError on field "arguments"."""
    with pytest.raises(InputValidationError, match="not valid JSON") as info:
        await tool(add).invoke('{"a": 1,')
    assert info.value.field == "arguments"


async def test_invoke_non_object_json() -> None:
    """JSON that is not an object (a list) is refused."""
    with pytest.raises(InputValidationError, match="JSON object") as info:
        await tool(add).invoke("[1, 2]")
    assert info.value.field == "arguments"


async def test_invoke_lists_every_problem() -> None:
    """A missing and a malformed argument are both reported; field is the first one."""
    with pytest.raises(InputValidationError) as info:
        await tool(add).invoke('{"b": "x"}')
    message = str(info.value)
    assert "a: Field required" in message
    assert "b: Input should be a valid integer" in message
    assert info.value.field == "a"
    assert [e["field"] for e in info.value.errors] == ["a", "b"]


async def test_invoke_refuses_unknown_arguments() -> None:
    """A misspelt argument is an error, not silently dropped."""
    with pytest.raises(InputValidationError, match="Extra inputs") as info:
        await tool(add).invoke({"a": 1, "b": 2, "c": 3})
    assert info.value.field == "c"


async def test_invoke_empty_string_means_no_arguments() -> None:
    """A tool without parameters accepts "" as its arguments, as some models send."""
    @tool
    def now() -> str:
        return "noon"

    assert await now.invoke("") == "noon"


async def test_async_tool_is_awaited() -> None:
    """An async function's result is awaited."""
    @tool
    async def slow_add(a: int, b: int) -> int:
        await asyncio.sleep(0)
        return a + b

    assert slow_add.is_async
    assert await slow_add.invoke({"a": 1, "b": 2}) == 3


async def test_blocking_tool_runs_in_a_thread() -> None:
    """blocking=True runs a sync function off the event loop's thread."""
    @tool(blocking=True)
    def where() -> int:
        return threading.get_ident()

    assert await where.invoke({}) != threading.get_ident()


async def test_sync_tool_runs_inline() -> None:
    """A sync tool without blocking runs on the event loop's thread."""
    @tool
    def where() -> int:
        return threading.get_ident()

    assert await where.invoke({}) == threading.get_ident()


async def test_partial_of_async_function() -> None:
    """A functools.partial of an async function is a tool whose result is awaited."""
    async def scale(factor: int, n: int) -> int:
        return factor * n

    made = FunctionTool.from_function(functools.partial(scale, 10), name="scale")
    assert made.parameters["required"] == ["n"]
    assert await made.invoke({"n": 3}) == 30


# --- results -------------------------------------------------------------------------


def test_format_tool_result() -> None:
    """Strings pass through, models become JSON, other values JSON with str fallback."""
    assert format_tool_result("plain") == "plain"
    assert json.loads(format_tool_result(Point(x=1))) == {"x": 1, "y": 0}
    assert json.loads(format_tool_result({"n": 1, "ok": True})) == {"n": 1, "ok": True}
    assert json.loads(format_tool_result([date(2024, 1, 2), Point(x=3)])) == [
        "2024-01-02", {"x": 3, "y": 0}]
    assert format_tool_result(None) == "null"
