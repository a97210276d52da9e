"""Structural deltas between JSON values: :func:`diff` and :func:`apply`.

Checkpoint stores keep most checkpoints as the change from their parent's state, so a
run whose state holds a growing message list stores each message once, not once per
step. A delta is ``None`` (nothing changed) or a one-purpose dict:

* ``{"s": value}``: set, the new value replaces the old one.
* ``{"a": [items], "t": n}``: for lists, keep the first ``n`` old items (all of them
  when ``"t"`` is left out) and append ``items``. An append-only list costs only what
  was appended; an edited tail costs only the tail.
* ``{"k": {key: delta}, "d": [keys]}``: for dicts, the deltas of the keys that changed
  or were added, and the keys that were removed (``"d"`` only when some were).

Equality is JSON equality: ``1``, ``1.0`` and ``True`` differ, as do ``0.0`` and
``-0.0``, so ``apply(old, diff(old, new))`` serialises exactly like ``new``. Key order
within a dict is not part of a value (JSON objects are unordered).
"""

from __future__ import annotations

import math
from typing import Any

from chainweave.errors import InputValidationError

__all__ = ["apply", "diff"]

_MISSING: Any = object()


def diff(old: Any, new: Any) -> dict[str, Any] | None:
    """The delta that turns the JSON value ``old`` into ``new``; ``None`` if they are equal.

    Neither argument is changed; the delta may share parts of ``new``.
    """
    kind = type(new)
    if kind is dict and type(old) is dict:
        return _diff_dict(old, new)
    if kind is list and type(old) is list:
        return _diff_list(old, new)
    return None if _same(old, new) else {"s": new}


def apply(old: Any, delta: dict[str, Any] | None) -> Any:
    """The value ``delta`` (from :func:`diff`) makes of ``old``.

    Neither argument is changed; the result may share parts of both.

    Raises:
        InputValidationError: ``delta`` is not a delta, or does not fit ``old``.
    """
    if delta is None:
        return old
    if type(delta) is not dict:
        raise _bad(f"expected a dict or None, got {type(delta).__name__}")
    if "s" in delta and len(delta) == 1:
        return delta["s"]
    if "a" in delta and delta.keys() <= {"a", "t"}:
        return _apply_list(old, delta)
    if "k" in delta and delta.keys() <= {"k", "d"}:
        return _apply_dict(old, delta)
    raise _bad(f"unknown delta keys {sorted(delta)}")


def _diff_dict(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any] | None:
    changed: dict[str, Any] = {}
    for key, value in new.items():
        before = old.get(key, _MISSING)
        if before is _MISSING:
            changed[key] = {"s": value}
        elif before is not value:
            sub = diff(before, value)
            if sub is not None:
                changed[key] = sub
    removed = [key for key in old if key not in new]
    if not changed and not removed:
        return None
    delta: dict[str, Any] = {"k": changed}
    if removed:
        delta["d"] = removed
    return delta


def _diff_list(old: list[Any], new: list[Any]) -> dict[str, Any] | None:
    kept = 0
    for before, after in zip(old, new, strict=False):
        if not _same(before, after):
            break
        kept += 1
    if kept == len(old):
        return {"a": new[kept:]} if len(new) > kept else None
    if kept == 0:
        return {"s": new}
    return {"a": new[kept:], "t": kept}


def _same(a: Any, b: Any) -> bool:
    """JSON equality: like ``==`` but ``True != 1 != 1.0`` and ``0.0 != -0.0``."""
    if a is b:
        return True
    kind = type(a)
    if kind is not type(b):
        return False
    if kind is dict:
        if a.keys() != b.keys():
            return False
        return all(_same(value, b[key]) for key, value in a.items())
    if kind is list:
        return len(a) == len(b) and all(map(_same, a, b))
    if kind is float:
        return bool(a == b and math.copysign(1.0, a) == math.copysign(1.0, b))
    return bool(a == b)


def _apply_list(old: Any, delta: dict[str, Any]) -> list[Any]:
    items = delta["a"]
    if type(old) is not list or type(items) is not list:
        raise _bad("an append delta needs a list and a list of items")
    kept = delta.get("t", len(old))
    if isinstance(kept, bool) or not isinstance(kept, int) or not 0 <= kept <= len(old):
        raise _bad(f"cannot keep {kept!r} items of a list of {len(old)}")
    return old[:kept] + items


def _apply_dict(old: Any, delta: dict[str, Any]) -> dict[str, Any]:
    changed, removed = delta["k"], delta.get("d", [])
    if type(old) is not dict or type(changed) is not dict or type(removed) is not list:
        raise _bad("a keys delta needs a dict, a dict of deltas and a list of keys")
    result = dict(old)
    for key in removed:
        if result.pop(key, _MISSING) is _MISSING:
            raise _bad(f"cannot remove the missing key {key!r}")
    for key, sub in changed.items():
        before = result.get(key, _MISSING)
        if before is _MISSING and not (type(sub) is dict and sub.keys() == {"s"}):
            raise _bad(f"the missing key {key!r} can only be set")
        result[key] = apply(before, sub)
    return result


def _bad(reason: str) -> InputValidationError:
    return InputValidationError(f"apply: not a valid delta for this value: {reason}",
                                field="delta")
