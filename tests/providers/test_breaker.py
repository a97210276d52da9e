"""Tests for chainweave.providers.breaker: every rule with a fake clock."""

from __future__ import annotations

from typing import Any

import pytest

from chainweave.errors import InputValidationError
from chainweave.providers.breaker import BreakerPolicy, BreakerState, CircuitBreaker


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


Changes = list[tuple[BreakerState, BreakerState]]


def make(clock: FakeClock, changes: Changes | None = None, **fields: Any) -> CircuitBreaker:
    """A breaker on ``clock`` with the rate rule off unless ``fields`` turn it on."""
    fields.setdefault("failure_rate", None)
    on_change = None if changes is None else lambda old, new: changes.append((old, new))
    return CircuitBreaker(BreakerPolicy(**fields), clock=clock, on_change=on_change)


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        breaker.record_failure()


def succeed(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        breaker.record_success()


def tripped(clock: FakeClock, changes: Changes | None = None, **fields: Any) -> CircuitBreaker:
    """A breaker opened at ``clock.now`` by consecutive failures (cooldown 10 s by default)."""
    fields.setdefault("failure_threshold", 2)
    fields.setdefault("cooldown", 10.0)
    breaker = make(clock, changes, **fields)
    fail(breaker, fields["failure_threshold"])
    return breaker


def half_open(clock: FakeClock, changes: Changes | None = None, **fields: Any) -> CircuitBreaker:
    """A tripped breaker whose cooldown has just passed."""
    breaker = tripped(clock, changes, **fields)
    clock.advance(breaker.snapshot()["retry_after"])
    return breaker


# --- closed -----------------------------------------------------------------------------


def test_new_breaker_is_closed_and_allows_calls() -> None:
    """A new breaker is closed, admits calls and has never tripped."""
    breaker = make(FakeClock())
    assert (breaker.state, breaker.allow(), breaker.trips) == ("closed", True, 0)


def test_opens_after_threshold_consecutive_failures() -> None:
    """failure_threshold consecutive failures open the breaker."""
    breaker = make(FakeClock(), failure_threshold=3)
    fail(breaker, 2)
    assert breaker.state == "closed"
    breaker.record_failure()
    assert breaker.state == "open"


def test_success_resets_consecutive_failures() -> None:
    """A success between failures restarts the consecutive count."""
    breaker = make(FakeClock(), failure_threshold=3)
    fail(breaker, 2)
    breaker.record_success()
    fail(breaker, 2)
    assert breaker.state == "closed"


def test_opens_when_window_failure_rate_reaches_limit() -> None:
    """Failures / calls over the window reaching failure_rate open the breaker."""
    breaker = make(FakeClock(), failure_threshold=100, failure_rate=0.5, window=4, min_calls=4)
    for _ in range(2):
        breaker.record_failure()
        breaker.record_success()
    assert breaker.state == "open"


def test_rate_rule_waits_for_min_calls() -> None:
    """The rate rule does not apply before the window holds min_calls calls."""
    breaker = make(FakeClock(), failure_threshold=100, failure_rate=0.5, window=10, min_calls=4)
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state == "closed"


def test_a_success_can_complete_min_calls_and_trip() -> None:
    """The rate is checked on every record, so the call reaching min_calls can trip it."""
    breaker = make(FakeClock(), failure_threshold=100, failure_rate=0.5, window=4, min_calls=4)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_success()
    assert breaker.state == "open"


def test_window_forgets_calls_older_than_its_size() -> None:
    """Only the last `window` calls count towards the failure rate."""
    breaker = make(FakeClock(), failure_threshold=100, failure_rate=0.5, window=4, min_calls=4)
    breaker.record_failure()
    succeed(breaker, 3)  # 1 of 4 failed
    breaker.record_failure()  # the first failure slides out: still 1 of 4
    assert breaker.snapshot()["window_failures"] == 1
    assert breaker.state == "closed"


def test_failure_rate_none_disables_rate_rule() -> None:
    """With failure_rate=None only consecutive failures open the breaker."""
    breaker = make(FakeClock(), failure_threshold=3, failure_rate=None, window=4, min_calls=1)
    for _ in range(10):
        fail(breaker, 2)
        breaker.record_success()
    assert breaker.state == "closed"


def test_slow_success_counts_as_failure() -> None:
    """A success slower than slow_call_seconds counts as a failure."""
    breaker = make(FakeClock(), failure_threshold=1, slow_call_seconds=2.0)
    breaker.record_success(duration=2.5)
    assert breaker.state == "open"


def test_success_at_slow_limit_is_not_slow() -> None:
    """A success taking exactly slow_call_seconds is still a success."""
    breaker = make(FakeClock(), failure_threshold=1, slow_call_seconds=2.0)
    breaker.record_success(duration=2.0)
    assert breaker.state == "closed"


def test_success_without_duration_is_never_slow() -> None:
    """record_success() with no duration is a success even with a slow-call limit."""
    breaker = make(FakeClock(), failure_threshold=1, slow_call_seconds=0.001)
    breaker.record_success()
    assert breaker.state == "closed"


def test_duration_is_ignored_without_slow_call_limit() -> None:
    """With slow_call_seconds=None no duration makes a success a failure."""
    breaker = make(FakeClock(), failure_threshold=1)
    breaker.record_success(duration=1e9)
    assert breaker.state == "closed"


def test_record_ignored_changes_nothing_while_closed() -> None:
    """record_ignored leaves a closed breaker's counts alone."""
    breaker = make(FakeClock(), failure_threshold=3)
    fail(breaker, 2)
    before = breaker.snapshot()
    breaker.record_ignored()
    assert breaker.snapshot() == before


# --- open -------------------------------------------------------------------------------


def test_open_breaker_rejects_calls() -> None:
    """An open breaker admits no call before its cooldown has passed."""
    clock = FakeClock()
    breaker = tripped(clock, cooldown=10.0)
    clock.advance(9.999)
    assert breaker.allow() is False


def test_retry_after_counts_down_the_cooldown() -> None:
    """retry_after is the time left until the breaker turns half-open."""
    clock = FakeClock(100.0)
    breaker = tripped(clock, cooldown=10.0)
    clock.advance(4.0)
    assert breaker.retry_after() == pytest.approx(6.0)


def test_retry_after_is_none_unless_open() -> None:
    """retry_after is None while closed and while half-open."""
    clock = FakeClock()
    closed = make(clock)
    opened = half_open(clock)
    assert (closed.retry_after(), opened.retry_after()) == (None, None)


def test_outcomes_while_open_are_ignored() -> None:
    """Outcomes of calls admitted before the breaker opened change nothing."""
    clock = FakeClock()
    breaker = tripped(clock)
    before = breaker.snapshot()
    fail(breaker, 5)
    succeed(breaker, 5)
    assert breaker.snapshot() == before


def test_cooldown_passing_turns_breaker_half_open() -> None:
    """Once the cooldown has passed the breaker reports half_open."""
    clock = FakeClock()
    breaker = tripped(clock, cooldown=10.0)
    clock.advance(10.0)
    assert breaker.state == "half_open"


# --- half-open --------------------------------------------------------------------------


def test_half_open_admits_at_most_k_probes() -> None:
    """Half-open admits half_open_probes calls at once and rejects the next."""
    breaker = half_open(FakeClock(), half_open_probes=3)
    assert [breaker.allow() for _ in range(4)] == [True, True, True, False]


def test_probe_success_closes_breaker() -> None:
    """A probe's success closes the breaker."""
    breaker = half_open(FakeClock())
    breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed"


def test_closing_clears_window_and_consecutive_failures() -> None:
    """Closing after a probe starts with an empty window and no consecutive failures."""
    breaker = half_open(FakeClock(), failure_threshold=3, failure_rate=0.5, min_calls=3)
    breaker.allow()
    breaker.record_success()
    snap = breaker.snapshot()
    assert (snap["window_calls"], snap["consecutive_failures"]) == (0, 0)


def test_probe_failure_reopens_breaker() -> None:
    """A probe's failure opens the breaker again."""
    breaker = half_open(FakeClock())
    breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open"


def test_slow_probe_reopens_breaker() -> None:
    """A probe that succeeds too slowly counts as a failed probe."""
    breaker = half_open(FakeClock(), slow_call_seconds=1.0)
    breaker.allow()
    breaker.record_success(duration=5.0)
    assert breaker.state == "open"


def test_record_ignored_frees_a_probe_slot() -> None:
    """record_ignored while half-open lets one more probe in, and nothing else changes."""
    breaker = half_open(FakeClock(), half_open_probes=1)
    breaker.allow()
    breaker.record_ignored()
    assert (breaker.state, breaker.allow()) == ("half_open", True)


def test_record_ignored_without_probe_in_flight_is_a_no_op() -> None:
    """record_ignored with no probe in flight does not create a spare slot."""
    breaker = half_open(FakeClock(), half_open_probes=1)
    breaker.record_ignored()
    assert [breaker.allow(), breaker.allow()] == [True, False]


def test_outcome_without_probe_in_flight_is_ignored_when_half_open() -> None:
    """A half-open breaker ignores an outcome no probe was admitted for (a stale call)."""
    breaker = half_open(FakeClock())
    breaker.record_failure()
    assert (breaker.state, breaker.trips) == ("half_open", 1)


def test_outcome_after_unnoticed_cooldown_is_ignored() -> None:
    """An outcome arriving after the cooldown passed, before any read, is not a probe's."""
    clock = FakeClock()
    breaker = tripped(clock, cooldown=10.0)
    clock.advance(60.0)
    breaker.record_failure()
    assert (breaker.state, breaker.trips) == ("half_open", 1)


def test_late_probe_outcome_after_close_counts_as_closed_call() -> None:
    """Once one probe closed the breaker, another probe's outcome counts as a normal call."""
    breaker = half_open(FakeClock(), half_open_probes=2, failure_threshold=2)
    breaker.allow()
    breaker.allow()
    breaker.record_success()
    breaker.record_failure()
    snap = breaker.snapshot()
    assert (snap["state"], snap["consecutive_failures"], snap["window_calls"]) == ("closed", 1, 1)


# --- cooldown growth --------------------------------------------------------------------


def reopen(breaker: CircuitBreaker, clock: FakeClock) -> float:
    """Wait out the cooldown, fail one probe, and return the new cooldown."""
    clock.advance(breaker.snapshot()["retry_after"])
    assert breaker.allow()
    breaker.record_failure()
    return float(breaker.snapshot()["retry_after"])


def test_cooldown_grows_with_consecutive_trips() -> None:
    """Each trip without a close in between multiplies the cooldown."""
    clock = FakeClock()
    breaker = tripped(clock, cooldown=1.0, cooldown_multiplier=3.0, max_cooldown=1000.0)
    assert [reopen(breaker, clock) for _ in range(3)] == [3.0, 9.0, 27.0]


def test_cooldown_is_capped_at_max_cooldown() -> None:
    """The grown cooldown never exceeds max_cooldown."""
    clock = FakeClock()
    breaker = tripped(clock, cooldown=1.0, cooldown_multiplier=2.0, max_cooldown=5.0)
    assert [reopen(breaker, clock) for _ in range(4)] == [2.0, 4.0, 5.0, 5.0]


def test_cooldown_growth_survives_long_outages() -> None:
    """Thousands of failed probes with a huge multiplier stay at the cap, never overflow."""
    clock = FakeClock()
    breaker = tripped(clock, cooldown=1.0, cooldown_multiplier=1e6, max_cooldown=300.0)
    for _ in range(2_000):
        cooldown = reopen(breaker, clock)
    assert cooldown == 300.0


def test_close_resets_cooldown_growth() -> None:
    """After a close, the next trip uses the base cooldown again."""
    clock = FakeClock()
    breaker = tripped(clock, cooldown=1.0, cooldown_multiplier=2.0, failure_threshold=1)
    reopen(breaker, clock)
    clock.advance(breaker.snapshot()["retry_after"])
    breaker.allow()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.retry_after() == 1.0


# --- trips, on_change, snapshot ---------------------------------------------------------


def test_trips_counts_every_opening() -> None:
    """trips counts openings from closed and from half-open alike."""
    clock = FakeClock()
    breaker = tripped(clock)
    reopen(breaker, clock)
    reopen(breaker, clock)
    assert breaker.trips == 3


def test_on_change_reports_each_transition_once_in_order() -> None:
    """on_change sees closed→open→half_open→open→half_open→closed, each once."""
    clock, changes = FakeClock(), Changes()
    breaker = tripped(clock, changes)
    reopen(breaker, clock)
    clock.advance(breaker.snapshot()["retry_after"])
    for _ in range(3):
        assert breaker.state == "half_open"
    breaker.allow()
    breaker.record_success()
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "open"),
                       ("open", "half_open"), ("half_open", "closed")]


def test_on_change_sees_the_new_state_in_effect() -> None:
    """When on_change runs, the breaker already reports the new state."""
    seen: list[BreakerState] = []
    breaker = CircuitBreaker(BreakerPolicy(failure_threshold=1), clock=FakeClock(),
                             on_change=lambda old, new: seen.append(breaker.state))
    breaker.record_failure()
    assert seen == ["open"]


def test_snapshot_reports_counters() -> None:
    """snapshot gives the state, the counts and the window's failure rate."""
    clock = FakeClock()
    breaker = make(clock, failure_threshold=5, failure_rate=0.9, window=4, min_calls=4)
    breaker.record_success()
    fail(breaker, 3)
    assert breaker.snapshot() == {
        "state": "closed", "consecutive_failures": 3, "window_calls": 4, "window_failures": 3,
        "failure_rate": 0.75, "trips": 0, "probes_in_flight": 0, "retry_after": None,
    }


def test_snapshot_of_empty_window_has_zero_failure_rate() -> None:
    """With no calls recorded the failure rate is 0.0, not a division error."""
    assert make(FakeClock()).snapshot()["failure_rate"] == 0.0


def test_default_clock_is_monotonic_time() -> None:
    """Without a clock the breaker uses time.monotonic and opens for the real cooldown."""
    breaker = CircuitBreaker(BreakerPolicy(failure_threshold=1, cooldown=60.0))
    breaker.record_failure()
    assert 59.0 < (breaker.retry_after() or 0.0) <= 60.0


# --- policy validation ------------------------------------------------------------------


def test_default_policy_is_valid() -> None:
    """The documented defaults construct without error."""
    assert BreakerPolicy() == BreakerPolicy(5, 0.5, 20, 10, None, 5.0, 2.0, 300.0, 1)


@pytest.mark.parametrize(("field", "value"), [
    ("failure_threshold", 0),
    ("failure_threshold", 2.0),
    ("failure_threshold", True),
    ("window", -1),
    ("min_calls", 0),
    ("min_calls", 21),
    ("half_open_probes", 0),
    ("failure_rate", 0.0),
    ("failure_rate", 1.5),
    ("failure_rate", float("nan")),
    ("slow_call_seconds", 0.0),
    ("slow_call_seconds", float("inf")),
    ("cooldown", 0.0),
    ("cooldown", -5.0),
    ("cooldown_multiplier", 0.5),
    ("max_cooldown", 4.0),
    ("max_cooldown", float("inf")),
])
def test_policy_rejects_invalid_field(field: str, value: object) -> None:
    """An out-of-range field raises InputValidationError naming that field."""
    with pytest.raises(InputValidationError, match=f"BreakerPolicy.{field}") as info:
        BreakerPolicy(**{field: value})
    assert info.value.field == field


def test_policy_validation_lists_every_problem() -> None:
    """All invalid fields are reported at once, in field order."""
    with pytest.raises(InputValidationError) as info:
        BreakerPolicy(failure_threshold=0, window=3, min_calls=4, failure_rate=2.0,
                      cooldown_multiplier=0.0)
    assert [e["field"] for e in info.value.errors] == [
        "failure_threshold", "min_calls", "failure_rate", "cooldown_multiplier"]


def test_policy_accepts_boundary_values() -> None:
    """rate 1.0, multiplier 1.0, min_calls == window and max == cooldown are valid."""
    policy = BreakerPolicy(failure_rate=1.0, cooldown_multiplier=1.0, window=3, min_calls=3,
                           cooldown=7.0, max_cooldown=7.0, failure_threshold=1)
    assert policy.min_calls == policy.window


def test_policy_is_frozen() -> None:
    """A policy cannot be changed after construction."""
    policy = BreakerPolicy()
    with pytest.raises(AttributeError):
        policy.window = 3  # type: ignore[misc]


def test_open_until_is_set_only_while_open() -> None:
    """open_until gives the cooldown's end while open and 0.0 otherwise."""
    clock = FakeClock()
    breaker = make(clock, failure_threshold=1, cooldown=10.0)
    assert breaker.open_until == 0.0
    breaker.record_failure()
    assert breaker.open_until == clock.now + 10.0
    clock.now += 10.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.open_until == 0.0
