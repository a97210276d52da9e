"""The conversation store interface, and the checks every backend shares.

A :class:`ConversationMemory` keeps the messages of many conversations ("sessions"),
each an ordered list of :class:`StoredMessage`. Backends (in memory today; SQLite and
Redis later) implement the same protocol and pass the same contract suite,
``tests/memory/test_conversation_contract.py``.

The rules every backend follows:

* ``append`` is all-or-nothing: every message and the metadata are checked before
  anything is written, and a bad one raises
  :class:`~chainweave.errors.InputValidationError` with nothing stored.
* A session exists from its first appended message until ``delete`` (or until a
  backend's own eviction or expiry). ``clear`` empties it but keeps it listed, and its
  ``seq`` numbers keep increasing; after ``delete`` they may start again at 1.
* Metadata is stored as JSON, so what comes back is its JSON round trip (tuples become
  lists, keys become strings).
* What a call returns is the caller's own copy: changing it never changes the store.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from pydantic import Field, ValidationError

from chainweave._internal.model import StrictModel
from chainweave.errors import InputValidationError
from chainweave.tokens import estimate_tokens
from chainweave.types import Message

__all__ = [
    "MAX_SESSION_ID_CHARS",
    "ConversationMemory",
    "StoredMessage",
    "check_messages",
    "check_metadata",
    "check_session_id",
    "check_window",
    "message_tokens",
    "select_recent",
]

#: The longest session id a backend accepts.
MAX_SESSION_ID_CHARS = 256


class StoredMessage(StrictModel):
    """One message of a conversation as the store keeps it.

    Attributes:
        message: The chat message.
        metadata: What the caller attached when appending it (JSON values).
        timestamp: When it was appended, in unix seconds.
        seq: Its position in the session: 1 for the session's first message, then
            strictly increasing (also across ``clear``).
    """

    message: Message
    metadata: dict[str, Any] = Field(default_factory=dict)
    timestamp: float
    seq: int = Field(ge=1)

    @classmethod
    def _error_from(cls, exc: ValidationError, error_context: Any) -> InputValidationError:
        error = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(map(str, error["loc"]))
        return InputValidationError(f"StoredMessage.{where}: {error['msg']}", field=where)


@runtime_checkable
class ConversationMemory(Protocol):
    """A store of conversations, each a list of messages in the order they were appended.

    Every method may raise :class:`~chainweave.errors.InputValidationError` for a bad
    argument: a session id that is not a non-empty string of at most
    :data:`MAX_SESSION_ID_CHARS` characters, a message that is not a valid
    :class:`~chainweave.types.Message`, metadata that is not JSON, or a ``limit`` or
    ``max_tokens`` that is not a positive integer.
    """

    async def append(self, session_id: str, messages: Sequence[Message | Mapping[str, Any]],
                     *, metadata: Mapping[str, Any] | None = None) -> list[StoredMessage]:
        """Add ``messages`` to the end of the session, all or none.

        Args:
            session_id: The conversation.
            messages: ``Message`` objects or message dicts (validated as ``Message``).
            metadata: JSON values attached to each of the messages.

        Returns:
            The stored messages, with their timestamps and ``seq`` numbers.
        """
        ...

    async def history(self, session_id: str, *, limit: int | None = None,
                      max_tokens: int | None = None) -> list[StoredMessage]:
        """The session's messages, oldest first; ``[]`` for an unknown session.

        Args:
            session_id: The conversation.
            limit: Keep only the newest ``limit`` messages.
            max_tokens: Keep only the newest messages whose estimated tokens (see
                :func:`message_tokens`) add up to at most this.
        """
        ...

    async def clear(self, session_id: str) -> None:
        """Drop the session's messages; the session stays listed."""
        ...

    async def delete(self, session_id: str) -> None:
        """Drop the session and its messages entirely."""
        ...

    async def sessions(self) -> list[str]:
        """The ids of the stored sessions, sorted."""
        ...

    async def aclose(self) -> None:
        """Release the store's resources (connections, files); safe to call twice."""
        ...


def message_tokens(message: Message, model: str | None = None) -> int:
    """The estimated tokens of one message: ``estimate_tokens([message], model)``."""
    return estimate_tokens([message], model)


def select_recent(items: Sequence[StoredMessage], *, limit: int | None = None,
                  max_tokens: int | None = None) -> list[StoredMessage]:
    """The newest of ``items`` (oldest first) within ``limit`` messages and ``max_tokens``.

    The token budget keeps a contiguous run of the newest messages: it stops at the
    first (going back in time) that does not fit.
    """
    start = 0 if limit is None else max(0, len(items) - limit)
    if max_tokens is not None:
        budget = max_tokens
        index = len(items)
        while index > start:
            cost = message_tokens(items[index - 1].message)
            if cost > budget:
                break
            budget -= cost
            index -= 1
        start = index
    return list(items[start:])


def check_session_id(owner: str, session_id: object) -> str:
    """``session_id`` when it is a usable session id.

    Raises:
        InputValidationError: It is not a non-empty string of at most
            :data:`MAX_SESSION_ID_CHARS` characters.
    """
    if (not isinstance(session_id, str) or not session_id
            or len(session_id) > MAX_SESSION_ID_CHARS):
        shown = (session_id[:40] + "..." if isinstance(session_id, str) and len(session_id) > 40
                 else session_id)
        raise InputValidationError(
            f"{owner}: session_id must be a non-empty string of at most "
            f"{MAX_SESSION_ID_CHARS} characters, got {shown!r}", field="session_id")
    return session_id


def check_messages(owner: str, messages: object) -> list[Message]:
    """``messages`` validated as fresh :class:`Message` objects the caller cannot change.

    Raises:
        InputValidationError: ``messages`` is not a list, or an item is not a valid
            message; ``field`` is ``messages.<index>...``.
    """
    if isinstance(messages, str | bytes | Mapping | Message) or not isinstance(messages,
                                                                               Sequence):
        raise InputValidationError(
            f"{owner}: messages must be a list of messages, got {type(messages).__name__}",
            field="messages")
    checked: list[Message] = []
    for index, item in enumerate(messages):
        try:
            if isinstance(item, Message):
                checked.append(item.model_copy(deep=True))
            elif isinstance(item, Mapping):
                checked.append(Message.model_validate(dict(item)))
            else:
                raise InputValidationError(
                    f"expected a Message or a dict, got {type(item).__name__}")
        except InputValidationError as exc:
            where = f"messages.{index}" + (f".{exc.field}" if exc.field else "")
            raise InputValidationError(f"{owner}: {where}: {exc.message}", field=where,
                                       errors=exc.errors) from None
    return checked


def check_metadata(owner: str, metadata: object) -> dict[str, Any]:
    """A private copy of ``metadata`` as it will come back: its JSON round trip.

    Raises:
        InputValidationError: It is not a mapping, or not JSON-serialisable (NaN and
            infinity included).
    """
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InputValidationError(
            f"{owner}: metadata must be a mapping, got {type(metadata).__name__}",
            field="metadata")
    try:
        text = json.dumps(dict(metadata), allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InputValidationError(f"{owner}: metadata must be JSON-serialisable: {exc}",
                                   field="metadata") from None
    copied: dict[str, Any] = json.loads(text)
    return copied


def check_window(owner: str, limit: object, max_tokens: object) -> None:
    """Check ``history``'s ``limit`` and ``max_tokens``.

    Raises:
        InputValidationError: One of them is neither None nor a positive integer.
    """
    for name, value in (("limit", limit), ("max_tokens", max_tokens)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise InputValidationError(
                f"{owner}: {name} must be a positive integer or None, got {value!r}",
                field=name)
