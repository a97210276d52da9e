"""The cassette format behind :class:`~chainweave.testing.RecordingModel` and ``ReplayModel``.

A cassette is a JSONL file, one interaction a line, appended as calls finish::

    {"v": 1, "kind": "chat", "hash": "<sha256>", "request": {...}, "response": {...}}
    {"v": 1, "kind": "chat", "hash": "<sha256>", "request": {...}, "error": {...}}
    {"v": 1, "kind": "stream", "hash": "<sha256>", "request": {...},
     "chunks": [{...}, ...], "complete": true}

A stream line has ``"error"`` when the stream failed after its chunks, and
``"complete": false`` without an error when its consumer stopped reading early.
Strings are redacted before they are written, so a key never lands in a cassette.
Nothing is ever pickled: errors are stored as their class name and fields and rebuilt
only as classes of :mod:`chainweave.errors`.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from chainweave import errors
from chainweave._internal.redact import redact, redact_value
from chainweave.errors import ChainweaveError, ConfigurationError, ExecutionError
from chainweave.types import ChatRequest, ChatResponse, StreamChunk

FORMAT_VERSION = 1
VOLATILE_FIELDS = frozenset({"request_id", "metadata", "timeout"})
"""Request fields left out of the request hash: they never change what a model answers."""

Kind = Literal["chat", "stream"]

_ERROR_FIELDS = ("status_code", "retryable", "retry_after", "provider", "model", "node",
                 "field", "details")


def _error_classes() -> dict[str, type[ChainweaveError]]:
    found = (getattr(errors, name) for name in errors.__all__)
    return {cls.__name__: cls for cls in found
            if isinstance(cls, type) and issubclass(cls, ChainweaveError)}


_ERROR_CLASSES = _error_classes()


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: one spelling for one value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_hash(request: ChatRequest) -> str:
    """The SHA-256 (hex) of a request's canonical JSON, volatile fields left out.

    The request is dumped in JSON mode by field alias with fields at their default
    value omitted (so a field added to :class:`~chainweave.types.ChatRequest` later
    does not change existing hashes), without ``request_id``, ``metadata`` and
    ``timeout``, then written with sorted keys and no spaces. Any change to a field
    that is sent to a model changes the hash.
    """
    fields = request.model_dump(mode="json", by_alias=True, exclude_defaults=True,
                                exclude=set(VOLATILE_FIELDS))
    return hashlib.sha256(canonical_json(fields).encode()).hexdigest()


def first_user_text(request: ChatRequest, limit: int = 60) -> str:
    """The first user message's text, cut to ``limit`` characters, for error messages."""
    text = next((m.text for m in request.messages if m.role == "user"), "")
    return text if len(text) <= limit else text[:limit - 3] + "..."


# --- writing ---------------------------------------------------------------------------


def new_record(kind: Kind, request: ChatRequest) -> dict[str, Any]:
    """The start of a cassette line: version, kind, hash and the request as sent."""
    return {
        "v": FORMAT_VERSION, "kind": kind, "hash": request_hash(request),
        "request": request.model_dump(mode="json", by_alias=True, exclude_defaults=True,
                                      exclude={"metadata"}),
    }


def dump_model(value: ChatResponse | StreamChunk) -> dict[str, Any]:
    """A response or chunk as the JSON a cassette holds (defaults left out)."""
    return value.model_dump(mode="json", exclude_defaults=True)


def encode_error(exc: Exception) -> dict[str, Any]:
    """An exception as its class name, message and structured fields."""
    data: dict[str, Any] = {"type": type(exc).__name__, "message": redact(str(exc))}
    if isinstance(exc, ChainweaveError):
        data["message"] = exc.message
        data.update({name: getattr(exc, name) for name in _ERROR_FIELDS})
        if isinstance(exc, errors.InputValidationError):
            data["errors"] = exc.errors
    return data



_locks_guard = threading.Lock()
_locks: dict[Path, threading.Lock] = {}


def _lock_for(path: Path) -> threading.Lock:
    key = path.resolve()
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one record as one flushed line; safe across threads and tasks.

    Values JSON cannot hold (in error ``details``, say) are written as their ``str()``.
    """
    line = json.dumps(redact_value(record), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, default=str)
    with _lock_for(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()


# --- reading ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Interaction:
    """One recorded call, parsed and validated."""

    kind: Kind
    hash: str
    model: str | None
    line: int
    response: ChatResponse | None = None
    chunks: tuple[StreamChunk, ...] = ()
    error: dict[str, Any] | None = None
    complete: bool = True


def decode_error(data: dict[str, Any]) -> Exception:
    """Rebuild a recorded error: the same chainweave class with the same fields.

    An error of another class (a bug in a wrapped model, say) comes back as an
    :class:`~chainweave.errors.ExecutionError` naming the recorded type; classes are
    never looked up anywhere else.
    """
    name, message = str(data["type"]), str(data["message"])
    cls = _ERROR_CLASSES.get(name)
    if cls is None:
        return ExecutionError(f"replayed {name}: {message}", details={"recorded_type": name})
    context = {field: data.get(field) for field in _ERROR_FIELDS}
    if issubclass(cls, errors.InputValidationError):
        return cls(message, errors=data.get("errors"), **context)
    return cls(message, **context)


def _parse(line: str, number: int) -> Interaction:
    data = json.loads(line)
    if not isinstance(data, dict):
        raise ValueError("a line must hold a JSON object")
    if data.get("v") != FORMAT_VERSION:
        raise ValueError(f"unknown format version {data.get('v')!r}")
    kind, digest, error = data.get("kind"), data.get("hash"), data.get("error")
    if kind not in ("chat", "stream"):
        raise ValueError(f"unknown kind {kind!r}")
    if not isinstance(digest, str):
        raise ValueError("no request hash")
    if error is not None and not (isinstance(error, dict) and "type" in error
                                  and "message" in error):
        raise ValueError("an error needs a type and a message")
    request = data.get("request")
    model = request.get("model") if isinstance(request, dict) else None
    common: dict[str, Any] = {"kind": kind, "hash": digest, "model": model, "line": number,
                              "error": error}
    if kind == "chat":
        response = None if error is not None else ChatResponse.model_validate(data["response"])
        return Interaction(response=response, **common)
    chunks = tuple(StreamChunk.model_validate(chunk) for chunk in data["chunks"])
    return Interaction(chunks=chunks, complete=bool(data.get("complete", error is None)),
                       **common)


def _reason(exc: Exception) -> str:
    if isinstance(exc, ChainweaveError):
        return exc.message
    if isinstance(exc, KeyError):
        return f"no {exc.args[0]!r} field"
    return str(exc)


def load_cassette(path: Path) -> list[Interaction]:
    """Every interaction in ``path``, in file order.

    Raises:
        ConfigurationError: when the file is missing or unreadable, or a line is not a
            cassette record; the message names the file and the line.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read cassette {path}: {exc}",
                                 details={"path": str(path)}) from None
    interactions: list[Interaction] = []
    # Split on "\n" only: JSON escapes it in strings, but not U+2028 and friends, which
    # str.splitlines() would also break on.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            interactions.append(_parse(line, number))
        except (ValueError, KeyError, TypeError, ChainweaveError) as exc:
            reason = _reason(exc)
            raise ConfigurationError(
                f"{path}:{number}: not a cassette record: {reason}",
                details={"path": str(path), "line": number},
            ) from None
    return interactions
