"""Chains run one after another, each seeing the inputs and every earlier output."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from chainweave.chains.base import Chain
from chainweave.chains.context import RunContext
from chainweave.errors import InputValidationError

__all__ = ["SequentialChain"]


class SequentialChain(Chain):
    """Run ``steps`` in order; outputs flow forward as one merged dict.

    Each step sees the run's inputs plus every earlier step's outputs (a later output
    replaces an earlier value of the same key). The chain's inputs are what the steps
    need that no earlier step produces.

    Args:
        name: The chain's name.
        steps: The chains to run, at least one.
        output_keys: What to return, chosen from the inputs and every step's outputs;
            the last step's outputs when left out.
        return_all: Return the whole merged dict (inputs and every output) instead.
        description: What the chain does.
        piped: Made by ``a | b``, so a further ``| c`` extends it instead of nesting.

    Raises:
        InputValidationError: No steps, a step that is not a chain, or an output key no
            step produces.

    A failing step's error names it: ``node`` on chainweave errors, a note otherwise.
    """

    def __init__(self, name: str, steps: Sequence[Chain], *,
                 output_keys: Iterable[str] | None = None, return_all: bool = False,
                 description: str = "", piped: bool = False) -> None:
        steps = list(steps) if isinstance(steps, Sequence) else []
        if not steps or not all(isinstance(step, Chain) for step in steps):
            raise InputValidationError(f"{name}: steps must be a non-empty list of chains, "
                                       f"got {steps!r}", field="steps", node=name)
        needed: list[str] = []
        available: set[str] = set()
        for step in steps:
            needed.extend(key for key in step.input_keys
                          if key not in available and key not in needed)
            available.update(step.output_keys)
        if output_keys is None:
            chosen: tuple[str, ...] = () if return_all else steps[-1].output_keys
        else:
            chosen = tuple([output_keys] if isinstance(output_keys, str) else output_keys)
            unknown = [key for key in chosen if key not in available and key not in needed]
            if unknown:
                raise InputValidationError(
                    f"{name}: output_keys {unknown} are produced by no step "
                    f"(steps produce {sorted(available)})", field="output_keys", node=name)
        super().__init__(name, description=description, input_keys=needed, output_keys=chosen)
        self.steps = steps
        self.return_all = return_all
        self.piped = piped
        # A last step that declares no outputs returns whatever it returns.
        self._last_as_is = output_keys is None and not return_all and not chosen

    async def _call(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        values = dict(inputs)
        outputs: dict[str, Any] = {}
        for step in self.steps:
            outputs = await step.call(values, ctx)
            values.update(outputs)
        if self.return_all:
            return values
        if self._last_as_is:
            return outputs
        return {key: values[key] for key in self.output_keys}
