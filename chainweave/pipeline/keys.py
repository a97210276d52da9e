"""Stable fingerprints of chat requests, the keys of the response cache and idempotency store.

A fingerprint is the SHA-256 (hex) of a request's canonical JSON: every field that is
sent to a model (model, messages, generation parameters, tools, ``tool_choice``,
``response_format``, ``extra_body``) and none of the fields that travel with a request
without changing the answer (``request_id``, ``user``, ``timeout``, ``metadata``).

Canonical means one spelling for one value: keys sorted at every depth, no spaces,
ASCII escapes, fields at their default value left out (so a field added to
:class:`~chainweave.types.ChatRequest` later does not change existing fingerprints), and
tool-call ``arguments`` compared as the JSON they hold rather than as text. Python's
``json`` writes floats as their shortest round-tripping form, so the same request gives
the same fingerprint in every process and on every supported Python version.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final

from chainweave.pipeline.base import Call
from chainweave.types import ChatRequest

__all__ = ["FINGERPRINT_VERSION", "call_fingerprint", "request_fingerprint"]

FINGERPRINT_VERSION: Final = 1
"""Bumped whenever the canonical form changes, so old and new keys never collide."""

_EXCLUDED: Final[set[str]] = {"request_id", "user", "timeout", "metadata"}
_PREFIX: Final = f"chainweave.request.v{FINGERPRINT_VERSION}\n".encode()
# Built once: ``json.dumps`` with options builds a new encoder on every call.
_CANONICAL: Final = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def request_fingerprint(request: ChatRequest) -> str:
    """The hex SHA-256 of ``request``'s canonical JSON, without its volatile fields.

    Two requests have the same fingerprint exactly when they ask a model the same thing:
    the order of keys in nested dicts (tool schemas, ``extra_body``, tool-call arguments)
    does not matter; ``request_id``, ``user``, ``timeout`` and ``metadata`` are left out.

    Raises:
        InputValidationError: when ``request`` is not a ChatRequest.
    """
    if not isinstance(request, ChatRequest):
        from chainweave.errors import InputValidationError

        raise InputValidationError(
            f"request must be a ChatRequest, got {type(request).__name__}", field="request")
    fields = request.model_dump(mode="json", by_alias=True, exclude_defaults=True,
                                exclude=_EXCLUDED)
    if any("tool_calls" in message for message in fields["messages"]):
        _canonical_arguments(fields["messages"])
    text = _CANONICAL.encode(fields)
    return hashlib.sha256(_PREFIX + text.encode("ascii")).hexdigest()


_MEMO: Final = "chainweave.fingerprint"


def call_fingerprint(request: ChatRequest, call: Call) -> str:
    """:func:`request_fingerprint`, worked out once per pipeline call.

    Idempotency and the cache both key on the fingerprint; within one call they see the
    same request object, so the second stage reuses the first one's result.
    """
    memo = call.annotations.get(_MEMO)
    if memo is not None and memo[0] is request:
        return str(memo[1])
    fingerprint = request_fingerprint(request)
    call.annotations[_MEMO] = (request, fingerprint)
    return fingerprint


def _canonical_arguments(messages: list[dict[str, Any]]) -> None:
    """Replace each tool call's ``arguments`` text by the JSON value it holds.

    ``{"json": value}`` for arguments that parse and ``{"text": raw}`` for those that do
    not, so the JSON string ``'"x"'`` and the bare text ``'x'`` stay apart.
    """
    for message in messages:
        for call in message.get("tool_calls") or ():
            # Left out as a default, the arguments are "{}".
            raw = call.get("arguments", "{}")
            try:
                call["arguments"] = {"json": json.loads(raw)}
            except ValueError:
                call["arguments"] = {"text": raw}
