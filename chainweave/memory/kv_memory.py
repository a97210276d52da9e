"""Key-value items kept in the process's memory: :class:`InMemoryStore`."""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from cachetools import Cache, LRUCache

from chainweave.errors import InputValidationError
from chainweave.memory.kv import (
    Item,
    Namespace,
    check_clock,
    check_key,
    check_namespace,
    check_page,
    check_put,
    load_item,
)

__all__ = ["InMemoryStore"]

_Address = tuple[tuple[str, ...], str]


class _Entry(NamedTuple):
    """A stored value as JSON text, so every read hands out a fresh copy."""

    text: str
    created_at: float
    updated_at: float
    expires_at: float | None


class InMemoryStore:
    """A :class:`~chainweave.memory.kv.KeyValueStore` in a dict, for one process.

    Nothing survives the process, and processes do not share it. Every method runs
    without awaiting anything, so concurrent tasks on one event loop never see a
    half-done write; it is not meant to be shared between threads. Listing sorts the
    matching items, so it costs O(n log n) in the items held.

    Args:
        max_items: The most items kept; past it the least recently used one (put or
            got) is dropped.
        clock: The time in unix seconds, for timestamps and ``ttl``; inject one in tests.

    Raises:
        InputValidationError: An argument is out of range.
    """

    def __init__(self, *, max_items: int = 100_000,
                 clock: Callable[[], float] = time.time) -> None:
        if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1:
            raise InputValidationError(
                f"InMemoryStore: max_items must be a positive integer, got {max_items!r}",
                field="max_items")
        check_clock("InMemoryStore", clock)
        self.max_items = max_items
        self._clock = clock
        self._items: LRUCache[_Address, _Entry] = LRUCache(maxsize=max_items)

    def __repr__(self) -> str:
        return f"InMemoryStore(items={len(self._items)}, max_items={self.max_items})"

    async def put(self, namespace: Namespace, key: str, value: Any, *,
                  ttl: float | None = None) -> Item:
        """Store ``value`` under ``namespace`` and ``key`` (see the protocol)."""
        labels, key, text, seconds = check_put("InMemoryStore.put", namespace, key, value, ttl)
        now = self._clock()
        old = self._live((labels, key), now)
        entry = _Entry(text, now if old is None else old.created_at, now,
                       None if seconds is None else now + seconds)
        self._items[(labels, key)] = entry
        return load_item(labels, key, text, entry.created_at, entry.updated_at)

    async def get(self, namespace: Namespace, key: str) -> Item | None:
        """The item under ``namespace`` and ``key``, or ``None``."""
        labels = check_namespace("InMemoryStore.get", namespace)
        key = check_key("InMemoryStore.get", key)
        entry = self._live((labels, key), self._clock())
        if entry is None:
            return None
        return load_item(labels, key, entry.text, entry.created_at, entry.updated_at)

    async def delete(self, namespace: Namespace, key: str) -> bool:
        """Remove the item; ``True`` when there was one."""
        labels = check_namespace("InMemoryStore.delete", namespace)
        key = check_key("InMemoryStore.delete", key)
        entry = self._items.pop((labels, key), None)
        return entry is not None and not _expired(entry, self._clock())

    async def list(self, prefix: Namespace = (), *, limit: int | None = None,
                   offset: int = 0) -> builtins.list[Item]:
        """Every item under ``prefix`` (whole labels), ordered by namespace then key."""
        labels = check_namespace("InMemoryStore.list", prefix, field="prefix",
                                 allow_empty=True)
        check_page("InMemoryStore.list", limit, offset)
        chosen = self._matching(labels)[offset:]
        if limit is not None:
            chosen = chosen[:limit]
        return [load_item(ns, key, entry.text, entry.created_at, entry.updated_at)
                for (ns, key), entry in chosen]

    async def namespaces(self, prefix: Namespace = ()) -> builtins.list[tuple[str, ...]]:
        """The namespaces holding items under ``prefix``, sorted."""
        labels = check_namespace("InMemoryStore.namespaces", prefix, field="prefix",
                                 allow_empty=True)
        return sorted({ns for (ns, _), _ in self._matching(labels)})

    async def aclose(self) -> None:
        """Nothing to release: the store stays usable and keeps its items."""

    def _live(self, address: _Address, now: float) -> _Entry | None:
        """The entry (marked as used), or None; an expired one is dropped."""
        entry = self._items.get(address)
        if entry is not None and _expired(entry, now):
            del self._items[address]
            return None
        return entry

    def _matching(self, prefix: tuple[str, ...]) -> builtins.list[tuple[_Address, _Entry]]:
        """The live entries under ``prefix``, sorted; listing is not a use."""
        now, size = self._clock(), len(prefix)
        found: builtins.list[tuple[_Address, _Entry]] = []
        for address in builtins.list(self._items):
            entry: _Entry = Cache.__getitem__(self._items, address)
            if _expired(entry, now):
                del self._items[address]
            elif address[0][:size] == prefix:
                found.append((address, entry))
        found.sort(key=lambda pair: pair[0])
        return found


def _expired(entry: _Entry, now: float) -> bool:
    return entry.expires_at is not None and now >= entry.expires_at
