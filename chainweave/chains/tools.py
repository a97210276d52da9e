"""Python functions as tools a model can call: :class:`FunctionTool` and ``@tool``.

A tool's JSON schema comes from the function's type hints through pydantic, so what
pydantic validates is exactly what the schema promises: defaults, ``Literal`` and enum
choices, lists, optional values, nested pydantic models, and
``Annotated[int, Field(description=..., ge=0)]`` constraints. The docstring's first
paragraph describes the tool, and its Google-style ``Args:`` section describes each
parameter the annotations left undescribed.

Arguments a model sends are validated in pydantic's lax mode (``"3"`` for an ``int``
becomes ``3``) before the function runs; unknown arguments are refused, so the model
hears about a misspelt name instead of having it silently dropped.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import re
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any, overload

from pydantic import BaseModel, ConfigDict, Field, PydanticUserError, ValidationError, create_model
from pydantic.fields import FieldInfo

from chainweave.chains.events import jsonable
from chainweave.chains.transform import is_async_callable
from chainweave.errors import InputValidationError
from chainweave.types import Tool

__all__ = ["FunctionTool", "format_tool_result", "tool"]

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Returns?|Raises|Yields?|Examples?|"
                      r"Notes?|Attributes|See Also|Warnings?):\s*$")
_ARGS_SECTION = re.compile(r"^(\s*)(Args|Arguments|Parameters):\s*$")
_ARG_LINE = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
# Field names inside the arguments model are p0, p1, ... with the parameter's name as the
# alias, so no parameter name can collide with a pydantic attribute (json, copy, model_*).
_CONFIG = ConfigDict(extra="forbid", protected_namespaces=())
_REFUSED_KINDS: dict[inspect._ParameterKind, str] = {
    inspect.Parameter.POSITIONAL_ONLY: "positional-only",
    inspect.Parameter.VAR_POSITIONAL: "*args",
    inspect.Parameter.VAR_KEYWORD: "**kwargs",
}


class FunctionTool:
    """A Python function (sync or async) that a model can call, with its JSON schema.

    Args:
        fn: The function. Its parameters are the tool's arguments, passed by name.
        name: The tool's name (``^[A-Za-z0-9_-]{1,64}$``); the function's name when
            left out.
        description: What the tool does, for the model; the docstring's first
            paragraph when left out.
        blocking: ``fn`` is synchronous and blocks (I/O, heavy CPU): run it in a worker
            thread so the event loop keeps serving other work. Left False, a sync
            function runs inline, which is fastest for quick functions.

    Raises:
        InputValidationError: ``fn`` is not callable, has ``*args``, ``**kwargs`` or
            positional-only parameters, has type hints pydantic cannot build a schema
            from, or the name is not a valid tool name; or an async function is
            declared blocking.
    """

    __slots__ = ("_fields", "blocking", "description", "fn", "is_async", "model", "name",
                 "parameters", "spec")

    def __init__(self, fn: Callable[..., Any], *, name: str | None = None,
                 description: str | None = None, blocking: bool = False) -> None:
        if not callable(fn):
            raise InputValidationError(f"tool: fn must be callable, got {fn!r}", field="fn")
        self.name = _tool_name(fn, name)
        self.fn = fn
        self.is_async = is_async_callable(fn)
        if blocking and self.is_async:
            raise InputValidationError(f"tool {self.name!r}: blocking=True is for sync "
                                       "functions; this one is async", field="blocking")
        self.blocking = blocking
        summary, arg_docs = _parse_docstring(inspect.getdoc(fn) or "")
        self.description = summary if description is None else description
        self.model, self._fields = _arguments_model(self.name, fn)
        self.parameters = _schema(self.name, self.model, arg_docs)
        self.spec = Tool(name=self.name, description=self.description,
                         parameters=self.parameters)

    @classmethod
    def from_function(cls, fn: Callable[..., Any], *, name: str | None = None,
                      description: str | None = None, blocking: bool = False) -> FunctionTool:
        """The tool for ``fn`` (the same as the constructor; see :class:`FunctionTool`)."""
        return cls(fn, name=name, description=description, blocking=blocking)

    def __repr__(self) -> str:
        return f"FunctionTool(name={self.name!r})"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function directly, unvalidated, so a decorated function stays usable."""
        return self.fn(*args, **kwargs)

    async def invoke(self, arguments: str | Mapping[str, Any]) -> Any:
        """Validate ``arguments`` (JSON text or a mapping) and call the function.

        Returns:
            What the function returns (awaited when it is async).

        Raises:
            InputValidationError: The arguments are not a JSON object or do not
                validate; ``field`` names the first bad argument, ``errors`` lists
                every problem, and so does the message.
        """
        values = self.validate(arguments)
        if self.is_async:
            return await self.fn(**values)
        if self.blocking:
            result = await asyncio.to_thread(self.fn, **values)
        else:
            result = self.fn(**values)
        return await result if inspect.isawaitable(result) else result

    def validate(self, arguments: str | Mapping[str, Any]) -> dict[str, Any]:
        """``arguments`` validated into the keyword arguments of the function.

        Raises:
            InputValidationError: As for :meth:`invoke`.
        """
        data = self._decode(arguments)
        try:
            validated = self.model.model_validate(data)
        except ValidationError as exc:
            raise self._invalid(exc) from None
        return {name: getattr(validated, field) for field, name in self._fields}

    def _decode(self, arguments: str | Mapping[str, Any]) -> Mapping[str, Any]:
        data: Any = arguments
        if isinstance(arguments, str):
            try:
                data = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError as exc:
                raise InputValidationError(
                    f"tool {self.name!r}: the arguments are not valid JSON: {exc}",
                    field="arguments") from None
        if not isinstance(data, Mapping):
            raise InputValidationError(
                f"tool {self.name!r}: the arguments must be a JSON object, got "
                f"{type(data).__name__}", field="arguments")
        return data

    def _invalid(self, exc: ValidationError) -> InputValidationError:
        errors = [{"field": ".".join(map(str, err["loc"])) or "arguments",
                   "message": err["msg"], "type": err["type"]}
                  for err in exc.errors(include_url=False, include_input=False)]
        problems = "; ".join(f"{err['field']}: {err['message']}" for err in errors)
        return InputValidationError(f"tool {self.name!r}: invalid arguments: {problems}",
                                    errors=errors, field=errors[0]["field"])


@overload
def tool(fn: Callable[..., Any], /) -> FunctionTool: ...


@overload
def tool(*, name: str | None = None, description: str | None = None,
         blocking: bool = False) -> Callable[[Callable[..., Any]], FunctionTool]: ...


def tool(fn: Callable[..., Any] | None = None, /, *, name: str | None = None,
         description: str | None = None, blocking: bool = False,
         ) -> FunctionTool | Callable[[Callable[..., Any]], FunctionTool]:
    """Make a :class:`FunctionTool` of a function: ``@tool`` or ``@tool(name=...)``.

    Args:
        fn: The function, when used bare as ``@tool``.
        name: The tool's name; the function's name when left out.
        description: What the tool does; the docstring's summary when left out.
        blocking: Run a sync function in a worker thread.

    Raises:
        InputValidationError: As for :class:`FunctionTool`.
    """
    def build(function: Callable[..., Any]) -> FunctionTool:
        return FunctionTool(function, name=name, description=description, blocking=blocking)

    return build(fn) if fn is not None else build


def format_tool_result(value: Any) -> str:
    """A tool's result as the text sent back to the model.

    A string is sent as it is, a pydantic model as its JSON, anything else as JSON
    (values JSON cannot hold, such as datetimes, as their ``str``).
    """
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return json.dumps(value, ensure_ascii=False, default=jsonable)


def _tool_name(fn: Callable[..., Any], name: str | None) -> str:
    target = fn.func if isinstance(fn, functools.partial) else fn
    chosen = name if name is not None else getattr(target, "__name__", None)
    if not isinstance(chosen, str) or not _NAME.match(chosen):
        hint = "" if name is not None else "; pass name="
        raise InputValidationError(
            f"tool name {chosen!r} must be 1-64 letters, digits, '_' or '-'{hint}",
            field="name")
    return chosen


def _type_hints(name: str, fn: Callable[..., Any]) -> dict[str, Any]:
    target = fn.func if isinstance(fn, functools.partial) else fn
    if not inspect.isroutine(target):
        target = type(target).__call__
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception as exc:  # a NameError for a type the function's module cannot see
        raise InputValidationError(f"tool {name!r}: its type hints do not resolve: {exc}",
                                   field="fn") from None


def _arguments_model(name: str, fn: Callable[..., Any],
                     ) -> tuple[type[BaseModel], list[tuple[str, str]]]:
    """The pydantic model of ``fn``'s parameters, and (model field, parameter) pairs."""
    hints = _type_hints(name, fn)
    definitions: dict[str, Any] = {}
    fields: list[tuple[str, str]] = []
    for index, parameter in enumerate(inspect.signature(fn).parameters.values()):
        kind = _REFUSED_KINDS.get(parameter.kind)
        if kind is not None:
            raise InputValidationError(
                f"tool {name!r}: parameter {parameter.name!r} is {kind}; a tool's "
                "arguments are passed by name", field=parameter.name)
        annotation = hints.get(parameter.name, Any)
        default = parameter.default
        if isinstance(default, FieldInfo):
            annotation, default = Annotated[annotation, default], inspect.Parameter.empty
        field = f"p{index}"
        definitions[field] = (annotation, Field(
            ... if default is inspect.Parameter.empty else default, alias=parameter.name))
        fields.append((field, parameter.name))
    try:
        model = create_model(name, __config__=_CONFIG, **definitions)
    except PydanticUserError as exc:
        raise _no_schema(name, exc) from None
    return model, fields


def _schema(name: str, model: type[BaseModel], arg_docs: Mapping[str, str]) -> dict[str, Any]:
    try:
        schema = model.model_json_schema()
    except PydanticUserError as exc:
        raise _no_schema(name, exc) from None
    schema.pop("title", None)
    for name, prop in schema.get("properties", {}).items():
        if name in arg_docs and "description" not in prop:
            prop["description"] = arg_docs[name]
    return schema


def _no_schema(name: str, exc: Exception) -> InputValidationError:
    return InputValidationError(f"tool {name!r}: no JSON schema can be built from its type "
                                f"hints: {exc}", field="fn")


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The summary (first paragraph) and the ``Args:`` descriptions of a docstring."""
    lines = doc.splitlines()
    summary: list[str] = []
    for line in lines:
        if not line.strip() or _SECTION.match(line):
            break
        summary.append(line.strip())
    return " ".join(summary), _arg_docs(lines)


def _arg_docs(lines: list[str]) -> dict[str, str]:
    docs: dict[str, str] = {}
    start = next((i for i, line in enumerate(lines) if _ARGS_SECTION.match(line)), None)
    if start is None:
        return docs
    header = len(lines[start]) - len(lines[start].lstrip())
    entry: int | None = None
    current: str | None = None
    for line in lines[start + 1:]:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if indent <= header:
            break
        match = _ARG_LINE.match(line.strip())
        if match and (entry is None or indent <= entry):
            entry, current = indent, match.group(1)
            docs[current] = match.group(2).strip()
        elif current is not None:
            docs[current] = f"{docs[current]} {line.strip()}".strip()
    return docs
