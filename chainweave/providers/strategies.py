"""Routing strategies: which of the available deployments serves the next call.

A strategy is pure choice. The manager filters its deployments down to the available
ones (breaker closed, not cooling down, within limits), keeps them in registration order,
and asks ``choose(candidates, group)``; the strategy looks only at the
:class:`Candidate` fields and at its own per-group state. ``group`` is the model or alias
being routed, so rotation over one model's deployments does not disturb another's.

Every ``choose`` is synchronous, O(n) in the candidates and allocation-free once a group
has been seen, so under asyncio a call is atomic with respect to other tasks. The
rotation counters are :func:`itertools.count` objects, whose ``next()`` is atomic under
the GIL, so rotation stays fair even when threads share a strategy; the smooth weighted
round-robin state is read and written under a lock.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from chainweave.errors import ConfigurationError

__all__ = [
    "C",
    "Candidate",
    "LeastInFlight",
    "LowestLatency",
    "RandomChoice",
    "RoundRobin",
    "RoutingStrategy",
    "WeightedRoundRobin",
    "strategy_named",
]


class Candidate(Protocol):
    """What a strategy may look at (the manager's ``Deployment`` objects satisfy it)."""

    @property
    def name(self) -> str:
        """Unique among the candidates of a group; keys per-candidate state."""
        ...

    @property
    def weight(self) -> int:
        """Relative share of traffic, ``>= 1``."""
        ...

    @property
    def in_flight(self) -> int:
        """Calls running on this candidate now."""
        ...

    @property
    def latency_ewma_ms(self) -> float | None:
        """Moving average latency of successful calls; ``None`` until the first success."""
        ...


C = TypeVar("C", bound=Candidate)


class RoutingStrategy(Protocol):
    """Chooses one candidate for a call."""

    def choose(self, candidates: Sequence[C], group: str) -> C:
        """Pick one of ``candidates``.

        Args:
            candidates: Non-empty, in registration order, already filtered to the
                available ones.
            group: The model or alias being routed; strategies keep state per group.
        """
        ...


class _Turns:
    """A rotation counter per group: 0, 1, 2, ... for each group independently."""

    __slots__ = ("_counters",)

    def __init__(self) -> None:
        self._counters: dict[str, itertools.count[int]] = {}

    def next(self, group: str) -> int:
        counter = self._counters.get(group)
        if counter is None:
            # setdefault, not assignment: two threads meeting a new group share one counter.
            counter = self._counters.setdefault(group, itertools.count())
        return next(counter)


class RoundRobin:
    """Strict rotation per group: call ``k`` of a group goes to ``candidates[k % n]``.

    With a stable candidate list every candidate gets the same number of calls, give or
    take one. When the list changes the counter carries on, so a changed list starts
    at an arbitrary place in its rotation; each stable stretch is again fair to within
    one call.
    """

    __slots__ = ("_turns",)

    def __init__(self) -> None:
        self._turns = _Turns()

    def choose(self, candidates: Sequence[C], group: str) -> C:
        """The next candidate in rotation for ``group``."""
        return candidates[self._turns.next(group) % len(candidates)]


class WeightedRoundRobin:
    """Smooth weighted round-robin (nginx's algorithm), per group, keyed by candidate name.

    Each call adds every candidate's weight to its running score, picks the highest
    score (the earliest on a tie) and takes the total weight off the winner. Over any
    ``sum(weights)`` consecutive calls on a stable list each candidate is chosen exactly
    ``weight`` times, spread out rather than in runs: weights 5, 1, 1 give
    ``a a b a c a a``. A candidate that leaves keeps its score for when it comes back.
    """

    __slots__ = ("_lock", "_scores")

    def __init__(self) -> None:
        self._scores: dict[str, dict[str, int]] = {}
        self._lock = threading.Lock()

    def choose(self, candidates: Sequence[C], group: str) -> C:
        """The candidate with the highest running score for ``group``."""
        with self._lock:
            scores = self._scores.get(group)
            if scores is None:
                scores = self._scores[group] = {}
            best = candidates[0]
            best_score = 0
            total = 0
            for index, candidate in enumerate(candidates):
                name, weight = candidate.name, candidate.weight
                score = scores.get(name, 0) + weight
                scores[name] = score
                total += weight
                if index == 0 or score > best_score:
                    best, best_score = candidate, score
            scores[best.name] = best_score - total
            return best


def _least(candidates: Sequence[C], turn: int, key: Callable[[C], float]) -> C:
    """The candidate with the smallest key; among ties, the ``turn % ties``-th one.

    Two passes instead of collecting the tied candidates: no list is allocated.
    """
    low = key(candidates[0])
    ties = 0
    for candidate in candidates:
        value = key(candidate)
        if value < low:
            low, ties = value, 1
        elif value == low:
            ties += 1
    wanted = turn % ties
    for candidate in candidates:
        if key(candidate) == low:
            if wanted == 0:
                return candidate
            wanted -= 1
    raise AssertionError("unreachable: a tie counted in the first pass was not found")


def _in_flight(candidate: Candidate) -> float:
    return candidate.in_flight


def _latency(candidate: Candidate) -> float:
    latency = candidate.latency_ewma_ms
    # Unmeasured candidates sort first, so each gets a call and a figure.
    return -1.0 if latency is None else latency


class LeastInFlight:
    """The candidate with the fewest calls in flight; ties rotate per group.

    The manager must count a call as in flight before it asks for the next choice, or
    concurrent calls all see the same counts.
    """

    __slots__ = ("_turns",)

    def __init__(self) -> None:
        self._turns = _Turns()

    def choose(self, candidates: Sequence[C], group: str) -> C:
        """The least busy candidate; equal ones take turns."""
        return _least(candidates, self._turns.next(group), _in_flight)


class LowestLatency:
    """The candidate with the lowest latency average; ties rotate per group.

    Candidates without a figure yet (``latency_ewma_ms is None``) are tried first, in
    turn, so a new or recovered deployment is measured instead of being starved.
    """

    __slots__ = ("_turns",)

    def __init__(self) -> None:
        self._turns = _Turns()

    def choose(self, candidates: Sequence[C], group: str) -> C:
        """The fastest candidate, after any not yet measured; equal ones take turns."""
        return _least(candidates, self._turns.next(group), _latency)


class RandomChoice:
    """A random candidate, each with probability ``weight / sum(weights)``.

    Keeps no state, so ``group`` is ignored.

    Args:
        rng: The source of randomness; pass a seeded ``random.Random`` for
            reproducible runs. Defaults to a fresh, OS-seeded one.
    """

    __slots__ = ("_rng",)

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng if rng is not None else random.Random()

    def choose(self, candidates: Sequence[C], group: str) -> C:
        """A weighted random candidate."""
        total = 0
        for candidate in candidates:
            total += candidate.weight
        point = self._rng.random() * total
        for candidate in candidates:
            point -= candidate.weight
            if point < 0:
                return candidate
        # Only reachable through float rounding at the very top of the range.
        return candidates[-1]


_STRATEGIES: dict[str, Callable[[], RoutingStrategy]] = {
    "least_in_flight": LeastInFlight,
    "lowest_latency": LowestLatency,
    "random": RandomChoice,
    "round_robin": RoundRobin,
    "weighted_round_robin": WeightedRoundRobin,
}


def strategy_named(name: str) -> RoutingStrategy:
    """A new strategy (with fresh state) for its configuration name.

    Args:
        name: ``"round_robin"``, ``"weighted_round_robin"``, ``"least_in_flight"``,
            ``"lowest_latency"`` or ``"random"``.

    Raises:
        ConfigurationError: ``name`` is none of those; the message lists them.
    """
    factory = _STRATEGIES.get(name)
    if factory is None:
        known = sorted(_STRATEGIES)
        raise ConfigurationError(
            f"unknown routing strategy {name!r}; choose one of {', '.join(known)}",
            details={"strategy": name, "known": known})
    return factory()
