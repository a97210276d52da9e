"""ProviderManager: routing, failover, fallbacks, breakers, limits and streaming."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from chainweave.errors import (
    CircuitOpenError,
    InputValidationError,
    InvalidRequestError,
    ModelNotFoundError,
    ProviderUnavailableError,
    RateLimitError,
    StreamInterruptedError,
)
from chainweave.pricing import ModelPrice
from chainweave.providers.breaker import BreakerPolicy
from chainweave.providers.manager import ProviderManager
from chainweave.providers.retry import RetryPolicy
from chainweave.testing import FunctionProvider, MockFailure, MockProvider, MockReply
from chainweave.types import ChatRequest, Message, Usage


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def manager(time: FakeTime, **kwargs: object) -> ProviderManager:
    """A manager on fake time with deterministic jitter."""
    import random

    options: dict[str, object] = {"clock": time.clock, "sleep": time.sleep,
                                  "rng": random.Random(1), "default_model": "gpt-4o"}
    options.update(kwargs)
    return ProviderManager(**options)  # type: ignore[arg-type]


def ask(model: str | None = None) -> ChatRequest:
    """A one-message request."""
    return ChatRequest(model=model, messages=[Message.user("hi")])


# --- routing ----------------------------------------------------------------------------


async def test_round_robin_is_exactly_fair() -> None:
    """Over 9,999 calls to 3 healthy deployments each gets 3,333."""
    time = FakeTime()
    pm = manager(time)
    mocks = [MockProvider(["ok"], name=f"d{i}") for i in range(3)]
    for i, mock in enumerate(mocks):
        pm.register(f"d{i}", mock, ["gpt-4o"])
    for _ in range(9_999):
        await pm.chat(ask())
    assert [m.call_count for m in mocks] == [3_333, 3_333, 3_333]


async def test_rotation_stays_fair_around_an_open_breaker() -> None:
    """With one deployment's breaker open, the other two share calls evenly."""
    time = FakeTime()
    pm = manager(time, breaker=BreakerPolicy(failure_threshold=1, cooldown=1e6,
                                             max_cooldown=1e6))
    mocks = [MockProvider(["ok"]) for _ in range(2)]
    pm.register("a", mocks[0], ["gpt-4o"])
    pm.register("down", MockProvider([MockFailure(status=503)]), ["gpt-4o"])
    pm.register("c", mocks[1], ["gpt-4o"])
    for _ in range(3):
        await pm.chat(ask())
    assert pm.status()["down"]["breaker"] == "open"
    before = [m.call_count for m in mocks]
    for _ in range(1_000):
        await pm.chat(ask())
    assert [m.call_count - b for m, b in zip(mocks, before, strict=True)] == [500, 500]


async def test_response_names_deployment_group_and_attempts() -> None:
    """The response says which deployment and model group served it."""
    pm = manager(FakeTime())
    pm.register("east", MockProvider(["hello"]), ["gpt-4o"])
    resp = await pm.chat(ask())
    assert resp.metadata["deployment"] == "east"
    assert resp.metadata["model_group"] == "gpt-4o"
    assert resp.attempts == 1


async def test_model_map_sends_upstream_names() -> None:
    """A public model name is sent as the deployment's upstream name."""
    mock = MockProvider(["ok"])
    pm = manager(FakeTime())
    pm.register("azure", mock, {"gpt-4o": "prod-4o-deployment"})
    await pm.chat(ask("gpt-4o"))
    assert mock.requests[0].model == "prod-4o-deployment"


async def test_alias_routes_over_named_deployments_with_their_first_model() -> None:
    """An alias spreads calls over its deployments, each asked for its own model."""
    small, other = MockProvider(["a"]), MockProvider(["b"])
    pm = manager(FakeTime())
    pm.register("mini", small, ["gpt-4o-mini"])
    pm.register("haiku", other, ["claude-3-5-haiku-latest"])
    pm.alias("fast", ["mini", "haiku"])
    await pm.chat(ask("fast"))
    await pm.chat(ask("fast"))
    assert small.requests[0].model == "gpt-4o-mini"
    assert other.requests[0].model == "claude-3-5-haiku-latest"


async def test_unknown_model_is_model_not_found() -> None:
    """A model no deployment serves raises ModelNotFoundError."""
    pm = manager(FakeTime())
    pm.register("east", MockProvider(["x"]), ["gpt-4o"])
    with pytest.raises(ModelNotFoundError, match="claude"):
        await pm.chat(ask("claude-3-opus"))


def test_alias_of_unknown_deployment_is_refused() -> None:
    """An alias naming an unregistered deployment is a validation error."""
    pm = manager(FakeTime())
    with pytest.raises(InputValidationError, match="unregistered"):
        pm.alias("fast", ["nowhere"])


# --- failover, retries, fallbacks -----------------------------------------------------------


async def test_fails_over_to_the_next_deployment_at_once() -> None:
    """A 503 on one deployment moves to the next without waiting."""
    time = FakeTime()
    pm = manager(time)
    pm.register("a", MockProvider([MockFailure(status=503)]), ["gpt-4o"])
    pm.register("b", MockProvider(["from b"]), ["gpt-4o"])
    resp = await pm.chat(ask())
    assert resp.content == "from b"
    assert resp.attempts == 2
    assert time.slept == []


async def test_retries_with_backoff_once_every_deployment_was_tried() -> None:
    """When all were tried, the next round waits a full-jitter backoff first."""
    time = FakeTime()
    flaky = MockProvider([MockFailure(status=500), "second time lucky"])
    pm = manager(time, retry=RetryPolicy(max_attempts=3, base_delay=1.0, max_delay=8.0))
    pm.register("only", flaky, ["gpt-4o"])
    resp = await pm.chat(ask())
    assert resp.content == "second time lucky"
    assert len(time.slept) == 1
    assert 0 <= time.slept[0] <= 1.0


async def test_retry_after_is_honoured() -> None:
    """A 429 with Retry-After makes the manager wait at least that long, on the fake clock."""
    time = FakeTime()
    pm = manager(time, retry=RetryPolicy(max_attempts=3, base_delay=0.1, deadline=120))
    pm.register("only", MockProvider([MockFailure(status=429, retry_after=7.0), "ok"]),
                ["gpt-4o"])
    start = time.now
    resp = await pm.chat(ask())
    assert resp.content == "ok"
    assert time.now - start >= 7.0


async def test_caller_error_is_raised_at_once_without_failover() -> None:
    """An invalid request is the caller's: no other deployment is asked, no breaker trips."""
    other = MockProvider(["never"])
    pm = manager(FakeTime())
    pm.register("a", MockProvider([MockFailure(status=400)]), ["gpt-4o"])
    pm.register("b", other, ["gpt-4o"])
    with pytest.raises(InvalidRequestError):
        await pm.chat(ask())
    assert other.call_count == 0
    assert pm.status()["a"]["breaker"] == "closed"
    assert pm.deployments["a"].breaker.snapshot()["consecutive_failures"] == 0


async def test_authentication_failure_marks_deployment_misconfigured() -> None:
    """A 401 sets the deployment aside as misconfigured and the next one answers."""
    pm = manager(FakeTime())
    bad = MockProvider([MockFailure(status=401)])
    pm.register("bad", bad, ["gpt-4o"])
    pm.register("good", MockProvider(["fine"]), ["gpt-4o"])
    assert (await pm.chat(ask())).content == "fine"
    assert pm.status()["bad"]["misconfigured"] is True
    for _ in range(4):
        await pm.chat(ask())
    assert bad.call_count == 1


async def test_fallback_models_are_tried_in_order() -> None:
    """When a model's deployments are exhausted, its fallbacks are tried in order."""
    time = FakeTime()
    pm = manager(time, retry=RetryPolicy(max_attempts=1),
                 fallbacks={"gpt-4o": ["gpt-4o-mini", "claude-3-5-haiku-latest"]})
    pm.register("big", MockProvider([MockFailure(status=503)]), ["gpt-4o"])
    pm.register("small", MockProvider([MockFailure(status=500)]), ["gpt-4o-mini"])
    pm.register("claude", MockProvider(["from claude"]), ["claude-3-5-haiku-latest"])
    resp = await pm.chat(ask("gpt-4o"))
    assert resp.content == "from claude"
    assert resp.metadata["model_group"] == "claude-3-5-haiku-latest"
    assert resp.metadata["requested_model"] == "gpt-4o"
    assert resp.attempts == 3


async def test_exhausted_everything_raises_last_error_listing_attempts() -> None:
    """When nothing answers, the last error is raised with every attempt listed."""
    pm = manager(FakeTime(), retry=RetryPolicy(max_attempts=2, base_delay=0.01))
    pm.register("a", MockProvider([MockFailure(status=503)]), ["gpt-4o"])
    with pytest.raises(ProviderUnavailableError) as info:
        await pm.chat(ask())
    assert [a["deployment"] for a in info.value.details["attempts"]] == ["a", "a"]


async def test_deadline_stops_retrying() -> None:
    """No retry starts once the total deadline would be passed."""
    time = FakeTime()
    pm = manager(time, retry=RetryPolicy(max_attempts=10, base_delay=5, max_delay=5,
                                         jitter=False, deadline=12))
    pm.register("a", MockProvider([MockFailure(status=503)]), ["gpt-4o"])
    with pytest.raises(ProviderUnavailableError):
        await pm.chat(ask())
    assert time.now - 1000.0 <= 12


async def test_deployment_timeout_fails_over() -> None:
    """A deployment slower than its timeout is abandoned for the next one."""
    pm = ProviderManager(default_model="gpt-4o")
    pm.register("slow", MockProvider(["late"], latency=1.0), ["gpt-4o"], timeout=0.05)
    pm.register("fast", MockProvider(["quick"]), ["gpt-4o"])
    assert (await pm.chat(ask())).content == "quick"
    assert pm.status()["slow"]["last_error"].startswith("timeout_error")


# --- breakers ---------------------------------------------------------------------------


async def test_open_breaker_gets_no_calls_in_ten_thousand() -> None:
    """No call reaches a deployment while its breaker is open: 0 leaked in 10,000."""
    time = FakeTime()
    pm = manager(time, retry=RetryPolicy(max_attempts=2, base_delay=0.0, jitter=False),
                 breaker=BreakerPolicy(failure_threshold=3, cooldown=5.0))
    leaked = Counter[str]()

    def failing(request: ChatRequest) -> MockFailure:
        if pm.deployments["bad"].breaker.state == "open":
            leaked["open"] += 1
        leaked["calls"] += 1
        return MockFailure(status=503)

    pm.register("bad", FunctionProvider(failing), ["gpt-4o"])
    pm.register("good", MockProvider(["ok"]), ["gpt-4o"])
    for _ in range(10_000):
        await pm.chat(ask())
        time.now += 0.01
    assert leaked["open"] == 0
    assert 0 < leaked["calls"] < 1_000
    assert pm.deployments["bad"].breaker.trips > 1


async def test_all_breakers_open_is_circuit_open_with_retry_after() -> None:
    """With every breaker open and nothing tried, the error says when to come back."""
    time = FakeTime()
    pm = manager(time, retry=RetryPolicy(max_attempts=1),
                 breaker=BreakerPolicy(failure_threshold=1, cooldown=30.0))
    pm.register("a", MockProvider([MockFailure(status=503), "ok"]), ["gpt-4o"])
    with pytest.raises(ProviderUnavailableError):
        await pm.chat(ask())
    with pytest.raises(CircuitOpenError) as info:
        await pm.chat(ask())
    assert info.value.retry_after == pytest.approx(30.0)


async def test_breaker_changes_show_in_status() -> None:
    """A tripped breaker is visible in status()."""
    pm = manager(FakeTime(), breaker=BreakerPolicy(failure_threshold=1))
    pm.register("a", MockProvider([MockFailure(status=500)]), ["gpt-4o"])
    pm.register("b", MockProvider(["ok"]), ["gpt-4o"])
    await pm.chat(ask())
    assert pm.status()["a"]["breaker"] == "open"
    assert pm.status()["b"]["breaker"] == "closed"


# --- limits -------------------------------------------------------------------------------


async def test_rate_limited_deployment_is_skipped() -> None:
    """A deployment at its rpm is passed over for one with room."""
    pm = manager(FakeTime())
    capped, roomy = MockProvider(["capped"]), MockProvider(["roomy"])
    pm.register("capped", capped, ["gpt-4o"], rpm=1)
    pm.register("roomy", roomy, ["gpt-4o"])
    for _ in range(6):
        await pm.chat(ask())
    assert capped.call_count == 1
    assert roomy.call_count == 5


async def test_all_at_limit_waits_a_bounded_time_then_raises() -> None:
    """With every deployment at its limit beyond max_wait, RateLimitError says how long."""
    pm = manager(FakeTime(), max_wait=5.0)
    pm.register("only", MockProvider(["ok"]), ["gpt-4o"], rpm=1)
    await pm.chat(ask())
    with pytest.raises(RateLimitError) as info:
        await pm.chat(ask())
    assert info.value.retry_after is not None
    assert info.value.retry_after > 5.0


async def test_all_at_limit_waits_when_within_max_wait() -> None:
    """Within max_wait the manager sleeps until the limit frees, then calls."""
    time = FakeTime()
    pm = manager(time, max_wait=120.0, retry=RetryPolicy(deadline=None))
    pm.register("only", MockProvider(["ok"]), ["gpt-4o"], rpm=1)
    await pm.chat(ask())
    resp = await pm.chat(ask())
    assert resp.content == "ok"
    assert 50 <= time.now - 1000.0 <= 61


async def test_overall_concurrency_cap() -> None:
    """No more than max_concurrency calls run at once across deployments."""
    running, peak = 0, 0

    async def slow(request: ChatRequest) -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return "done"

    pm = ProviderManager(default_model="gpt-4o", max_concurrency=3)
    pm.register("a", FunctionProvider(slow), ["gpt-4o"])
    pm.register("b", FunctionProvider(slow), ["gpt-4o"])
    await asyncio.gather(*(pm.chat(ask()) for _ in range(20)))
    assert peak == 3


async def test_usage_and_cost_are_tracked_per_deployment() -> None:
    """Tokens and cost from the price table add up in stats()."""
    pm = manager(FakeTime())
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=0)
    pm.register("a", MockProvider([MockReply("x", usage=usage)]), ["gpt-4o"],
                price=ModelPrice(2.0, 8.0))
    resp = await pm.chat(ask())
    assert resp.usage.cost_usd == pytest.approx(2.0)
    stats = pm.stats()
    assert stats["deployments"]["a"]["cost_usd"] == pytest.approx(2.0)
    assert stats["total"]["total_tokens"] == 1_000_000


# --- streaming ----------------------------------------------------------------------------


async def test_stream_fails_over_before_the_first_chunk() -> None:
    """A stream that fails to start is served by the next deployment."""
    pm = manager(FakeTime())
    pm.register("a", MockProvider([MockFailure(status=503)]), ["gpt-4o"])
    pm.register("b", MockProvider([MockReply("streamed text here")]), ["gpt-4o"])
    chunks = [c async for c in pm.stream(ask())]
    assert "".join(c.delta for c in chunks) == "streamed text here"
    assert chunks[-1].finish_reason == "stop"


async def test_stream_failure_after_a_chunk_is_raised_not_restarted() -> None:
    """After text went out, a failure is raised and no other deployment is asked."""
    other = MockProvider(["never"])
    pm = manager(FakeTime())
    pm.register("a", MockProvider([MockReply("one two three four", truncate_after=2)]),
                ["gpt-4o"])
    pm.register("b", other, ["gpt-4o"])
    got: list[str] = []

    async def consume() -> None:
        async for chunk in pm.stream(ask()):
            got.append(chunk.delta)

    with pytest.raises(StreamInterruptedError):
        await consume()
    assert got
    assert other.call_count == 0


# --- health -------------------------------------------------------------------------------


async def test_unhealthy_deployment_is_skipped_until_it_recovers() -> None:
    """A failed health check takes a deployment out; a passing one brings it back."""
    pm = manager(FakeTime())
    sick, well = MockProvider(["sick"], healthy=False), MockProvider(["well"])
    pm.register("sick", sick, ["gpt-4o"])
    pm.register("well", well, ["gpt-4o"])
    report = await pm.health_check()
    assert report["sick"].healthy is False
    for _ in range(4):
        await pm.chat(ask())
    assert sick.call_count == 0
    sick.healthy = True
    await pm.health_check()
    for _ in range(4):
        await pm.chat(ask())
    assert sick.call_count == 2


async def test_periodic_health_checks_start_and_stop_cleanly() -> None:
    """``async with`` runs health checks in the background and stops them on exit."""
    checks = Counter[str]()

    class Counted(MockProvider):
        async def health(self):  # type: ignore[no-untyped-def, override]
            checks["n"] += 1
            return await super().health()

    pm = ProviderManager(default_model="gpt-4o", health_interval=0.01)
    pm.register("a", Counted(["ok"]), ["gpt-4o"])
    async with pm:
        await asyncio.sleep(0.05)
    seen = checks["n"]
    await asyncio.sleep(0.03)
    assert seen >= 2
    assert checks["n"] == seen


def test_status_lists_every_field() -> None:
    """status() shows health, breaker, in-flight, limits left, latency and counts."""
    pm = manager(FakeTime())
    pm.register("a", MockProvider(["x"]), ["gpt-4o"], rpm=10, tpm=1000)
    status = pm.status()["a"]
    for key in ("healthy", "breaker", "in_flight", "rpm_remaining", "tpm_remaining",
                "latency_ewma_ms", "successes", "failures"):
        assert key in status



async def test_chat_probe_for_servers_without_a_models_endpoint() -> None:
    """With health_probe="chat" the check is a one-token chat, not health()."""
    mock = MockProvider(["pong"], healthy=False)
    pm = manager(FakeTime(), health_probe="chat")
    pm.register("a", mock, ["gpt-4o"])
    report = await pm.health_check()
    assert report["a"].healthy
    assert mock.requests[0].max_tokens == 1


async def test_tpm_holds_under_200_concurrent_requests() -> None:
    """Through the manager, 200 concurrent calls never take more tokens than the bucket
    allows: in any stretch of admissions, tokens <= tpm + tpm/60 * its length (a full
    one-minute burst plus what refills)."""
    from chainweave.tokens import estimate_tokens

    time = FakeTime()
    tpm = 6_000
    request = ChatRequest(model="gpt-4o", max_tokens=90, messages=[Message.user("hi")])
    tokens = estimate_tokens(request.messages, "gpt-4o") + 90
    admitted: list[float] = []

    def answer(_: ChatRequest) -> MockReply:
        admitted.append(time.now)
        return MockReply("x", usage=Usage(prompt_tokens=tokens - 90, completion_tokens=90))

    pm = manager(time, max_wait=1e9, retry=RetryPolicy(deadline=None))
    pm.register("only", FunctionProvider(answer), ["gpt-4o"], tpm=tpm)
    await asyncio.gather(*(pm.chat(request) for _ in range(200)))
    assert len(admitted) == 200
    assert admitted[-1] - admitted[0] > 60  # the limit really bound
    for i, start in enumerate(admitted):
        for j in range(i, len(admitted)):
            burst = (j - i + 1) * tokens
            assert burst <= tpm + tpm / 60 * (admitted[j] - start) + 1e-6
