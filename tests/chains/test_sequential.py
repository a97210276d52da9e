"""SequentialChain and ``|``: outputs flow forward, keys are chosen, failures name the step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainweave.chains import SequentialChain, SimpleChain, TransformChain, chain
from chainweave.errors import ChainInputError, InputValidationError, RateLimitError
from chainweave.testing import MockProvider


def _step(name: str, source: str, target: str, fn: Callable[[Any], Any]) -> TransformChain:
    return TransformChain(name, lambda d: {target: fn(d[source])}, input_keys=[source],
                          output_keys=[target])


async def test_outputs_flow_forward_as_a_merged_dict() -> None:
    """Each step sees the inputs and every earlier output."""
    seq = SequentialChain("s", [
        _step("double", "x", "y", lambda v: v * 2),
        TransformChain("sum", lambda d: {"z": d["x"] + d["y"]}, input_keys=["x", "y"],
                       output_keys=["z"]),
    ])
    assert seq.input_keys == ("x",)
    assert await seq.run({"x": 3}) == {"z": 9}


async def test_output_keys_select_and_return_all() -> None:
    """``output_keys`` picks from everything produced; ``return_all`` returns it all."""
    steps = [_step("a", "x", "y", lambda v: v + 1), _step("b", "y", "z", lambda v: v + 1)]
    assert await SequentialChain("s", steps, output_keys=["y", "z"]).run({"x": 0}) == {
        "y": 1, "z": 2}
    assert await SequentialChain("s", steps, return_all=True).run({"x": 0}) == {
        "x": 0, "y": 1, "z": 2}


def test_output_keys_must_be_produced() -> None:
    """Asking for a key no step produces is a construction error naming it."""
    with pytest.raises(InputValidationError, match="nowhere"):
        SequentialChain("s", [_step("a", "x", "y", str)], output_keys=["nowhere"])


@pytest.mark.parametrize("steps", [[], ["not a chain"], None])
def test_steps_must_be_chains(steps: Any) -> None:
    """A sequence needs at least one chain."""
    with pytest.raises(InputValidationError, match="steps"):
        SequentialChain("s", steps)


async def test_inputs_needed_by_later_steps_are_required() -> None:
    """An input only a later step needs is still required, and listed when missing."""
    seq = SequentialChain("s", [
        _step("a", "x", "y", str),
        TransformChain("b", lambda d: {"z": d["y"] + d["w"]}, input_keys=["y", "w"],
                       output_keys=["z"]),
    ])
    assert seq.input_keys == ("x", "w")
    with pytest.raises(ChainInputError) as caught:
        await seq.run({})
    assert caught.value.missing == ["x", "w"]


async def test_failure_names_the_step() -> None:
    """A failing step is named in the error; later steps do not run."""
    ran: list[str] = []
    llm = MockProvider([RateLimitError("busy")])
    seq = SequentialChain("pipeline", [
        _step("prep", "text", "q", str.strip),
        SimpleChain("ask", llm, "{{ q }}"),
        TransformChain("after", lambda d: ran.append("after") or {"done": True},
                       input_keys=["result"], output_keys=["done"]),
    ])
    with pytest.raises(RateLimitError) as caught:
        await seq.run({"text": " hi "})
    assert caught.value.node == "ask"
    assert ran == []


async def test_pipe_builds_one_flat_sequence() -> None:
    """``a | b | c`` is one sequence of three steps, returning the last step's outputs."""
    @chain
    def one(x: int) -> int:
        return x + 1

    @chain(output_key="x2")
    def two(one: int) -> int:
        return one * 10

    @chain
    def three(x2: int) -> str:
        return f"={x2}"

    piped = one | two | three
    assert isinstance(piped, SequentialChain)
    assert [step.name for step in piped.steps] == ["one", "two", "three"]
    assert piped.name == "one | two | three"
    assert await piped.run({"x": 1}) == {"three": "=20"}


async def test_a_named_sequence_is_a_step_when_piped() -> None:
    """Piping an explicitly built sequence keeps it as one step."""
    inner = SequentialChain("inner", [_step("a", "x", "y", str)])
    piped = inner | _step("b", "y", "z", len)
    assert [step.name for step in piped.steps] == ["inner", "b"]


def test_pipe_with_a_non_chain_is_a_type_error() -> None:
    """``chain | 3`` is a TypeError, as Python reports unsupported operands."""
    with pytest.raises(TypeError):
        _step("a", "x", "y", str) | 3  # type: ignore[operator]


_FUNCTIONS: list[tuple[str, Callable[[int], int]]] = [
    ("inc", lambda v: v + 1), ("double", lambda v: v * 2), ("neg", lambda v: -v),
    ("square", lambda v: v * v), ("mod7", lambda v: v % 7), ("sub3", lambda v: v - 3),
]


@given(picks=st.lists(st.sampled_from(range(len(_FUNCTIONS))), min_size=1, max_size=8),
       start=st.integers(min_value=-1000, max_value=1000))
async def test_sequence_of_transforms_equals_function_composition(picks: list[int],
                                                                  start: int) -> None:
    """A SequentialChain of TransformChains computes the composition of their functions."""
    steps = []
    expected = start
    for position, pick in enumerate(picks):
        name, fn = _FUNCTIONS[pick]
        steps.append(_step(f"{name}{position}", f"v{position}", f"v{position + 1}", fn))
        expected = fn(expected)
    seq = SequentialChain("composed", steps)
    assert await seq.run({"v0": start}) == {f"v{len(picks)}": expected}


@given(picks=st.lists(st.sampled_from(range(len(_FUNCTIONS))), min_size=1, max_size=8),
       start=st.integers(min_value=-1000, max_value=1000))
async def test_in_place_updates_compose_too(picks: list[int], start: int) -> None:
    """Steps that all rewrite one key compose in order: later outputs replace earlier."""
    steps = [_step(f"{_FUNCTIONS[p][0]}{i}", "v", "v", _FUNCTIONS[p][1])
             for i, p in enumerate(picks)]
    expected = start
    for pick in picks:
        expected = _FUNCTIONS[pick][1](expected)
    assert await SequentialChain("composed", steps).run({"v": start}) == {"v": expected}


async def test_last_step_without_declared_outputs_returns_what_it_returns() -> None:
    """A last step that declares no outputs still has its outputs returned."""
    shout = TransformChain("shout", lambda d: {"text": d["x"].upper()})
    assert await (_step("copy", "x", "x", str) | shout).run({"x": "hi"}) == {"text": "HI"}
