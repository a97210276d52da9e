"""Structural deltas: apply(old, diff(old, new)) rebuilds new exactly, and appends stay small."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainweave.errors import InputValidationError
from chainweave.memory.delta import apply, diff

_scalars = (st.none() | st.booleans() | st.integers()
            | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
_json: st.SearchStrategy[Any] = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=6), children, max_size=5),
    max_leaves=30,
)


@st.composite
def _edited(draw: st.DrawFn, value: Any, depth: int = 0) -> Any:
    """``value`` with random edits: kept, replaced, keys added/removed/edited, items
    appended, removed or edited, so diffs exercise every kind of delta."""
    choice = draw(st.integers(0, 5))
    if choice == 0 or depth > 4:
        return value
    if choice == 1:
        return draw(_json)
    if isinstance(value, dict):
        result = {key: draw(_edited(item, depth + 1)) for key, item in value.items()
                  if draw(st.integers(0, 4))}
        result.update(draw(st.dictionaries(st.text(max_size=6), _json, max_size=2)))
        return result
    if isinstance(value, list):
        kept = draw(st.integers(0, len(value)))
        edited = [draw(_edited(item, depth + 1)) for item in value[:kept]]
        return edited + draw(st.lists(_json, max_size=3))
    return draw(_json)


@st.composite
def _pairs(draw: st.DrawFn) -> tuple[Any, Any]:
    old = draw(_json)
    return old, draw(_edited(old))


def _text(value: Any) -> str:
    """JSON text that tells 1, 1.0 and True (and 0.0 and -0.0) apart."""
    return json.dumps(value, sort_keys=True)


@settings(max_examples=200, deadline=None)
@given(pair=_pairs())
def test_apply_of_diff_rebuilds_the_new_value_exactly(pair: tuple[Any, Any]) -> None:
    """For any two JSON values, applying their diff to the old one gives the new one."""
    old, new = pair
    delta = diff(old, new)
    assert _text(apply(old, delta)) == _text(new)


@settings(max_examples=100, deadline=None)
@given(old=_json, new=_json)
def test_unrelated_values_also_round_trip(old: Any, new: Any) -> None:
    """Even between unrelated values the diff rebuilds the new value exactly."""
    assert _text(apply(old, diff(old, new))) == _text(new)


@settings(max_examples=100, deadline=None)
@given(pair=_pairs())
def test_deltas_survive_being_stored_as_json(pair: tuple[Any, Any]) -> None:
    """A delta read back from its JSON text still rebuilds the new value (stores keep text)."""
    old, new = pair
    stored = json.loads(json.dumps(diff(old, new)))
    assert _text(apply(old, stored)) == _text(new)


@settings(max_examples=100, deadline=None)
@given(pair=_pairs())
def test_diff_and_apply_change_neither_argument(pair: tuple[Any, Any]) -> None:
    """diff and apply are pure: the values they are given stay as they were."""
    old, new = pair
    before_old, before_new = copy.deepcopy(old), copy.deepcopy(new)
    delta = diff(old, new)
    before_delta = copy.deepcopy(delta)
    apply(old, delta)
    assert _text(old) == _text(before_old)
    assert _text(new) == _text(before_new)
    assert _text(delta) == _text(before_delta)


@settings(max_examples=100, deadline=None)
@given(value=_json)
def test_equal_values_have_no_delta(value: Any) -> None:
    """A value compared with a copy of itself yields None: nothing to store."""
    assert diff(value, copy.deepcopy(value)) is None


@settings(max_examples=100, deadline=None)
@given(history=st.lists(_json, max_size=40), added=st.lists(_json, min_size=1, max_size=5),
       other=st.dictionaries(st.text(max_size=6), _json, max_size=3))
def test_append_only_list_costs_only_what_was_appended(
        history: list[Any], added: list[Any], other: dict[str, Any]) -> None:
    """A state whose message list grew costs O(appended), whatever the history's size."""
    old = {**other, "messages": history}
    new = {**other, "messages": history + added}
    delta = diff(old, new)
    assert len(json.dumps(delta)) <= len(json.dumps(added)) + 40


def test_growing_list_delta_does_not_grow_with_the_history() -> None:
    """The delta for one more message is the same size after 10 or 10,000 messages."""
    message = {"role": "user", "content": "x" * 200}
    sizes = []
    for length in (10, 10_000):
        history = [dict(message, n=index) for index in range(length)]
        delta = diff({"messages": history}, {"messages": [*history, message]})
        sizes.append(len(json.dumps(delta)))
    assert sizes[0] == sizes[1] < 300


def test_edited_tail_keeps_the_unchanged_prefix() -> None:
    """Changing the last item of a long list stores only the new tail, not the list."""
    old = [{"n": index} for index in range(1000)]
    new = [*old[:-1], {"n": "edited"}]
    delta = diff(old, new)
    assert delta == {"a": [{"n": "edited"}], "t": 999}
    assert apply(old, delta) == new


@pytest.mark.parametrize(("old", "new"), [
    (1, True), (0, False), (1, 1.0), (0.0, -0.0), ({"a": 1}, {"a": 1.0}), ([1], [True]),
])
def test_json_types_are_never_confused(old: Any, new: Any) -> None:
    """1, 1.0 and True (and 0.0 and -0.0) differ in JSON, so they get a delta."""
    assert diff(old, new) is not None
    assert _text(apply(old, diff(old, new))) == _text(new)


def test_removed_keys_are_listed() -> None:
    """A key dropped from a dict is recorded as removed, and apply removes it."""
    delta = diff({"a": 1, "b": 2}, {"a": 1})
    assert delta == {"k": {}, "d": ["b"]}
    assert apply({"a": 1, "b": 2}, delta) == {"a": 1}


@pytest.mark.parametrize(("old", "delta"), [
    ({}, "not a delta"),
    ({}, {"x": 1}),
    ({}, {"s": 1, "a": []}),
    ({"a": 1}, {"a": [2]}),
    ([1], {"a": [2], "t": 5}),
    ([1], {"a": [2], "t": True}),
    ({}, {"k": {"missing": {"a": [1]}}}),
    ({}, {"k": {}, "d": ["missing"]}),
    ([], {"k": {}}),
])
def test_apply_refuses_a_delta_that_does_not_fit(old: Any, delta: Any) -> None:
    """A malformed delta, or one made for another value, is a clear error naming 'delta'."""
    with pytest.raises(InputValidationError) as caught:
        apply(old, delta)
    assert caught.value.field == "delta"
