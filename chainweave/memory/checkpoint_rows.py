"""The row-storage interface between the checkpoint core and the checkpoint backends.

:class:`~chainweave.memory.checkpoint_core.CheckpointCore` holds the logic. A backend
stores :class:`Row` objects and answers three requests: :class:`Fetch` (one row, or a
thread's newest), :class:`Chain` (a row and the rows its delta rests on) and
:class:`Scan` (a thread's rows, newest first). The core's operations are generators
that yield these requests and return a result or a :class:`Plan`; :func:`drive` and
:func:`adrive` run them against a backend's answers, and the backend writes the plan
in one transaction.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

__all__ = [
    "Chain",
    "Fetch",
    "Ops",
    "Plan",
    "ROW_FIELDS",
    "Request",
    "Row",
    "Scan",
    "adrive",
    "drive",
    "dumps",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Row:
    """One stored checkpoint; ``seq`` (insertion order) is None until first stored."""

    thread_id: str
    checkpoint_id: str
    parent_id: str | None
    step: int
    seq: int | None
    base_id: str | None  # None: body is the state; else the delta from base_id's state
    depth: int  # deltas since the last snapshot, this one included
    chain: int  # characters of those deltas
    snap: int  # characters of that snapshot
    rev: str  # a random token renewed by every write of the row; keys the state cache
    body: str
    next: str
    writes: str
    metadata: str
    schema_version: str | None
    created_at: float


#: Row's fields in order, for backends that store them as columns or hash fields.
ROW_FIELDS: tuple[str, ...] = Row.__slots__


@dataclass(frozen=True, slots=True)
class Fetch:
    """Asks for one row (the thread's newest when ``checkpoint_id`` is None), or None."""

    thread_id: str
    checkpoint_id: str | None


@dataclass(frozen=True, slots=True)
class Chain:
    """Asks for the row ``checkpoint_id`` and its bases, newest first, up to a snapshot
    (included) or a missing row."""

    thread_id: str
    checkpoint_id: str


@dataclass(frozen=True, slots=True)
class Scan:
    """Asks for the thread's rows newest first: at most ``limit``, with ``seq < before``."""

    thread_id: str
    limit: int | None = None
    before: int | None = None


Request = Fetch | Chain | Scan
Ops = Generator[Request, Any, T]


@dataclass
class Plan:
    """Rows to write (replacing those with their ids) and ids to delete, in one thread;
    ``emptied`` when no row of the thread is left."""

    thread_id: str
    upserts: dict[str, Row] = field(default_factory=dict)
    deletes: set[str] = field(default_factory=set)
    emptied: bool = False


def dumps(value: Any) -> str:
    """Compact JSON text; raises ``TypeError``/``ValueError`` for what JSON cannot hold."""
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


def drive(ops: Ops[T], answer: Callable[[Request], Any]) -> T:
    """Run ``ops`` to its end, answering each request with ``answer``."""
    try:
        request = next(ops)
        while True:
            request = ops.send(answer(request))
    except StopIteration as done:
        return cast(T, done.value)


async def adrive(ops: Ops[T], answer: Callable[[Request], Awaitable[Any]]) -> T:
    """Run ``ops`` to its end, answering each request with ``await answer(request)``."""
    try:
        request = next(ops)
        while True:
            request = ops.send(await answer(request))
    except StopIteration as done:
        return cast(T, done.value)
