"""Checkpoints of graph runs: the model, the store interface, state migrations.

A :class:`Checkpoint` is the state of one thread (a run) after a step, with what runs
next and the writes of nodes that finished in a step not yet complete. Forks are
checkpoints whose parent is not the newest. Every backend implements
:class:`CheckpointStore` through :class:`~chainweave.memory.checkpoint_core.CheckpointCore`
and passes ``tests/memory/test_checkpoint_contract.py``.

The rules every backend follows:

* ``put`` is all-or-nothing and refuses a value that is not JSON before writing
  anything; what comes back is the JSON round trip. The same id again replaces it.
* "Newest" means most recently first put: a replaced checkpoint keeps its place.
* A state stored under one ``schema_version`` is never handed out as another: a read
  that asks for another version gets it through registered :class:`StateMigrations`
  or raises :class:`~chainweave.errors.SchemaVersionError`.
* Storage is size-conscious: most checkpoints are kept as a delta from their parent's
  state (see :mod:`chainweave.memory.delta`), with full snapshots spaced so that
  the bytes stored grow linearly with the steps of a run whose message list grows.
"""

from __future__ import annotations

import builtins
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from itertools import pairwise
from typing import Annotated, Any, Protocol, runtime_checkable

from pydantic import AfterValidator, Field, ValidationError

from chainweave._internal.model import StrictModel
from chainweave.errors import ChainweaveError, InputValidationError, SchemaVersionError

__all__ = [
    "Checkpoint",
    "CheckpointStore",
    "MAX_ID_CHARS",
    "Migration",
    "StateMigrations",
    "check_count",
    "check_id",
    "check_seconds",
    "check_version",
    "new_checkpoint_id",
]

#: The longest thread id, checkpoint id or schema version a store accepts.
MAX_ID_CHARS = 256

#: A state migration: takes the state at one version, returns it at the next.
Migration = Callable[[dict[str, Any]], dict[str, Any]]

_id_lock = threading.Lock()
_last_ns = 0


def _new_id_lock() -> None:
    global _id_lock
    _id_lock = threading.Lock()  # a forked child must not inherit a held lock


os.register_at_fork(after_in_child=_new_id_lock)


def new_checkpoint_id() -> str:
    """A new checkpoint id, unique, and sorting after every id made before it.

    The id is the time in nanoseconds (20 digits, never repeating or going back within
    a process) and 10 random hex digits, so ids made by different processes are
    unique too and sort in creation order as far as their clocks agree.
    """
    global _last_ns
    with _id_lock:
        _last_ns = max(time.time_ns(), _last_ns + 1)
        stamp = _last_ns
    return f"{stamp:020d}-{os.urandom(5).hex()}"


def _storable(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (it holds a lone surrogate)") from None
    return value


_Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS),
                AfterValidator(_storable)]


class Checkpoint(StrictModel):
    """The state of a thread after one step, as a checkpoint store keeps it.

    Attributes:
        thread_id: The run this checkpoint belongs to.
        checkpoint_id: Unique within the thread; :func:`new_checkpoint_id` by default.
        parent_id: The checkpoint this one follows (``None`` for a thread's first).
        step: The step (super-step) number.
        state: The graph state: a dict of JSON values.
        next: The nodes or task descriptors to run next (JSON values).
        pending_writes: The writes of nodes that already finished in a step that has
            not completed, replayed on resume instead of running those nodes again.
        metadata: Anything else worth keeping (JSON values).
        schema_version: The version of the state's schema; ``None`` for unversioned.
        created_at: When it was made, in unix seconds.
    """

    thread_id: _Id
    checkpoint_id: _Id = Field(default_factory=new_checkpoint_id)
    parent_id: _Id | None = None
    step: int
    state: dict[str, Any]
    next: list[Any] = Field(default_factory=list)
    pending_writes: list[dict[str, Any]] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    schema_version: _Id | None = None
    created_at: float = Field(default_factory=time.time, allow_inf_nan=False)

    @classmethod
    def _error_from(cls, exc: ValidationError, error_context: Any) -> InputValidationError:
        error = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(map(str, error["loc"]))
        return InputValidationError(f"Checkpoint.{where}: {error['msg']}", field=where)


@runtime_checkable
class CheckpointStore(Protocol):
    """A store of checkpoints, grouped by thread.

    Every method may raise :class:`~chainweave.errors.InputValidationError` for a bad
    argument (``field`` names it) and :class:`~chainweave.errors.StoreError` when the
    storage fails.
    """

    async def put(self, checkpoint: Checkpoint) -> None:
        """Store ``checkpoint`` atomically, replacing one with the same ids.

        Raises:
            InputValidationError: ``state``, ``next``, ``pending_writes`` or
                ``metadata`` is not JSON (nothing is written), or ``parent_id`` is the
                checkpoint's own id.
        """
        ...

    async def get(self, thread_id: str, checkpoint_id: str | None = None, *,
                  schema_version: str | None = None) -> Checkpoint | None:
        """The checkpoint (the thread's newest when ``checkpoint_id`` is None), or None.

        Args:
            thread_id: The thread.
            checkpoint_id: Which checkpoint; the newest when left out.
            schema_version: The state schema the caller expects. A checkpoint stored
                under another version is migrated to it; one stored without a version
                is returned as it is.

        Raises:
            SchemaVersionError: No registered migration leads to ``schema_version``.
        """
        ...

    async def list(self, thread_id: str, *, limit: int | None = None,
                   before: str | None = None,
                   schema_version: str | None = None) -> builtins.list[Checkpoint]:
        """The thread's checkpoints, newest first.

        Args:
            thread_id: The thread.
            limit: At most this many.
            before: Only those older than this checkpoint (``[]`` if it is unknown).
            schema_version: As for :meth:`get`.
        """
        ...

    async def threads(self) -> builtins.list[str]:
        """The ids of the threads holding checkpoints, sorted."""
        ...

    async def delete_thread(self, thread_id: str) -> int:
        """Drop every checkpoint of the thread; returns how many were dropped."""
        ...

    async def prune(self, thread_id: str | None = None, *, keep_last: int | None = None,
                    older_than: float | None = None) -> int:
        """Drop old checkpoints of one thread (every thread when None); returns how many.

        A checkpoint is dropped when it is not among its thread's ``keep_last`` newest,
        or when it was created more than ``older_than`` seconds ago; at least one of the
        two must be given. Every kept checkpoint stays readable.
        """
        ...

    async def aclose(self) -> None:
        """Release connections and files; safe to call twice."""
        ...


class StateMigrations:
    """Registered steps that bring a checkpoint's state from one schema version to another.

    A read asking for version ``B`` of a state stored at ``A`` runs the shortest chain
    of registered steps from ``A`` to ``B``. Each step gets its own copy of the state.
    """

    def __init__(self) -> None:
        self._steps: dict[str, dict[str, Migration]] = {}

    def __repr__(self) -> str:
        count = sum(len(targets) for targets in self._steps.values())
        return f"StateMigrations(steps={count})"

    def register(self, from_version: str, to_version: str, fn: Migration) -> None:
        """Register ``fn`` as the step from ``from_version`` to ``to_version``.

        Registering the same pair again replaces the earlier step.

        Raises:
            InputValidationError: A version is not a non-empty string, the two are the
                same, or ``fn`` is not callable.
        """
        from_version = check_version("StateMigrations.register", from_version,
                                     "from_version")
        to_version = check_version("StateMigrations.register", to_version, "to_version")
        if from_version == to_version:
            raise InputValidationError("StateMigrations.register: from_version and "
                                       "to_version must differ", field="to_version")
        if not callable(fn):
            raise InputValidationError(
                f"StateMigrations.register: fn must be callable, got {fn!r}", field="fn")
        self._steps.setdefault(from_version, {})[to_version] = fn

    def path(self, from_version: str, to_version: str) -> builtins.list[str] | None:
        """The versions on the shortest chain of steps, both ends included; None if none."""
        came_from: dict[str, str] = {from_version: from_version}
        queue = deque([from_version])
        while queue:
            version = queue.popleft()
            if version == to_version:
                path = [version]
                while path[-1] != from_version:
                    path.append(came_from[path[-1]])
                return path[::-1]
            for target in self._steps.get(version, {}):
                if target not in came_from:
                    came_from[target] = version
                    queue.append(target)
        return None

    def migrate(self, state: dict[str, Any], from_version: str,
                to_version: str) -> dict[str, Any]:
        """``state`` (at ``from_version``) brought to ``to_version``.

        Raises:
            SchemaVersionError: No chain of steps leads there, or a step failed or did
                not return a dict; ``details`` holds both versions.
        """
        details = {"stored_version": from_version, "wanted_version": to_version}
        path = self.path(from_version, to_version)
        if path is None:
            raise SchemaVersionError(
                f"the state has schema version {from_version!r}, not {to_version!r}, and "
                f"no registered migration leads from {from_version!r} to {to_version!r}",
                details=details)
        for source, target in pairwise(path):
            try:
                state = self._steps[source][target](state)
            except ChainweaveError:
                raise
            except Exception as exc:
                raise SchemaVersionError(
                    f"the migration from {source!r} to {target!r} failed: "
                    f"{type(exc).__name__}: {exc}", details=details) from exc
            if not isinstance(state, dict):
                raise SchemaVersionError(
                    f"the migration from {source!r} to {target!r} returned "
                    f"{type(state).__name__}, not a dict", details=details)
        return state


# --- argument checks shared by the backends ----------------------------------------


def check_id(owner: str, value: object, field: str) -> str:
    """``value`` when it is a usable thread or checkpoint id.

    Raises:
        InputValidationError: It is not a non-empty string of at most
            :data:`MAX_ID_CHARS` characters that can be stored as UTF-8.
    """
    if isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS:
        try:
            return _storable(value)
        except ValueError as exc:
            raise InputValidationError(f"{owner}: {field} {exc}", field=field) from None
    shown = value[:40] + "..." if isinstance(value, str) and len(value) > 40 else value
    raise InputValidationError(
        f"{owner}: {field} must be a non-empty string of at most {MAX_ID_CHARS} "
        f"characters, got {shown!r}", field=field)


def check_version(owner: str, value: object, field: str = "schema_version") -> str:
    """``value`` when it is a usable schema version (a non-empty string).

    Raises:
        InputValidationError: It is not.
    """
    return check_id(owner, value, field)


def check_count(owner: str, value: object, field: str, *, minimum: int = 1) -> int | None:
    """``value`` when it is None or an integer of at least ``minimum``.

    Raises:
        InputValidationError: It is not.
    """
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or value < minimum):
        raise InputValidationError(
            f"{owner}: {field} must be an integer >= {minimum} or None, got {value!r}",
            field=field)
    return value


def check_seconds(owner: str, value: object, field: str) -> float | None:
    """``value`` when it is None or a finite number of seconds >= 0.

    Raises:
        InputValidationError: It is not.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or value < 0:
        raise InputValidationError(
            f"{owner}: {field} must be a finite number of seconds >= 0 or None, "
            f"got {value!r}", field=field)
    return float(value)
