"""Conversations kept in the process's memory: :class:`InMemoryMemory`."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cachetools import Cache, LRUCache

from chainweave.errors import InputValidationError
from chainweave.memory.base import (
    StoredMessage,
    check_messages,
    check_metadata,
    check_session_id,
    check_window,
    select_recent,
)
from chainweave.types import Message

__all__ = ["InMemoryMemory"]


class _Session:
    """One conversation: its messages, the next ``seq`` and when it was last written."""

    __slots__ = ("messages", "next_seq", "touched")

    def __init__(self, now: float) -> None:
        self.messages: list[StoredMessage] = []
        self.next_seq = 1
        self.touched = now


class InMemoryMemory:
    """A :class:`~chainweave.memory.ConversationMemory` in a dict, for one process.

    Nothing survives the process, and processes do not share it. One store may be
    shared by tasks and by threads (each with its own event loop, as ``run_sync``
    gives them): a lock, never held across an ``await``, makes every call see and
    leave the store whole.

    Args:
        max_sessions: The most sessions kept; past it the least recently used one
            (read or written) is dropped.
        max_messages: Keep only the newest this many messages per session.
        ttl: Seconds a message is kept: older ones are no longer returned and are
            dropped when next seen. A session nobody wrote (or cleared) for ``ttl``
            seconds is dropped whole, ``seq`` numbering included.
        clock: The time in unix seconds; inject one in tests.

    Raises:
        InputValidationError: An argument is out of range.
    """

    def __init__(self, *, max_sessions: int = 10_000, max_messages: int | None = None,
                 ttl: float | None = None, clock: Callable[[], float] = time.time) -> None:
        _check_count("max_sessions", max_sessions, optional=False)
        _check_count("max_messages", max_messages, optional=True)
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float)
                                or not math.isfinite(ttl) or ttl <= 0):
            raise InputValidationError(
                f"InMemoryMemory: ttl must be a number of seconds > 0 or None, got {ttl!r}",
                field="ttl")
        if not callable(clock):
            raise InputValidationError(
                f"InMemoryMemory: clock must be a callable, got {clock!r}", field="clock")
        self.max_sessions = max_sessions
        self.max_messages = max_messages
        self.ttl = ttl
        self._clock = clock
        self._sessions: LRUCache[str, _Session] = LRUCache(maxsize=max_sessions)
        # Guards _sessions and every _Session in it (cachetools caches are not
        # thread-safe). Only plain, await-free code runs while it is held.
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        with self._lock:
            count = len(self._sessions)
        return f"InMemoryMemory(sessions={count}, max_sessions={self.max_sessions})"

    async def append(self, session_id: str, messages: Sequence[Message | Mapping[str, Any]],
                     *, metadata: Mapping[str, Any] | None = None) -> list[StoredMessage]:
        """Add ``messages`` to the end of the session, all or none (see the protocol)."""
        session_id = check_session_id("InMemoryMemory.append", session_id)
        checked = check_messages("InMemoryMemory.append", messages)
        meta = check_metadata("InMemoryMemory.append", metadata)
        if not checked:
            return []
        with self._lock:
            stored = self._add(session_id, checked, meta)
        return [item.model_copy(deep=True) for item in stored]

    async def history(self, session_id: str, *, limit: int | None = None,
                      max_tokens: int | None = None) -> list[StoredMessage]:
        """The session's messages, oldest first, within ``limit`` and ``max_tokens``."""
        session_id = check_session_id("InMemoryMemory.history", session_id)
        check_window("InMemoryMemory.history", limit, max_tokens)
        with self._lock:
            session = self._live(session_id, self._clock())
            if session is None:
                return []
            chosen = select_recent(session.messages, limit=limit, max_tokens=max_tokens)
        # Stored items are frozen and never changed in place: copy outside the lock.
        return [item.model_copy(deep=True) for item in chosen]

    async def clear(self, session_id: str) -> None:
        """Drop the session's messages; it stays listed and its ``seq`` keeps counting."""
        session_id = check_session_id("InMemoryMemory.clear", session_id)
        with self._lock:
            now = self._clock()
            session = self._live(session_id, now)
            if session is not None:
                session.messages.clear()
                session.touched = now

    async def delete(self, session_id: str) -> None:
        """Drop the session entirely."""
        session_id = check_session_id("InMemoryMemory.delete", session_id)
        with self._lock:
            self._sessions.pop(session_id, None)

    async def sessions(self) -> list[str]:
        """The ids of the live sessions, sorted (listing does not count as a use)."""
        with self._lock:
            if self.ttl is not None:
                now = self._clock()
                for session_id in list(self._sessions):
                    if self._expired(_peek(self._sessions, session_id).touched, now):
                        del self._sessions[session_id]
            return sorted(self._sessions)

    async def aclose(self) -> None:
        """Nothing to release: the store stays usable and keeps its sessions."""

    def _add(self, session_id: str, messages: list[Message],
             metadata: dict[str, Any]) -> list[StoredMessage]:
        """Store ``messages`` at the end of the session (call with the lock held)."""
        now = self._clock()
        session = self._live(session_id, now)
        if session is None:
            session = self._sessions[session_id] = _Session(now)
        stored = [StoredMessage(message=message, metadata=metadata, timestamp=now,
                                seq=session.next_seq + index)
                  for index, message in enumerate(messages)]
        session.next_seq += len(stored)
        session.touched = now
        session.messages.extend(stored)
        if self.max_messages is not None and len(session.messages) > self.max_messages:
            del session.messages[:-self.max_messages]
        return stored

    def _live(self, session_id: str, now: float) -> _Session | None:
        """The session (marked as used) without its expired messages; None if gone.

        Call with the lock held.
        """
        session = self._sessions.get(session_id)
        if session is None or self.ttl is None:
            return session
        if self._expired(session.touched, now):
            del self._sessions[session_id]
            return None
        messages = session.messages
        keep = 0
        while keep < len(messages) and self._expired(messages[keep].timestamp, now):
            keep += 1
        if keep:
            del messages[:keep]
        return session

    def _expired(self, when: float, now: float) -> bool:
        return self.ttl is not None and now - when > self.ttl


def _peek(cache: LRUCache[str, _Session], key: str) -> _Session:
    """``cache[key]`` without marking it as recently used."""
    session: _Session = Cache.__getitem__(cache, key)
    return session


def _check_count(name: str, value: object, *, optional: bool) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        allowed = "a positive integer or None" if optional else "a positive integer"
        raise InputValidationError(f"InMemoryMemory: {name} must be {allowed}, got {value!r}",
                                   field=name)
