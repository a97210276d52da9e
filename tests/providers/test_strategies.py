"""Routing strategies: rotation, weighting, load and latency choices, and lookup by name."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainweave.errors import ConfigurationError
from chainweave.providers.strategies import (
    LeastInFlight,
    LowestLatency,
    RandomChoice,
    RoundRobin,
    RoutingStrategy,
    WeightedRoundRobin,
    strategy_named,
)

NAMES = "abcdefgh"


@dataclass(frozen=True, slots=True)
class Cand:
    """A stand-in for the manager's Deployment: just the fields a strategy reads."""

    name: str
    weight: int = 1
    in_flight: int = 0
    latency_ewma_ms: float | None = None


def cands(*names: str, in_flight: int = 0, latency_ewma_ms: float | None = None) -> list[Cand]:
    """Weight-1 candidates named by ``names``, all with the same load and latency."""
    return [Cand(name, in_flight=in_flight, latency_ewma_ms=latency_ewma_ms) for name in names]


def picks(strategy: RoutingStrategy, candidates: Sequence[Cand], calls: int,
          group: str = "m") -> list[str]:
    """The names ``strategy`` chooses over ``calls`` calls with a fixed list."""
    return [strategy.choose(candidates, group).name for _ in range(calls)]


def spread(names: Sequence[str]) -> int:
    """Most-chosen count minus least-chosen count."""
    counts = Counter(names)
    return max(counts.values()) - min(counts.values())


# --- RoundRobin ------------------------------------------------------------------------


def test_round_robin_is_exactly_fair() -> None:
    """9,999 calls over three candidates give each exactly 3,333."""
    counts = Counter(picks(RoundRobin(), cands("a", "b", "c"), 9_999))
    assert counts == {"a": 3_333, "b": 3_333, "c": 3_333}


def test_round_robin_follows_registration_order() -> None:
    """Rotation starts at the first candidate and goes in list order."""
    assert picks(RoundRobin(), cands("a", "b", "c"), 6) == list("abcabc")


def test_round_robin_groups_rotate_independently() -> None:
    """Calls for one group do not move another group's rotation."""
    strategy, candidates = RoundRobin(), cands("a", "b", "c")
    seen: dict[str, list[str]] = {"x": [], "y": []}
    for group in "xxyxyyyx":
        seen[group].append(strategy.choose(candidates, group).name)
    assert seen == {"x": list("abca"), "y": list("abca")}


stretches = st.lists(
    st.tuples(st.lists(st.sampled_from(NAMES), min_size=1, max_size=6, unique=True),
              st.integers(min_value=1, max_value=40)),
    min_size=1, max_size=8)


@given(stretches)
def test_round_robin_each_stable_stretch_is_fair(plan: list[tuple[list[str], int]]) -> None:
    """As the list shrinks and grows, each stretch between changes is fair within one call.

    "Fair" here: during a stretch in which the list does not change, only its members
    are chosen and, if the stretch has at least ``n`` calls, every member is chosen and
    no two members' counts differ by more than one.
    """
    strategy = RoundRobin()
    for names, calls in plan:
        chosen = picks(strategy, cands(*names), calls)
        counts = Counter(chosen)
        assert set(counts) <= set(names)
        full = [counts[name] for name in names]
        assert max(full) - min(full) <= 1 or calls < len(names)


def test_round_robin_reaches_a_new_candidate_within_one_rotation() -> None:
    """A candidate that joins is chosen within the next ``len(candidates)`` calls."""
    strategy = RoundRobin()
    picks(strategy, cands("a", "b"), 5)
    assert "c" in picks(strategy, cands("a", "b", "c"), 3)


def test_round_robin_stays_exact_across_threads() -> None:
    """Three threads sharing one strategy still split 9,999 calls exactly evenly."""
    strategy, candidates = RoundRobin(), cands("a", "b", "c")
    results: list[list[str]] = [[] for _ in range(3)]
    threads = [threading.Thread(target=lambda out=out: out.extend(
        picks(strategy, candidates, 3_333))) for out in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Counter(name for out in results for name in out) == {
        "a": 3_333, "b": 3_333, "c": 3_333}


# --- WeightedRoundRobin ----------------------------------------------------------------


def weighted(*weights: int) -> list[Cand]:
    """Candidates a, b, c, ... with the given weights."""
    return [Cand(NAMES[i], weight=w) for i, w in enumerate(weights)]


def test_weighted_round_robin_matches_nginx_sequence() -> None:
    """Weights 5, 1, 1 give nginx's smooth order ``a a b a c a a``."""
    assert picks(WeightedRoundRobin(), weighted(5, 1, 1), 7) == list("aabacaa")


@given(st.lists(st.integers(min_value=1, max_value=20), min_size=1, max_size=6),
       st.integers(min_value=1, max_value=4))
def test_weighted_round_robin_each_cycle_is_exact(weights: list[int], cycles: int) -> None:
    """Every run of ``sum(weights)`` calls chooses each candidate exactly ``weight`` times."""
    total = sum(weights)
    chosen = picks(WeightedRoundRobin(), weighted(*weights), total * cycles)
    for start in range(0, len(chosen), total):
        counts = Counter(chosen[start:start + total])
        assert [counts[NAMES[i]] for i in range(len(weights))] == weights


@given(st.lists(st.integers(min_value=1, max_value=10), min_size=1, max_size=4))
def test_weighted_round_robin_interleaves(weights: list[int]) -> None:
    """Up to four candidates, every prefix is within one call of its exact share: no runs."""
    total = sum(weights)
    counts = dict.fromkeys(NAMES[:len(weights)], 0)
    strategy, candidates = WeightedRoundRobin(), weighted(*weights)
    for calls in range(1, total + 1):
        counts[strategy.choose(candidates, "m").name] += 1
        for i, weight in enumerate(weights):
            assert abs(counts[NAMES[i]] - calls * weight / total) < 1


def test_weighted_round_robin_groups_are_independent() -> None:
    """Each group runs its own smooth sequence."""
    strategy, candidates = WeightedRoundRobin(), weighted(5, 1, 1)
    first = [strategy.choose(candidates, group).name for group in ("x", "y") * 7]
    assert first[0::2] == first[1::2] == list("aabacaa")


def test_weighted_round_robin_shares_by_weight_after_a_candidate_leaves() -> None:
    """When one candidate leaves, the rest share later calls by weight, within a call."""
    strategy = WeightedRoundRobin()
    a, b, c = weighted(3, 2, 1)
    picks(strategy, [a, b, c], 4)
    counts = Counter(picks(strategy, [a, c], 400))
    assert abs(counts["a"] - 300) <= 1
    assert abs(counts["c"] - 100) <= 1


# --- LeastInFlight ---------------------------------------------------------------------


def test_least_in_flight_picks_the_least_busy() -> None:
    """The candidate with the fewest calls in flight wins, wherever it is in the list."""
    candidates = [Cand("a", in_flight=4), Cand("b", in_flight=2), Cand("c", in_flight=1)]
    assert picks(LeastInFlight(), candidates, 3) == ["c", "c", "c"]


def test_least_in_flight_rotates_ties() -> None:
    """Equally idle candidates take turns instead of the first always winning."""
    candidates = [Cand("a", in_flight=1), *cands("b", "c", "d", in_flight=0)]
    assert picks(LeastInFlight(), candidates, 6) == list("bcdbcd")


# --- LowestLatency ---------------------------------------------------------------------


def test_lowest_latency_picks_the_fastest() -> None:
    """The candidate with the lowest latency average wins."""
    candidates = [Cand("a", latency_ewma_ms=120.0), Cand("b", latency_ewma_ms=35.5),
                  Cand("c", latency_ewma_ms=80.0)]
    assert picks(LowestLatency(), candidates, 3) == ["b", "b", "b"]


def test_lowest_latency_tries_unmeasured_first_in_turn() -> None:
    """Candidates without a latency yet are chosen before any measured one, taking turns."""
    candidates = [Cand("a", latency_ewma_ms=1.0), Cand("b"), Cand("c", latency_ewma_ms=0.0),
                  Cand("d")]
    assert picks(LowestLatency(), candidates, 4) == list("bdbd")


def test_lowest_latency_rotates_ties() -> None:
    """Candidates with the same latency take turns."""
    candidates = [*cands("a", "b", latency_ewma_ms=50.0), Cand("c", latency_ewma_ms=90.0)]
    assert picks(LowestLatency(), candidates, 4) == list("abab")


# --- RandomChoice ----------------------------------------------------------------------


def test_random_choice_matches_weights() -> None:
    """With a seeded rng, 20,000 picks pass a chi-square test against the weights."""
    weights, calls = (1, 2, 7), 20_000
    counts = Counter(picks(RandomChoice(random.Random(20_240_601)), weighted(*weights), calls))
    expected = [calls * w / sum(weights) for w in weights]
    chi_square = sum((counts[NAMES[i]] - e) ** 2 / e for i, e in enumerate(expected))
    assert chi_square < 13.82  # df = 2, p = 0.001


def test_random_choice_is_reproducible_with_a_seed() -> None:
    """Two strategies with equally seeded rngs choose the same sequence."""
    candidates = weighted(3, 1, 2)
    first = picks(RandomChoice(random.Random(7)), candidates, 50)
    assert picks(RandomChoice(random.Random(7)), candidates, 50) == first


# --- all strategies and lookup ---------------------------------------------------------

ALL = [RoundRobin, WeightedRoundRobin, LeastInFlight, LowestLatency, RandomChoice]


@pytest.mark.parametrize("kind", ALL)
def test_a_single_candidate_is_always_chosen(kind: type[RoutingStrategy]) -> None:
    """With one candidate every strategy returns it, call after call."""
    only = Cand("solo", weight=3, in_flight=2, latency_ewma_ms=10.0)
    assert picks(kind(), [only], 5) == ["solo"] * 5


@pytest.mark.parametrize("kind", ALL)
def test_the_chosen_object_is_one_given(kind: type[RoutingStrategy]) -> None:
    """Strategies return the candidate object itself, not a copy or a name."""
    candidates = [Cand("a", weight=2), Cand("b", in_flight=1)]
    chosen = kind().choose(candidates, "m")
    assert any(chosen is c for c in candidates)


@pytest.mark.parametrize(("name", "kind"), [
    ("round_robin", RoundRobin),
    ("weighted_round_robin", WeightedRoundRobin),
    ("least_in_flight", LeastInFlight),
    ("lowest_latency", LowestLatency),
    ("random", RandomChoice),
])
def test_strategy_named_builds_each_strategy(name: str, kind: type[RoutingStrategy]) -> None:
    """Each configuration name builds its strategy."""
    assert type(strategy_named(name)) is kind


def test_strategy_named_gives_fresh_state() -> None:
    """Two lookups give separate strategies, so rotations do not leak between managers."""
    first, second = strategy_named("round_robin"), strategy_named("round_robin")
    first.choose(cands("a", "b"), "m")
    assert second.choose(cands("a", "b"), "m").name == "a"


def test_strategy_named_rejects_unknown_names_listing_the_known() -> None:
    """An unknown name is a ConfigurationError that lists every valid name."""
    with pytest.raises(ConfigurationError, match="unknown routing strategy 'fastest'") as info:
        strategy_named("fastest")
    for name in ("least_in_flight", "lowest_latency", "random", "round_robin",
                 "weighted_round_robin"):
        assert name in info.value.message
