"""Output parsers: what a chain makes of a model's text (as is, JSON, or a pydantic model).

A parser also says how to ask for its format: a ``response_format`` for providers that
support structured output, and plain instructions for those that do not.
"""

from __future__ import annotations

import json
import re
from typing import Any, Protocol, TypeAlias, runtime_checkable

from pydantic import BaseModel, ValidationError

from chainweave.errors import InputValidationError
from chainweave.types import JsonSchemaFormat, ResponseFormat

__all__ = ["JsonParser", "OutputParser", "ParseFailure", "ParserSpec", "PydanticParser",
           "TextParser", "as_parser"]

_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*[ \t]*\n(?P<body>.*?)\n?[ \t]*```\s*$", re.DOTALL)
_SCHEMA_NAME = re.compile(r"[^A-Za-z0-9_-]")


class ParseFailure(ValueError):
    """The text did not parse; the message says why, for the model's repair round."""


@runtime_checkable
class OutputParser(Protocol):
    """Turns a model's text into a value, and says how to ask for that format."""

    def parse(self, text: str) -> Any:
        """The value; raises :class:`ParseFailure` when the text does not fit."""
        ...

    def response_format(self) -> ResponseFormat | None:
        """The structured-output format to request, or None for plain text."""
        ...

    def instructions(self) -> str | None:
        """What to tell a model without structured output, or None."""
        ...


class TextParser:
    """The text as the model wrote it."""

    def parse(self, text: str) -> str:
        """``text`` unchanged."""
        return text

    def response_format(self) -> None:
        """Plain text needs no format."""
        return

    def instructions(self) -> None:
        """Plain text needs no instructions."""
        return


def extract_json(text: str) -> Any:
    """The JSON value in ``text``: the whole text, a fenced block, or the outermost object.

    Raises:
        ParseFailure: No JSON value was found.
    """
    candidate = text.strip()
    fenced = _FENCE.match(candidate)
    if fenced:
        candidate = fenced["body"].strip()
    try:
        return json.loads(candidate)
    except ValueError as exc:
        first = exc
    for opener, closer in (("{", "}"), ("[", "]")):
        start, end = candidate.find(opener), candidate.rfind(closer)
        if 0 <= start < end:
            try:
                return json.loads(candidate[start:end + 1])
            except ValueError:
                continue
    raise ParseFailure(f"the reply is not valid JSON ({first})")


class JsonParser:
    """Any JSON value; asks for a JSON object where the provider supports it."""

    def parse(self, text: str) -> Any:
        """The JSON value in ``text`` (see :func:`extract_json`)."""
        return extract_json(text)

    def response_format(self) -> ResponseFormat:
        """``{"type": "json_object"}``."""
        return ResponseFormat(type="json_object")

    def instructions(self) -> str:
        """Ask for bare JSON."""
        return "Respond with a single JSON value and nothing else: no prose, no code fences."


class PydanticParser:
    """A pydantic model instance, validated from the JSON the model wrote.

    Args:
        model: The pydantic model class; its JSON schema is what the provider is asked
            to follow.
    """

    def __init__(self, model: type[BaseModel]) -> None:
        self.model = model
        self.schema = model.model_json_schema()
        self.name = _SCHEMA_NAME.sub("_", model.__name__)[:64] or "response"

    def __repr__(self) -> str:
        return f"PydanticParser({self.model.__name__})"

    def parse(self, text: str) -> BaseModel:
        """The validated instance.

        Raises:
            ParseFailure: Not JSON, or JSON that fails validation (every problem listed).
        """
        data = extract_json(text)
        try:
            return self.model.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, error['loc'])) or '(root)'}: {error['msg']}"
                for error in exc.errors())
            raise ParseFailure(f"the JSON does not match {self.model.__name__}: "
                               f"{problems}") from None

    def response_format(self) -> ResponseFormat:
        """A ``json_schema`` format with the model's schema."""
        description = (self.model.__doc__ or "").strip() or None
        return ResponseFormat(type="json_schema", json_schema=JsonSchemaFormat.model_validate(
            {"name": self.name, "schema": self.schema, "description": description}))

    def instructions(self) -> str:
        """Ask for JSON matching the schema, with the schema."""
        return ("Respond with a single JSON object that matches this JSON schema, and "
                "nothing else: no prose, no code fences.\n"
                f"{json.dumps(self.schema, separators=(',', ':'))}")


#: What a chain's ``parser`` argument accepts: None or ``"text"``, ``"json"``, a pydantic
#: model class, or any :class:`OutputParser`.
ParserSpec: TypeAlias = "str | type[BaseModel] | OutputParser | None"


def as_parser(spec: object, *, where: str) -> OutputParser:
    """The parser ``spec`` names.

    Raises:
        InputValidationError: ``spec`` is none of the accepted forms.
    """
    if spec is None or spec == "text":
        return TextParser()
    if spec == "json":
        return JsonParser()
    if isinstance(spec, type) and issubclass(spec, BaseModel):
        return PydanticParser(spec)
    if isinstance(spec, OutputParser) and not isinstance(spec, type):
        return spec
    raise InputValidationError(
        f"{where}: parser must be 'text', 'json', a pydantic model class or an output "
        f"parser, got {spec!r}", field="parser", node=where)
