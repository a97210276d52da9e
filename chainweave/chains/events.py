"""What ``Chain.stream`` yields: typed events for chain starts and ends, tokens and errors.

Every event names the run, the chain it came from and that chain's ``path`` (the names
of the chains it runs inside, outermost first), so a consumer can tell a nested
chain's events from its parent's. ``to_dict()`` gives a JSON-ready form for SSE.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeAlias

from pydantic import BaseModel

from chainweave.errors import ChainweaveError
from chainweave.types import StreamError, Usage

__all__ = ["ChainEnd", "ChainEvent", "ChainStart", "ErrorEvent", "TokenEvent", "jsonable"]


@dataclass(frozen=True, slots=True)
class _Event:
    type: ClassVar[str]

    run_id: str
    chain: str
    path: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The event as plain JSON-ready data, with its ``type``."""
        return {"type": self.type, "run_id": self.run_id, "chain": self.chain,
                "path": list(self.path), **self._fields()}

    def _fields(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class ChainStart(_Event):
    """A chain began, with the inputs it was given."""

    type: ClassVar[Literal["chain_start"]] = "chain_start"
    inputs: dict[str, Any] = field(default_factory=dict)

    def _fields(self) -> dict[str, Any]:
        return {"inputs": jsonable(self.inputs)}


@dataclass(frozen=True, slots=True)
class ChainEnd(_Event):
    """A chain finished: its outputs, the usage of its LLM calls and how long it took."""

    type: ClassVar[Literal["chain_end"]] = "chain_end"
    outputs: dict[str, Any] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    elapsed_ms: float = 0.0

    def _fields(self) -> dict[str, Any]:
        return {"outputs": jsonable(self.outputs), "usage": self.usage.model_dump(),
                "elapsed_ms": self.elapsed_ms}


@dataclass(frozen=True, slots=True)
class TokenEvent(_Event):
    """A piece of text streamed by an LLM step."""

    type: ClassVar[Literal["token"]] = "token"
    text: str = ""

    def _fields(self) -> dict[str, Any]:
        return {"text": self.text}


@dataclass(frozen=True, slots=True)
class ErrorEvent(_Event):
    """A chain failed. Sent once, by the chain the error came from.

    ``error`` is the structured form (type, code, message; secrets redacted);
    ``exception`` the exception itself, which ``stream`` raises after this event
    unless an enclosing chain handles it (a parallel chain that collects errors, a
    fallback).
    """

    type: ClassVar[Literal["error"]] = "error"
    error: StreamError | None = None
    exception: BaseException | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, run_id: str, chain: str, path: tuple[str, ...],
           exc: BaseException) -> ErrorEvent:
        """The event for ``exc``, raised in ``chain``."""
        return cls(run_id, chain, path, error=StreamError.from_exception(exc), exception=exc)

    def _fields(self) -> dict[str, Any]:
        error = self.error.model_dump(exclude_none=True) if self.error else {}
        if isinstance(self.exception, ChainweaveError) and self.exception.node:
            error["node"] = self.exception.node
        return {"error": error}


ChainEvent: TypeAlias = ChainStart | ChainEnd | TokenEvent | ErrorEvent


def jsonable(value: Any) -> Any:
    """``value`` as data ``json.dumps`` accepts: pydantic models dumped, exceptions as
    their structured error, containers walked, anything else as its ``str``."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(item) for item in value]
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, BaseException):
        return StreamError.from_exception(value).model_dump(exclude_none=True)
    return str(value)
