"""The key-value store for long-term agent memory: its model, protocol and shared checks.

A :class:`KeyValueStore` maps a *namespace* and a *key* to a JSON value. A namespace is
a tuple of labels such as ``("users", "u1", "memories")``; a plain string ``"users"``
means ``("users",)``. Listing by a namespace *prefix* matches whole labels only:
``("user",)`` does not match ``("users",)``. Backends (in memory, SQLite, Redis)
implement the same protocol and pass the same contract suite,
``tests/memory/test_kv_contract.py``.

The rules every backend follows:

* Namespace labels are non-empty strings of at most :data:`MAX_LABEL_CHARS` characters
  without control characters U+0000 to U+001F (U+001F is the internal label separator,
  and refusing the ones below it keeps every backend's order the same). Keys are
  non-empty strings of at most :data:`MAX_KEY_CHARS` characters without U+0000. Neither
  may hold a lone surrogate (it cannot be written as UTF-8).
* A value must be JSON (``json.dumps(value, allow_nan=False)`` succeeds); it is checked
  before anything is written, and what comes back is its JSON round trip (tuples become
  lists, mapping keys become strings).
* Items and namespaces are ordered by code point, namespace first (label by label),
  then key: the order of Python's ``sorted`` over ``(namespace, key)`` tuples.
* An item put with ``ttl`` is gone once the store's clock reaches ``updated_at + ttl``:
  not returned, not listed, and ``delete`` reports it absent.
* What a call returns is the caller's own copy: changing it never changes the store.
"""

from __future__ import annotations

import builtins
import json
import math
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from pydantic import ValidationError

from chainweave._internal.model import StrictModel
from chainweave.errors import InputValidationError

__all__ = [
    "MAX_KEY_CHARS",
    "MAX_LABEL_CHARS",
    "SEPARATOR",
    "Item",
    "KeyValueStore",
    "Namespace",
    "check_clock",
    "check_key",
    "check_namespace",
    "check_page",
    "check_put",
    "check_ttl",
    "dump_value",
    "load_item",
    "namespace_path",
    "path_namespace",
    "prefix_range",
]

#: The longest key a store accepts.
MAX_KEY_CHARS = 512
#: The longest namespace label a store accepts.
MAX_LABEL_CHARS = 256
#: Written after every label when a backend joins a namespace into one string.
SEPARATOR = "\x1f"
#: The character right after :data:`SEPARATOR`: the exclusive end of a prefix range.
_AFTER_SEPARATOR = "\x20"

#: What the methods accept as a namespace: a tuple (or list) of labels, or one label.
Namespace = str | Sequence[str]


class Item(StrictModel):
    """One stored value with where it lives and when it was written.

    Attributes:
        namespace: The labels of its namespace, such as ``("users", "u1")``.
        key: Its key within the namespace.
        value: The JSON value (a fresh copy on every read).
        created_at: When the key was first put (unix seconds); kept by later puts.
        updated_at: When it was last put (unix seconds).
    """

    namespace: tuple[str, ...]
    key: str
    value: Any
    created_at: float
    updated_at: float

    @classmethod
    def _error_from(cls, exc: ValidationError, error_context: Any) -> InputValidationError:
        error = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(map(str, error["loc"]))
        return InputValidationError(f"Item.{where}: {error['msg']}", field=where)


@runtime_checkable
class KeyValueStore(Protocol):
    """A store of JSON values by namespace and key, listable by namespace prefix.

    Every method may raise :class:`~chainweave.errors.InputValidationError` naming the
    bad argument (``namespace``, ``prefix``, ``key``, ``value``, ``ttl``, ``limit`` or
    ``offset``), and :class:`~chainweave.errors.StoreError` when the backend fails.
    """

    async def put(self, namespace: Namespace, key: str, value: Any, *,
                  ttl: float | None = None) -> Item:
        """Store ``value`` under ``namespace`` and ``key``, replacing what was there.

        Args:
            namespace: Where the item lives (at least one label).
            key: Its key within the namespace.
            value: A JSON value; refused before anything is written when it is not.
            ttl: Seconds the item lives; ``None`` keeps it until deleted.

        Returns:
            The stored item; ``created_at`` is kept from an earlier put of the same key.
        """
        ...

    async def get(self, namespace: Namespace, key: str) -> Item | None:
        """The item under ``namespace`` and ``key``, or ``None``."""
        ...

    async def delete(self, namespace: Namespace, key: str) -> bool:
        """Remove the item; ``True`` when there was one."""
        ...

    async def list(self, prefix: Namespace = (), *, limit: int | None = None,
                   offset: int = 0) -> builtins.list[Item]:
        """Every item whose namespace starts with ``prefix`` (whole labels), in order.

        Args:
            prefix: The leading labels; ``()`` lists everything.
            limit: Return at most this many items.
            offset: Skip this many items first.
        """
        ...

    async def namespaces(self, prefix: Namespace = ()) -> builtins.list[tuple[str, ...]]:
        """The namespaces holding items that start with ``prefix``, sorted."""
        ...

    async def aclose(self) -> None:
        """Release the store's resources (connections, files); safe to call twice."""
        ...


# --- argument checks -------------------------------------------------------------------


def check_namespace(owner: str, namespace: object, *, field: str = "namespace",
                    allow_empty: bool = False) -> tuple[str, ...]:
    """``namespace`` as a tuple of labels.

    Raises:
        InputValidationError: It is not a label or a sequence of labels, it is empty
            (unless ``allow_empty``), or a label breaks the rules in the module docs.
    """
    if isinstance(namespace, str):
        labels: tuple[object, ...] = (namespace,)
    elif isinstance(namespace, Sequence) and not isinstance(namespace, bytes | bytearray):
        labels = tuple(namespace)
    else:
        raise InputValidationError(
            f"{owner}: {field} must be a tuple of strings or one string, got "
            f"{type(namespace).__name__}", field=field)
    if not labels and not allow_empty:
        raise InputValidationError(f"{owner}: {field} must have at least one label",
                                   field=field)
    return tuple(_check_label(owner, field, index, label)
                 for index, label in enumerate(labels))


def _check_label(owner: str, field: str, index: int, label: object) -> str:
    if not isinstance(label, str):
        problem = f"must be a string, got {type(label).__name__}"
    elif not label or len(label) > MAX_LABEL_CHARS:
        problem = f"must have 1 to {MAX_LABEL_CHARS} characters, got {len(label)}"
    elif any(char < _AFTER_SEPARATOR for char in label):
        problem = "must not contain control characters U+0000 to U+001F"
    elif not _is_utf8(label):
        problem = "must not contain a lone surrogate"
    else:
        return label
    raise InputValidationError(f"{owner}: {field} label {index} {problem}", field=field)


def check_key(owner: str, key: object) -> str:
    """``key`` when it is a usable key.

    Raises:
        InputValidationError: It is not a non-empty string of at most
            :data:`MAX_KEY_CHARS` characters, or it holds U+0000 or a lone surrogate.
    """
    if (not isinstance(key, str) or not key or len(key) > MAX_KEY_CHARS
            or "\x00" in key or not _is_utf8(key)):
        shown = key[:40] + "..." if isinstance(key, str) and len(key) > 40 else key
        raise InputValidationError(
            f"{owner}: key must be a non-empty string of at most {MAX_KEY_CHARS} "
            f"characters without U+0000 or lone surrogates, got {shown!r}", field="key")
    return key


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def dump_value(owner: str, value: object) -> str:
    """``value`` as compact JSON text: what a store keeps.

    Raises:
        InputValidationError: It is not JSON-serialisable (NaN and infinity included).
    """
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise InputValidationError(f"{owner}: value must be JSON-serialisable: {exc}",
                                   field="value") from None


def load_item(namespace: tuple[str, ...], key: str, text: str, created_at: float,
              updated_at: float) -> Item:
    """An :class:`Item` whose value is freshly decoded from the stored JSON ``text``."""
    return Item(namespace=namespace, key=key, value=json.loads(text),
                created_at=created_at, updated_at=updated_at)


def check_ttl(owner: str, ttl: object) -> float | None:
    """``ttl`` as seconds, or None.

    Raises:
        InputValidationError: It is neither None nor a finite number > 0.
    """
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl < math.inf:
        raise InputValidationError(
            f"{owner}: ttl must be a finite number of seconds > 0 or None, got {ttl!r}",
            field="ttl")
    return float(ttl)


def check_put(owner: str, namespace: object, key: object, value: object,
              ttl: object) -> tuple[tuple[str, ...], str, str, float | None]:
    """``put``'s arguments checked, in order: the labels, the key, the value as JSON text
    (:func:`dump_value`) and the ttl in seconds (or None). Nothing is written before.

    Raises:
        InputValidationError: One is bad; ``field`` names it.
    """
    return (check_namespace(owner, namespace), check_key(owner, key),
            dump_value(owner, value), check_ttl(owner, ttl))


def check_page(owner: str, limit: object, offset: object) -> None:
    """Check ``list``'s ``limit`` (None or an int >= 1) and ``offset`` (an int >= 0).

    Raises:
        InputValidationError: One of them is out of range; ``field`` names it.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or limit < 1):
        raise InputValidationError(
            f"{owner}: limit must be a positive integer or None, got {limit!r}",
            field="limit")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InputValidationError(
            f"{owner}: offset must be an integer >= 0, got {offset!r}", field="offset")


def check_clock(owner: str, clock: object) -> None:
    """Check that ``clock`` can be called.

    Raises:
        InputValidationError: It cannot.
    """
    if not callable(clock):
        raise InputValidationError(f"{owner}: clock must be a callable, got {clock!r}",
                                   field="clock")


# --- namespaces as strings -------------------------------------------------------------


def namespace_path(namespace: tuple[str, ...]) -> str:
    """``namespace`` as one string: each label followed by :data:`SEPARATOR`.

    Because labels hold no character at or below the separator, these strings sort
    (by code point, or by UTF-8 bytes) exactly as the tuples do, and the namespaces
    under a prefix are one contiguous range (see :func:`prefix_range`).
    """
    return "".join(label + SEPARATOR for label in namespace)


def path_namespace(path: str) -> tuple[str, ...]:
    """The namespace :func:`namespace_path` made ``path`` from."""
    return tuple(path.split(SEPARATOR)[:-1])


def prefix_range(prefix: tuple[str, ...]) -> tuple[str, str] | None:
    """``(low, high)``: the paths under ``prefix`` are those with ``low <= path < high``.

    ``None`` for the empty prefix, which every path is under. The range holds only whole
    labels: ``("user",)`` gives ``["user\\x1f", "user\\x20")``, which ``"users\\x1f"``
    is outside of.
    """
    if not prefix:
        return None
    low = namespace_path(prefix)
    return low, low[:-1] + _AFTER_SEPARATOR
