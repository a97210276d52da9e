"""What every checkpoint backend shares: encoding, deltas and snapshots, rebuilding, pruning.

The backends only store rows (see :mod:`chainweave.memory.checkpoint_rows`).
:class:`CheckpointCore` decides everything else, so the semantics cannot drift between
them. Its operations are generators that ask the backend for rows and return either a
result or a :class:`~chainweave.memory.checkpoint_rows.Plan` of rows to write and
delete, which the backend applies in one transaction (SQLite runs the whole operation
inside ``BEGIN IMMEDIATE``; Redis reads under ``WATCH`` and writes in ``MULTI/EXEC``;
memory never awaits in between).

**Rows.** A row holds a checkpoint's fields as JSON text and its state either in full
(a snapshot: ``base_id`` is None) or as the :func:`~chainweave.memory.delta.diff` from
the state of its parent ``base_id``. A checkpoint is stored as a snapshot when

* it has no parent in its thread, or the delta would be larger than the state;
* or at least ``snapshot_every`` deltas follow the last snapshot and together they
  weigh at least as much as it (``chain >= snap``).

The last rule pays for every snapshot with as many bytes of deltas, so the bytes
stored stay below about three times the bytes the steps added: linear in the steps
even when the state grows every step (a snapshot every ``K`` steps would make a
growing message list cost O(steps²/K)). Rebuilding a state reads its last snapshot
and the deltas after it, which weigh less than that snapshot once ``snapshot_every``
of them are stored: about twice the state's size at most.

**Cache.** Recent states are kept as JSON text by ``(thread_id, checkpoint_id)``, with
the row's ``rev``: a random token that every row write renews, so an entry never
outlives the row it was read from, even when another process rewrites it.

**Integrity.** Replacing a checkpoint with another state, and pruning, rewrite as
snapshots the kept rows whose delta base is changing or going, in the same plan.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import replace
from typing import Any, NamedTuple, cast

from cachetools import LRUCache

from chainweave.errors import InputValidationError, StoreCorruptedError
from chainweave.memory.checkpoint import (
    Checkpoint,
    StateMigrations,
    check_count,
    check_id,
    check_seconds,
    check_version,
)
from chainweave.memory.checkpoint_rows import Chain, Fetch, Ops, Plan, Row, Scan, dumps
from chainweave.memory.delta import apply, diff

__all__ = ["CACHE_CHARS", "CheckpointCore"]

#: Characters of state text the cache of recent states keeps at most.
CACHE_CHARS = 32 * 1024 * 1024


class _Layout(NamedTuple):
    """How a row stores its state: the fields of :class:`Row` that say it."""

    base_id: str | None
    body: str
    depth: int
    chain: int
    snap: int


class CheckpointCore:
    """The logic of a checkpoint store over a backend's rows (see the module docstring).

    Args:
        owner: The backend's class name, for error messages.
        snapshot_every: The fewest deltas between two snapshots.
        migrations: The state migrations reads may apply.
    """

    def __init__(self, owner: str, *, snapshot_every: object,
                 migrations: object) -> None:
        self.owner = owner
        if isinstance(snapshot_every, bool) or not isinstance(snapshot_every, int) \
                or snapshot_every < 1:
            raise InputValidationError(f"{owner}: snapshot_every must be an integer >= 1, "
                                       f"got {snapshot_every!r}", field="snapshot_every")
        self.snapshot_every = snapshot_every
        if migrations is not None and not isinstance(migrations, StateMigrations):
            raise InputValidationError(
                f"{owner}: migrations must be a StateMigrations or None, got "
                f"{type(migrations).__name__}", field="migrations")
        self.migrations = migrations
        self._cache: LRUCache[tuple[str, str], tuple[str, str]] = LRUCache(
            CACHE_CHARS, getsizeof=lambda entry: len(entry[1]))
        self._lock = threading.Lock()

    # --- operations: check the arguments now, return the generator to drive ----------

    def put_ops(self, checkpoint: object) -> Ops[Plan]:
        """The plan that stores ``checkpoint``; its JSON is checked before anything else."""
        owner = f"{self.owner}.put"
        if not isinstance(checkpoint, Checkpoint):
            raise InputValidationError(f"{owner}: expected a Checkpoint, got "
                                       f"{type(checkpoint).__name__}", field="checkpoint")
        if checkpoint.parent_id == checkpoint.checkpoint_id:
            raise InputValidationError(f"{owner}: a checkpoint cannot be its own parent",
                                       field="parent_id")
        texts = {name: self._json(owner, name, getattr(checkpoint, name))
                 for name in ("state", "next", "pending_writes", "metadata")}
        return self._put(checkpoint, texts)

    def get_ops(self, thread_id: object, checkpoint_id: object,
                schema_version: object) -> Ops[Checkpoint | None]:
        """The checkpoint ``get`` returns."""
        owner = f"{self.owner}.get"
        thread = check_id(owner, thread_id, "thread_id")
        target = None if checkpoint_id is None else check_id(owner, checkpoint_id,
                                                             "checkpoint_id")
        return self._get(thread, target, _version(owner, schema_version))

    def list_ops(self, thread_id: object, limit: object, before: object,
                 schema_version: object) -> Ops[list[Checkpoint]]:
        """The checkpoints ``list`` returns."""
        owner = f"{self.owner}.list"
        thread = check_id(owner, thread_id, "thread_id")
        count = check_count(owner, limit, "limit")
        anchor = None if before is None else check_id(owner, before, "before")
        return self._list(thread, count, anchor, _version(owner, schema_version))

    def check_thread(self, method: str, thread_id: object) -> str:
        """``thread_id`` checked for ``method``."""
        return check_id(f"{self.owner}.{method}", thread_id, "thread_id")

    def check_prune(self, thread_id: object, keep_last: object,
                    older_than: object) -> tuple[str | None, int | None, float | None]:
        """``prune``'s arguments, checked."""
        owner = f"{self.owner}.prune"
        thread = None if thread_id is None else check_id(owner, thread_id, "thread_id")
        keep = check_count(owner, keep_last, "keep_last", minimum=0)
        age = check_seconds(owner, older_than, "older_than")
        if keep is None and age is None:
            raise InputValidationError(f"{owner}: give keep_last, older_than or both",
                                       field="keep_last")
        return thread, keep, age

    def prune_ops(self, thread_id: str, keep_last: int | None,
                  cutoff: float | None) -> Ops[Plan]:
        """The plan that drops the thread's rows past ``keep_last`` or created before
        ``cutoff``, rewriting as snapshots the kept rows whose base goes."""
        rows = yield Scan(thread_id)
        doomed = {row.checkpoint_id for index, row in enumerate(rows)
                  if (keep_last is not None and index >= keep_last)
                  or (cutoff is not None and row.created_at < cutoff)}
        plan = Plan(thread_id, deletes=doomed, emptied=len(doomed) == len(rows))
        for row in reversed(rows):  # oldest first: each rebuild finds its base cached
            if row.base_id in doomed and row.checkpoint_id not in doomed:
                text = (yield from self._state(row))[1]
                plan.upserts[row.checkpoint_id] = self._as_snapshot(row, text)
        return plan

    # --- the generators --------------------------------------------------------------

    def _put(self, checkpoint: Checkpoint, texts: dict[str, str]) -> Ops[Plan]:
        thread = checkpoint.thread_id
        plan = Plan(thread)
        old = yield Fetch(thread, checkpoint.checkpoint_id)
        seq = None if old is None else old.seq
        layout: _Layout | None = None
        if old is not None and (yield from self._state(old))[1] == texts["state"]:
            # Same state (say, more pending writes): keep how it is stored.
            layout = _Layout(old.base_id, old.body, old.depth, old.chain, old.snap)
        else:
            if old is not None:
                yield from self._detach(old, plan)
            parent = None
            if checkpoint.parent_id is not None:
                parent = plan.upserts.get(checkpoint.parent_id)
                if parent is None:
                    parent = yield Fetch(thread, checkpoint.parent_id)
            if parent is not None:
                parent_state = (yield from self._state(parent))[0]
                layout = self._delta_layout(parent, parent_state, texts["state"])
        row = self._row(checkpoint, texts, seq=seq, layout=layout)
        plan.upserts[row.checkpoint_id] = row
        return plan

    def _detach(self, old: Row, plan: Plan) -> Ops[None]:
        """Rewrite as snapshots the rows stored as deltas from ``old``'s state."""
        for row in (yield Scan(old.thread_id)):
            if row.base_id == old.checkpoint_id:
                text = (yield from self._state(row))[1]
                plan.upserts[row.checkpoint_id] = self._as_snapshot(row, text)

    def _get(self, thread_id: str, checkpoint_id: str | None,
             wanted: str | None) -> Ops[Checkpoint | None]:
        row = yield Fetch(thread_id, checkpoint_id)
        if row is None:
            return None
        state = (yield from self._state(row))[0]
        return self._checkpoint(row, state, wanted)

    def _list(self, thread_id: str, limit: int | None, before: str | None,
              wanted: str | None) -> Ops[list[Checkpoint]]:
        before_seq = None
        if before is not None:
            anchor = yield Fetch(thread_id, before)
            if anchor is None:
                return []
            before_seq = anchor.seq
        rows = yield Scan(thread_id, limit, before_seq)
        found = []
        for row in reversed(rows):  # oldest first: each rebuild finds its base cached
            state = (yield from self._state(row))[0]
            found.append(self._checkpoint(row, state, wanted))
        return found[::-1]

    def _state(self, row: Row) -> Ops[tuple[dict[str, Any], str]]:
        """The row's state, parsed (the caller's own) and as JSON text."""
        text = self._cached(row)
        if text is not None:
            return self._load(row, text), text
        if row.base_id is None:
            state, text = self._load(row, row.body), row.body
        else:
            state = self._rebuild(row, (yield Chain(row.thread_id, row.base_id)))
            text = dumps(state)
        if not isinstance(state, dict):
            raise self._corrupted(row, "its state is not a JSON object")
        self._remember(row, text)
        return state, text

    # --- rows and states ---------------------------------------------------------------

    def _rebuild(self, row: Row, chain: list[Row]) -> dict[str, Any]:
        """The state of the delta row ``row`` from ``chain``: its base, its base's base, ..."""
        expected = row.base_id
        for index, link in enumerate(chain):
            if link.checkpoint_id != expected:
                break
            text = self._cached(link)
            if text is None and link.base_id is None:
                text = link.body
            if text is not None:
                state = self._load(link, text)
                try:
                    for step in [*reversed(chain[:index]), row]:
                        state = apply(state, self._load(step, step.body))
                except (InputValidationError, TypeError) as exc:
                    raise self._corrupted(row, f"a delta does not fit: {exc}") from None
                return cast(dict[str, Any], state)
            expected = link.base_id
        raise self._corrupted(row, f"the checkpoint {expected!r} its delta needs is missing")

    def _delta_layout(self, parent: Row, parent_state: dict[str, Any],
                   text: str) -> _Layout | None:
        """How to store the state ``text`` as a delta from ``parent``; None to store it
        as a snapshot instead."""
        delta = dumps(diff(parent_state, json.loads(text)))
        depth, chain = parent.depth + 1, parent.chain + len(delta)
        if len(delta) >= len(text) or (depth >= self.snapshot_every
                                        and chain >= parent.snap):
            return None
        return _Layout(parent.checkpoint_id, delta, depth, chain, parent.snap)

    def _row(self, checkpoint: Checkpoint, texts: dict[str, str], *, seq: int | None,
             layout: _Layout | None) -> Row:
        """The row of ``checkpoint``, laid out like ``layout`` (a snapshot if None)."""
        text = texts["state"]
        base_id, body, depth, chain, snap = layout or (None, text, 0, 0, len(text))
        row = Row(thread_id=checkpoint.thread_id, checkpoint_id=checkpoint.checkpoint_id,
                  parent_id=checkpoint.parent_id, step=checkpoint.step, seq=seq,
                  base_id=base_id, depth=depth, chain=chain, snap=snap, rev=_rev(),
                  body=body, next=texts["next"], writes=texts["pending_writes"],
                  metadata=texts["metadata"], schema_version=checkpoint.schema_version,
                  created_at=checkpoint.created_at)
        self._remember(row, text)
        return row

    def _as_snapshot(self, row: Row, text: str) -> Row:
        snapshot = replace(row, base_id=None, body=text, depth=0, chain=0, snap=len(text),
                           rev=_rev())
        self._remember(snapshot, text)
        return snapshot

    def _checkpoint(self, row: Row, state: dict[str, Any], wanted: str | None) -> Checkpoint:
        version = row.schema_version
        if wanted is not None and version is not None and version != wanted:
            state = (self.migrations or StateMigrations()).migrate(state, version, wanted)
            version = wanted
        return Checkpoint.model_construct(
            thread_id=row.thread_id, checkpoint_id=row.checkpoint_id,
            parent_id=row.parent_id, step=row.step, state=state,
            next=self._load(row, row.next), pending_writes=self._load(row, row.writes),
            metadata=self._load(row, row.metadata), schema_version=version,
            created_at=row.created_at)

    # --- helpers -----------------------------------------------------------------------

    def _cached(self, row: Row) -> str | None:
        with self._lock:
            entry = self._cache.get((row.thread_id, row.checkpoint_id))
        return entry[1] if entry is not None and entry[0] == row.rev else None

    def _remember(self, row: Row, text: str) -> None:
        if len(text) <= CACHE_CHARS:
            with self._lock:
                self._cache[row.thread_id, row.checkpoint_id] = (row.rev, text)

    def _load(self, row: Row, text: str) -> Any:
        try:
            return json.loads(text)
        except ValueError as exc:
            raise self._corrupted(row, f"it holds text that is not JSON: {exc}") from None

    def _corrupted(self, row: Row, reason: str) -> StoreCorruptedError:
        return StoreCorruptedError(
            f"{self.owner}: checkpoint {row.checkpoint_id!r} of thread {row.thread_id!r} "
            f"cannot be read: {reason}", details={"store": self.owner,
                                                  "thread_id": row.thread_id,
                                                  "checkpoint_id": row.checkpoint_id})

    @staticmethod
    def _json(owner: str, name: str, value: Any) -> str:
        try:
            return dumps(value)
        except (TypeError, ValueError, RecursionError) as exc:
            raise InputValidationError(f"{owner}: {name} must be JSON-serialisable: {exc}",
                                       field=name) from None


def _version(owner: str, value: object) -> str | None:
    return None if value is None else check_version(owner, value)


def _rev() -> str:
    return os.urandom(8).hex()
