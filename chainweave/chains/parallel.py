"""Chains run side by side on the same inputs: :class:`ParallelChain`.

Every branch gets the parallel chain's inputs and runs concurrently; the outputs hold
each branch's outputs under the branch's name. A policy decides what a failure means:

* ``"fail_fast"`` (default): the first failure cancels the other branches and is raised;
* ``"collect"``: every branch runs to its end; failures go under ``errors_key``;
* ``quorum(n)``: done once ``n`` branches have succeeded (the rest are cancelled), and a
  :class:`~chainweave.errors.QuorumError` once ``n`` can no longer be reached.

What the policy decides after each finished branch is the pure function
:func:`verdict`; the chain itself only starts, awaits, times out and cancels tasks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from chainweave.chains.base import Chain, check_seconds, within
from chainweave.chains.context import RunContext, check_concurrency
from chainweave.errors import (
    ChainTimeoutError,
    ExecutionError,
    InputValidationError,
    QuorumError,
)

__all__ = ["ParallelChain", "Policy", "Quorum", "Verdict", "quorum", "verdict"]


@dataclass(frozen=True, slots=True)
class Quorum:
    """The ``quorum(n)`` policy: succeed once ``n`` branches have succeeded.

    Args:
        n: How many branches must succeed, at least 1.

    Raises:
        InputValidationError: ``n`` is not an integer >= 1.
    """

    n: int

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise InputValidationError(f"quorum: n must be an integer >= 1, got {self.n!r}",
                                       field="n")


def quorum(n: int) -> Quorum:
    """The policy that succeeds once ``n`` branches have succeeded (see :class:`Quorum`).

    Raises:
        InputValidationError: ``n`` is not an integer >= 1.
    """
    return Quorum(n)


#: How a :class:`ParallelChain` treats failing branches.
Policy: TypeAlias = Literal["fail_fast", "collect"] | Quorum

#: What :func:`verdict` decides: keep waiting, return the outputs, or fail.
Verdict: TypeAlias = Literal["wait", "done", "fail"]


def verdict(policy: Policy, total: int, succeeded: int, failed: int) -> Verdict:
    """What ``policy`` makes of a run where ``succeeded`` and ``failed`` of ``total`` ended.

    ``"fail"`` under ``fail_fast`` means the first failure is raised; under a quorum it
    means a :class:`~chainweave.errors.QuorumError`.
    """
    if isinstance(policy, Quorum):
        if succeeded >= policy.n:
            return "done"
        return "fail" if failed > total - policy.n else "wait"
    if policy == "fail_fast" and failed:
        return "fail"
    return "done" if succeeded + failed >= total else "wait"


@dataclass(slots=True)
class _Tally:
    """What the branches of one run did so far, in the order they finished."""

    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, Exception] = field(default_factory=dict)
    cancelled: list[str] = field(default_factory=list)


class ParallelChain(Chain):
    """Run ``branches`` concurrently on the same inputs.

    The outputs are ``{branch_name: that branch's outputs, ...}``; in ``collect`` and
    quorum modes they also hold ``errors_key: {branch_name: exception}`` (``{}`` when
    none failed), and a failed or cancelled branch is absent. Those runs record which
    branches ``succeeded``, ``failed`` and were ``cancelled`` in the run's metadata
    under ``["parallel"][name]``.

    Args:
        name: The chain's name.
        branches: The chains to run, by branch name; at least one.
        policy: ``"fail_fast"``, ``"collect"`` or :func:`quorum` ``(n)`` (see the
            module docstring).
        max_concurrency: How many branches run at once; the run's
            ``RunConfig.max_concurrency`` when left out, else all of them.
        timeout: Seconds each branch may take, or a mapping of branch name to seconds
            (branches left out have none). A branch past it fails with
            :class:`~chainweave.errors.ChainTimeoutError`, like any other failure.
        errors_key: Where ``collect`` and quorum runs put the failures.
        description: What the chain does.

    Raises:
        InputValidationError: No branches, a branch that is not a chain, a bad branch
            name, policy, quorum, concurrency limit or timeout, or an ``errors_key``
            that is also a branch name.
    """

    def __init__(self, name: str, branches: Mapping[str, Chain], *,
                 policy: Policy = "fail_fast", max_concurrency: int | None = None,
                 timeout: float | Mapping[str, float] | None = None,
                 errors_key: str = "errors", description: str = "") -> None:
        self.branches = _check_branches(name, branches)
        self.policy = _check_policy(name, policy, len(self.branches))
        problem = check_concurrency(max_concurrency)
        if problem is not None:
            raise InputValidationError(f"{name}: max_concurrency {problem}",
                                       field="max_concurrency", node=name)
        self.max_concurrency = max_concurrency
        self.timeouts = _check_timeouts(name, timeout, self.branches)
        if not isinstance(errors_key, str) or not errors_key:
            raise InputValidationError(f"{name}: errors_key must be a non-empty string, "
                                       f"got {errors_key!r}", field="errors_key", node=name)
        if errors_key in self.branches:
            raise InputValidationError(f"{name}: errors_key {errors_key!r} is also a branch "
                                       "name; choose another", field="errors_key", node=name)
        self.errors_key = errors_key
        needed = sorted({key for chain in self.branches.values() for key in chain.input_keys})
        outputs = list(self.branches)
        if self.policy != "fail_fast":
            outputs.append(errors_key)
        super().__init__(name, description=description, input_keys=needed,
                         output_keys=outputs)

    async def _call(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        limit = ctx.max_concurrency(self.max_concurrency)
        gate = asyncio.Semaphore(limit) if limit is not None else None
        tasks = {asyncio.ensure_future(self._branch(branch, dict(inputs), ctx, gate)): branch
                 for branch in self.branches}
        order = {task: index for index, task in enumerate(tasks)}
        tally = _Tally()
        pending = set(tasks)
        decision: Verdict = "wait"
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(done, key=order.__getitem__):
                    _settle(tasks[task], task, tally, self.name)
                decision = verdict(self.policy, len(tasks), len(tally.outputs),
                                   len(tally.errors))
                if decision != "wait":
                    break
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        tally.cancelled = [tasks[task] for task in tasks if task in pending]
        return self._finish(decision, tally, ctx)

    async def _branch(self, branch: str, inputs: dict[str, Any], ctx: RunContext,
                      gate: asyncio.Semaphore | None) -> dict[str, Any]:
        if gate is None:
            return await self._timed(branch, inputs, ctx)
        async with gate:
            return await self._timed(branch, inputs, ctx)

    async def _timed(self, branch: str, inputs: dict[str, Any],
                     ctx: RunContext) -> dict[str, Any]:
        chain = self.branches[branch]
        seconds = self.timeouts.get(branch)
        if seconds is None:
            return await chain.call(inputs, ctx)
        # The branch sees a cancellation, not an error: its ErrorEvent is sent for it.
        return await within(seconds, chain.call(inputs, ctx), ctx.child(chain.name),
                            lambda: ChainTimeoutError(
                                f"branch {branch!r} of {self.name!r} timed out after "
                                f"{seconds}s", node=chain.name,
                                details={"timeout": seconds, "branch": branch}))

    def _finish(self, decision: Verdict, tally: _Tally, ctx: RunContext) -> dict[str, Any]:
        ordered = {branch: tally.outputs[branch] for branch in self.branches
                   if branch in tally.outputs}
        errors = {branch: tally.errors[branch] for branch in self.branches
                  if branch in tally.errors}
        if self.policy == "fail_fast":
            if decision == "fail":
                raise next(iter(tally.errors.values()))
            return ordered
        ctx.metadata.setdefault("parallel", {})[self.name] = {
            "succeeded": list(ordered),
            "failed": list(errors),
            "cancelled": tally.cancelled,
        }
        if isinstance(self.policy, Quorum) and decision == "fail":
            raise self._quorum_error(self.policy.n, tally)
        return {**ordered, self.errors_key: errors}

    def _quorum_error(self, n: int, tally: _Tally) -> QuorumError:
        failures = "; ".join(f"{branch}: {type(exc).__name__}: {exc}"
                             for branch, exc in tally.errors.items())
        return QuorumError(
            f"{self.name}: quorum of {n} of {len(self.branches)} branches can no "
            f"longer be reached: {len(tally.outputs)} succeeded, {len(tally.errors)} failed "
            f"({failures})", errors=dict[str, BaseException](tally.errors), node=self.name,
            details={"quorum": n, "succeeded": list(tally.outputs),
                     "failed": list(tally.errors)})

    def _check_outputs(self, outputs: object) -> None:
        # collect and quorum runs leave failed and cancelled branches out by design; the
        # outputs are built here, so only fail_fast's promise of every branch is checked.
        if self.policy == "fail_fast":
            super()._check_outputs(outputs)


def _settle(branch: str, task: asyncio.Task[dict[str, Any]], tally: _Tally,
            owner: str) -> None:
    """Record a finished branch task's outputs or error in ``tally``."""
    if task.cancelled():
        tally.errors[branch] = ExecutionError(
            f"branch {branch!r} of {owner!r} was cancelled from inside", node=owner,
            details={"branch": branch})
        return
    error = task.exception()
    if error is None:
        tally.outputs[branch] = task.result()
    elif isinstance(error, Exception):
        tally.errors[branch] = error
    else:
        raise error


def _check_branches(name: str, branches: object) -> dict[str, Chain]:
    if not isinstance(branches, Mapping) or not branches:
        raise InputValidationError(f"{name}: branches must be a non-empty mapping of branch "
                                   f"name to chain, got {branches!r}", field="branches",
                                   node=name)
    bad_names = [key for key in branches if not isinstance(key, str) or not key.strip()]
    if bad_names:
        raise InputValidationError(f"{name}: branch names must be non-empty strings, got "
                                   f"{bad_names!r}", field="branches", node=name)
    not_chains = [key for key, value in branches.items() if not isinstance(value, Chain)]
    if not_chains:
        raise InputValidationError(f"{name}: branches {not_chains} are not chains",
                                   field="branches", node=name)
    return dict(branches)


def _check_policy(name: str, policy: object, total: int) -> Policy:
    if isinstance(policy, Quorum):
        if policy.n > total:
            raise InputValidationError(f"{name}: quorum({policy.n}) needs at least "
                                       f"{policy.n} branches; there are {total}",
                                       field="policy", node=name)
        return policy
    if policy == "fail_fast" or policy == "collect":
        return policy
    raise InputValidationError(f"{name}: policy must be 'fail_fast', 'collect' or quorum(n), "
                               f"got {policy!r}", field="policy", node=name)


def _check_timeouts(name: str, timeout: object,
                    branches: Mapping[str, Chain]) -> dict[str, float]:
    if not isinstance(timeout, Mapping):
        seconds = check_seconds(name, "timeout", timeout)
        return {} if seconds is None else dict.fromkeys(branches, seconds)
    unknown = [key for key in timeout if key not in branches]
    if unknown:
        raise InputValidationError(f"{name}: timeout names unknown branches {unknown}; "
                                   f"branches are {list(branches)}", field="timeout",
                                   node=name)
    checked = {key: check_seconds(name, f"timeout[{key!r}]", value)
               for key, value in timeout.items()}
    return {key: value for key, value in checked.items() if value is not None}
