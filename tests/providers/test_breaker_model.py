"""The circuit breaker checked against a simple reference model (Hypothesis, stateful)."""

from __future__ import annotations

import random

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from chainweave.providers.breaker import BreakerPolicy, BreakerState, CircuitBreaker
from tests.providers.test_breaker import Changes, FakeClock


class ReferenceBreaker:
    """The spec, written as plainly as possible: a list of outcomes and open timestamps."""

    def __init__(self, policy: BreakerPolicy, clock: FakeClock) -> None:
        self.policy, self.clock = policy, clock
        self.outcomes: list[bool] = []  # True: failed; every call recorded since the last close
        self.openings: list[float] = []  # when each trip happened
        self.trips_since_close = 0
        self.opened_at: float | None = None  # None: closed
        self.probes = 0

    def cooldown(self) -> float:
        p = self.policy
        return min(p.cooldown * p.cooldown_multiplier ** (self.trips_since_close - 1),
                   p.max_cooldown)

    def state(self) -> BreakerState:
        if self.opened_at is None:
            return "closed"
        return "open" if self.clock.now < self.opened_at + self.cooldown() else "half_open"

    def retry_after(self) -> float | None:
        if self.opened_at is None or self.state() != "open":
            return None
        return self.opened_at + self.cooldown() - self.clock.now

    def allow(self) -> bool:
        state = self.state()
        if state == "half_open" and self.probes < self.policy.half_open_probes:
            self.probes += 1
            return True
        return state == "closed"

    def record(self, failed: bool) -> None:
        state = self.state()
        if state == "closed":
            self.outcomes.append(failed)
            if self.should_trip():
                self.trip()
        elif state == "half_open" and self.probes > 0:
            if failed:
                self.trip()
            else:
                self.outcomes, self.trips_since_close, self.opened_at = [], 0, None
                self.probes = 0

    def should_trip(self) -> bool:
        p = self.policy
        recent = self.outcomes[-p.window:]
        streak = len(self.outcomes) - (
            max(i for i, f in enumerate(self.outcomes) if not f) + 1
            if False in self.outcomes else 0)
        by_rate = (p.failure_rate is not None and len(recent) >= p.min_calls
                   and recent.count(True) / len(recent) >= p.failure_rate)
        return streak >= p.failure_threshold or by_rate

    def trip(self) -> None:
        self.openings.append(self.clock.now)
        self.trips_since_close += 1
        self.opened_at = self.clock.now
        self.probes = 0

    def ignored(self) -> None:
        if self.state() == "half_open" and self.probes > 0:
            self.probes -= 1


@st.composite
def policies(draw: st.DrawFn) -> BreakerPolicy:
    """Small policies whose cooldown arithmetic is exact in binary floating point."""
    window = draw(st.integers(1, 6))
    cooldown = draw(st.sampled_from([1.0, 2.0, 5.0]))
    return BreakerPolicy(
        failure_threshold=draw(st.integers(1, 4)),
        failure_rate=draw(st.none() | st.sampled_from([0.25, 0.5, 1.0])),
        window=window,
        min_calls=draw(st.integers(1, window)),
        slow_call_seconds=draw(st.none() | st.just(1.0)),
        cooldown=cooldown,
        cooldown_multiplier=draw(st.sampled_from([1.0, 1.5, 2.0])),
        max_cooldown=cooldown * draw(st.sampled_from([1.0, 4.0, 20.0])),
        half_open_probes=draw(st.integers(1, 3)),
    )


class BreakerMatchesModel(RuleBasedStateMachine):
    """Drive the real breaker and the reference model with the same calls and clock."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.changes: Changes = []
        self.admissions: list[tuple[BreakerState, bool]] = []  # (model state, admitted)

    @initialize(policy=policies())
    def build(self, policy: BreakerPolicy) -> None:
        self.model = ReferenceBreaker(policy, self.clock)
        self.breaker = CircuitBreaker(policy, clock=self.clock,
                                      on_change=lambda old, new: self.changes.append((old, new)))

    @rule(seconds=st.sampled_from([0.5, 1.0, 2.0, 3.0, 7.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def allow(self) -> None:
        state = self.model.state()
        expected = self.model.allow()
        admitted = self.breaker.allow()
        self.admissions.append((state, admitted))
        assert admitted == expected

    @rule(duration=st.none() | st.sampled_from([0.5, 1.0, 1.5]))
    def record_success(self, duration: float | None) -> None:
        slow = self.model.policy.slow_call_seconds
        self.model.record(slow is not None and duration is not None and duration > slow)
        self.breaker.record_success(duration)

    @rule()
    def record_failure(self) -> None:
        self.model.record(True)
        self.breaker.record_failure()

    @rule()
    def record_ignored(self) -> None:
        self.model.ignored()
        self.breaker.record_ignored()

    @invariant()
    def trips_agree(self) -> None:
        assert self.breaker.trips == len(self.model.openings)

    @invariant()
    def state_agrees(self) -> None:
        assert self.breaker.state == self.model.state()

    @invariant()
    def counters_agree(self) -> None:
        snap = self.breaker.snapshot()
        expected = (self.model.probes, self.model.retry_after())
        assert (snap["probes_in_flight"], snap["retry_after"]) == expected

    @invariant()
    def no_call_admitted_while_open(self) -> None:
        assert not any(admitted for state, admitted in self.admissions if state == "open")

    @invariant()
    def on_change_is_a_chain_of_real_changes(self) -> None:
        states = ["closed"] + [new for _, new in self.changes]
        assert [old for old, _ in self.changes] == states[:-1]
        assert all(old != new for old, new in self.changes)
        assert states[-1] == self.breaker.state


BreakerMatchesModel.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None)
test_breaker_matches_reference_model = BreakerMatchesModel.TestCase


def test_no_call_is_admitted_while_open_across_10000_calls() -> None:
    """10,000 simulated calls with random outcomes: none is admitted while open."""
    rng = random.Random(20240611)
    clock = FakeClock()
    breaker = CircuitBreaker(
        BreakerPolicy(failure_threshold=3, window=10, min_calls=5, slow_call_seconds=2.0,
                      cooldown=1.0, max_cooldown=8.0, half_open_probes=2),
        clock=clock)
    in_flight = admitted_while_open = rejected = 0
    for _ in range(10_000):
        clock.advance(rng.choice([0.0, 0.05, 0.2, 1.0]))
        state = breaker.state
        if breaker.allow():
            in_flight += 1
            admitted_while_open += state == "open"
        else:
            rejected += 1
        while in_flight and rng.random() < 0.6:  # calls end late and out of order
            in_flight -= 1
            roll = rng.random()
            if roll < 0.4:
                breaker.record_failure()
            elif roll < 0.45:
                breaker.record_ignored()
            else:
                breaker.record_success(duration=rng.uniform(0.0, 3.0))
    assert breaker.trips > 10  # the breaker really did open, often
    assert rejected > 1000
    assert admitted_while_open == 0
