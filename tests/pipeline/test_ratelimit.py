"""The rate-limit stage: per-key request and token budgets, waits, reconciliation, streams."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from chainweave.errors import (
    InputValidationError,
    ProviderUnavailableError,
    RateLimitError,
    RequestTooLargeError,
)
from chainweave.pipeline.base import Call, Pipeline
from chainweave.pipeline.ratelimit import RateLimiter
from chainweave.testing import MockFailure, MockProvider, MockReply
from chainweave.tokens import estimate_text_tokens, estimate_tokens
from chainweave.types import ChatRequest, ChatResponse, StreamChunk, Usage

PROMPT_TOKENS = estimate_tokens(["hi"])  # the estimate of ChatRequest.from_prompt("hi")


class FakeClock:
    """A clock that only moves when told to; starts away from zero on purpose."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeSleepLimiter(RateLimiter):
    """A limiter whose waits move its fake clock instead of sleeping."""

    def __init__(self, requests_per_minute: float | None = None,
                 tokens_per_minute: float | None = None, *, clock: FakeClock,
                 **options: Any) -> None:
        super().__init__(requests_per_minute, tokens_per_minute, clock=clock, **options)
        self.fake_clock = clock
        self.slept: list[float] = []

    async def _sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.fake_clock.advance(seconds)


@pytest.fixture
def clock() -> FakeClock:
    """A fresh fake clock."""
    return FakeClock()


def ask(user: str | None = None, max_tokens: int | None = None, **fields: object) -> ChatRequest:
    """A one-message request ("hi") whose estimate is PROMPT_TOKENS + max_tokens."""
    return ChatRequest.from_prompt("hi", user=user, max_tokens=max_tokens, **fields)


def used(total: int) -> MockReply:
    """A reply that reports ``total`` tokens of usage."""
    return MockReply("ok", usage=Usage(prompt_tokens=total - 1, completion_tokens=1))


async def run(limiter: RateLimiter, provider: MockProvider, request: ChatRequest) -> Call:
    """One chat call through the limiter; returns its Call."""
    call = Call.for_request(request)
    await limiter.chat(request, call, provider.chat)
    return call


# --- construction ------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"requests_per_minute": 0}, "requests_per_minute"),
    ({"requests_per_minute": -5}, "requests_per_minute"),
    ({"tokens_per_minute": 0}, "tokens_per_minute"),
    ({"tokens_per_minute": math.nan}, "tokens_per_minute"),
    ({"requests_per_minute": 10, "max_wait": -1.0}, "max_wait"),
    ({"requests_per_minute": 10, "max_keys": 0}, "max_keys"),
    ({"requests_per_minute": 10, "key": "ip"}, "key"),
])
def test_bad_settings_name_the_field(kwargs: dict[str, object], field: str) -> None:
    """Non-positive limits, a negative wait, no room for keys or an unknown key are refused."""
    with pytest.raises(InputValidationError) as caught:
        RateLimiter(**kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert field in caught.value.message


# --- requests per minute -----------------------------------------------------------------


async def test_requests_over_the_burst_are_refused_without_a_provider_call(
        clock: FakeClock) -> None:
    """The fourth request in a 3-per-minute budget is refused; the provider sees three."""
    provider = MockProvider(["ok"])
    limiter = RateLimiter(3, clock=clock)
    for _ in range(3):
        assert not (await run(limiter, provider, ask())).rate_limited
    call = Call.for_request(ask())
    with pytest.raises(RateLimitError) as caught:
        await limiter.chat(ask(), call, provider.chat)
    assert provider.call_count == 3
    assert call.rate_limited
    assert caught.value.retry_after == pytest.approx(20.0)  # one request refills in 60/3 s
    assert caught.value.status_code == 429
    assert caught.value.details == {"scope": "global", "key": "global", "limit": "requests",
                                    "per_minute": 3.0}


async def test_requests_refill_continuously(clock: FakeClock) -> None:
    """After retry_after seconds the refused request passes."""
    provider = MockProvider(["ok"])
    limiter = RateLimiter(3, clock=clock)
    for _ in range(3):
        await run(limiter, provider, ask())
    with pytest.raises(RateLimitError) as caught:
        await run(limiter, provider, ask())
    clock.advance(caught.value.retry_after or 0.0)
    await run(limiter, provider, ask())
    assert provider.call_count == 4


# --- tokens per minute -------------------------------------------------------------------


async def test_tokens_estimate_is_prompt_plus_max_tokens(clock: FakeClock) -> None:
    """A request takes its prompt estimate plus max_tokens until its usage comes back."""
    seen: list[dict[str, float | None]] = []
    limiter = RateLimiter(tokens_per_minute=1000, clock=clock)

    async def answer(request: ChatRequest) -> ChatResponse:
        seen.append(limiter.remaining(request))
        return await MockProvider([used(30)]).chat(request)

    await limiter.chat(ask(max_tokens=100), Call.for_request(ask()), answer)
    assert seen == [{"requests": None, "tokens": 1000 - PROMPT_TOKENS - 100}]
    assert limiter.remaining(ask()) == {"requests": None, "tokens": 970}


async def test_reported_usage_below_the_estimate_is_given_back(clock: FakeClock) -> None:
    """Unused max_tokens return to the budget, so the next large request passes."""
    provider = MockProvider([used(10)])
    limiter = RateLimiter(tokens_per_minute=100, clock=clock)
    await run(limiter, provider, ask(max_tokens=80))
    await run(limiter, provider, ask(max_tokens=80))
    assert provider.call_count == 2


async def test_reported_usage_above_the_estimate_is_charged(clock: FakeClock) -> None:
    """A call that used more than estimated leaves the budget negative, delaying the next."""
    provider = MockProvider([used(150)])
    limiter = RateLimiter(tokens_per_minute=100, clock=clock)
    await run(limiter, provider, ask(max_tokens=10))
    assert limiter.remaining(ask())["tokens"] == pytest.approx(-50)
    with pytest.raises(RateLimitError) as caught:
        await run(limiter, provider, ask(max_tokens=10))
    cost = PROMPT_TOKENS + 10
    assert caught.value.retry_after == pytest.approx((50 + cost) / (100 / 60))
    assert caught.value.details["limit"] == "tokens"


async def test_failed_call_is_charged_its_prompt_only(clock: FakeClock) -> None:
    """A provider error refunds the max_tokens share; the prompt stays spent."""
    provider = MockProvider([MockFailure(status=503)])
    limiter = RateLimiter(tokens_per_minute=1000, clock=clock)
    with pytest.raises(ProviderUnavailableError):
        await run(limiter, provider, ask(max_tokens=500))
    assert limiter.remaining(ask())["tokens"] == pytest.approx(1000 - PROMPT_TOKENS)


async def test_request_larger_than_the_whole_budget_is_refused_at_once(
        clock: FakeClock) -> None:
    """An estimate over tokens_per_minute can never pass, so it is not made to wait."""
    provider = MockProvider(["ok"])
    limiter = RateLimiter(tokens_per_minute=100, max_wait=3600, clock=clock)
    call = Call.for_request(ask())
    with pytest.raises(RequestTooLargeError) as caught:
        await limiter.chat(ask(max_tokens=200), call, provider.chat)
    assert "whole budget of 100 tokens per minute" in caught.value.message
    assert not caught.value.retryable
    assert caught.value.details["estimated_tokens"] == PROMPT_TOKENS + 200
    assert call.rate_limited
    assert provider.call_count == 0


async def test_both_budgets_are_taken_together_or_not_at_all(clock: FakeClock) -> None:
    """A request refused on tokens takes no request from the requests budget."""
    provider = MockProvider([used(60)])
    limiter = RateLimiter(10, 100, clock=clock)
    await run(limiter, provider, ask(max_tokens=50))
    with pytest.raises(RateLimitError):
        await run(limiter, provider, ask(max_tokens=50))
    assert limiter.remaining(ask())["requests"] == pytest.approx(9)


# --- keys --------------------------------------------------------------------------------


async def test_users_have_separate_budgets(clock: FakeClock) -> None:
    """One user's spent budget does not touch another's; no user is one shared key."""
    provider = MockProvider(["ok"])
    limiter = RateLimiter(1, key="user", clock=clock)
    await run(limiter, provider, ask("alice"))
    with pytest.raises(RateLimitError) as caught:
        await run(limiter, provider, ask("alice"))
    assert caught.value.details["scope"] == "user"
    await run(limiter, provider, ask("bob"))
    await run(limiter, provider, ask(None))
    with pytest.raises(RateLimitError) as anonymous:
        await run(limiter, provider, ask(None))
    assert anonymous.value.details["key"] == "anonymous"
    await run(limiter, provider, ask("anonymous"))  # a user called that is someone else
    assert provider.call_count == 4


async def test_api_key_scope_never_shows_the_key(
        clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    """Budgets follow metadata["api_key_id"]; errors and logs show only a digest."""
    secret = "sk-live-0123456789abcdefghij"
    provider = MockProvider(["ok"])
    limiter = RateLimiter(1, key="api_key", clock=clock)
    await run(limiter, provider, ask(metadata={"api_key_id": secret}))
    await run(limiter, provider, ask(metadata={"api_key_id": "other"}))
    with caplog.at_level(logging.DEBUG), pytest.raises(RateLimitError) as caught:
        await run(limiter, provider, ask(metadata={"api_key_id": secret}))
    shown = f"{caught.value.message} {caught.value.details} {caught.value!r} {caplog.text}"
    assert secret not in shown
    assert secret[:12] not in shown
    assert caught.value.details["key"].startswith("key:")
    assert caught.value.details["key"] in caplog.text


async def test_custom_key_function(clock: FakeClock) -> None:
    """A function of the request picks the key."""
    provider = MockProvider(["ok"])
    limiter = RateLimiter(1, key=lambda r: str(r.metadata["tenant"]), clock=clock)
    await run(limiter, provider, ask(metadata={"tenant": "t1"}))
    await run(limiter, provider, ask(metadata={"tenant": "t2"}))
    with pytest.raises(RateLimitError) as caught:
        await run(limiter, provider, ask(metadata={"tenant": "t1"}))
    assert caught.value.details["scope"] == "custom"


async def test_keys_beyond_max_keys_forget_the_least_recent(clock: FakeClock) -> None:
    """Memory is bounded: the oldest key is dropped and starts afresh when it returns."""
    provider = MockProvider(["ok"])
    limiter = RateLimiter(1, key="user", max_keys=2, clock=clock)
    await run(limiter, provider, ask("a"))
    await run(limiter, provider, ask("b"))
    with pytest.raises(RateLimitError):
        await run(limiter, provider, ask("b"))
    await run(limiter, provider, ask("c"))  # pushes "a" out
    await run(limiter, provider, ask("a"))
    with pytest.raises(RateLimitError):  # "c" is still remembered
        await run(limiter, provider, ask("c"))


# --- waiting -----------------------------------------------------------------------------


async def test_request_within_max_wait_sleeps_then_proceeds() -> None:
    """Over the budget but within max_wait, the call waits (really) until it is covered."""
    limiter = RateLimiter(tokens_per_minute=60_000, max_wait=1.0)  # 1000 tokens a second
    balance_at_call: list[float | None] = []

    async def answer(request: ChatRequest) -> ChatResponse:
        balance_at_call.append(limiter.remaining(request)["tokens"])
        return await MockProvider([used(PROMPT_TOKENS + (request.max_tokens or 0))]).chat(
            request)

    first = Call.for_request(ask())
    await limiter.chat(ask(max_tokens=60_000 - PROMPT_TOKENS), first, answer)  # drains it
    second = Call.for_request(ask())
    await limiter.chat(ask(), second, answer)
    assert not first.rate_limited
    assert second.rate_limited
    # It reserved its share up front and slept until the bucket had refilled to cover it.
    assert balance_at_call[1] is not None
    assert balance_at_call[1] >= -1e-3


async def test_waiting_requests_queue_in_turn(clock: FakeClock) -> None:
    """Each waiting request reserves its turn: the waits step by one refill interval."""
    provider = MockProvider(["ok"])
    limiter = FakeSleepLimiter(60, clock=clock, max_wait=10.0)
    start = clock.now
    called_at: list[float] = []

    async def answer(request: ChatRequest) -> ChatResponse:
        called_at.append(clock.now - start)
        return await provider.chat(request)

    for _ in range(63):
        await limiter.chat(ask(), Call.for_request(ask()), answer)
    assert called_at[:60] == [0.0] * 60
    assert called_at[60:] == pytest.approx([1.0, 2.0, 3.0])


async def test_concurrent_waiters_reserve_successive_turns(clock: FakeClock) -> None:
    """Requests that arrive together beyond the burst are given the next turns in order."""
    waits: list[float] = []

    class Recording(RateLimiter):
        async def _sleep(self, seconds: float) -> None:
            waits.append(seconds)
            await asyncio.sleep(0)

    provider = MockProvider(["ok"])
    limiter = Recording(60, clock=clock, max_wait=10.0)
    await asyncio.gather(*(run(limiter, provider, ask()) for _ in range(63)))
    assert waits == pytest.approx([1.0, 2.0, 3.0])
    assert provider.call_count == 63


async def test_wait_longer_than_max_wait_is_refused_at_once(clock: FakeClock) -> None:
    """A wait beyond max_wait is not attempted: the error says how long it would be."""
    provider = MockProvider(["ok"])
    limiter = FakeSleepLimiter(1, clock=clock, max_wait=30.0)
    await run(limiter, provider, ask())
    with pytest.raises(RateLimitError) as caught:
        await run(limiter, provider, ask())
    assert caught.value.retry_after == pytest.approx(60.0)
    assert limiter.slept == []
    assert provider.call_count == 1


async def test_cancelled_wait_gives_its_share_back(clock: FakeClock) -> None:
    """A request cancelled while waiting never ran, so its reservation is returned."""
    provider = MockProvider(["ok"])
    limiter = RateLimiter(1, 1000, max_wait=3600, clock=clock)  # the clock never moves
    await run(limiter, provider, ask())
    before = limiter.remaining(ask())
    waiting = asyncio.create_task(run(limiter, provider, ask(max_tokens=100)))
    await asyncio.sleep(0)
    assert limiter.remaining(ask()) != before  # it took its share and is sleeping
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert limiter.remaining(ask()) == before
    assert provider.call_count == 1


# --- streams -----------------------------------------------------------------------------


async def test_stream_reconciles_with_the_last_chunk_usage(clock: FakeClock) -> None:
    """A stream is charged the usage its last chunk reports."""
    provider = MockProvider([MockReply("one two three", usage=Usage(total_tokens=40))])
    pipeline = Pipeline(provider, [RateLimiter(tokens_per_minute=1000, clock=clock)])
    chunks = [chunk async for chunk in pipeline.stream(ask(max_tokens=500))]
    assert chunks[-1].usage is not None
    limiter = pipeline.stage("rate_limit")
    assert isinstance(limiter, RateLimiter)
    assert limiter.remaining(ask())["tokens"] == pytest.approx(960)


async def test_stream_without_usage_is_charged_prompt_and_text(clock: FakeClock) -> None:
    """Without a usage report, the charge is the prompt plus the text that came back."""
    limiter = RateLimiter(tokens_per_minute=1000, clock=clock)

    async def upstream(request: ChatRequest) -> AsyncIterator[StreamChunk]:
        yield StreamChunk(delta="twelve chars")
        yield StreamChunk(finish_reason="stop")

    call = Call.for_request(ask(), streaming=True)
    _ = [chunk async for chunk in limiter.stream(ask(max_tokens=300), call, upstream)]
    spent = PROMPT_TOKENS + estimate_text_tokens("twelve chars")
    assert limiter.remaining(ask())["tokens"] == pytest.approx(1000 - spent)


async def test_refused_stream_never_calls_the_provider(clock: FakeClock) -> None:
    """Admission happens before the upstream is asked for anything."""
    provider = MockProvider(["a b"])
    pipeline = Pipeline(provider, [RateLimiter(1, clock=clock)])
    _ = [chunk async for chunk in pipeline.stream(ask())]
    with pytest.raises(RateLimitError):
        _ = [chunk async for chunk in pipeline.stream(ask())]
    assert provider.call_count == 1


async def test_stream_closed_early_closes_upstream_and_settles(clock: FakeClock) -> None:
    """An early close reaches the upstream; the charge is prompt plus text so far."""
    closed: list[bool] = []
    limiter = RateLimiter(tokens_per_minute=1000, clock=clock)

    async def upstream(request: ChatRequest) -> AsyncIterator[StreamChunk]:
        try:
            yield StreamChunk(delta="abcd")
            yield StreamChunk(delta="efgh")
        finally:
            closed.append(True)

    stream = limiter.stream(ask(max_tokens=300), Call.for_request(ask()), upstream)
    assert isinstance(stream, AsyncIterator)
    await anext(stream)
    await stream.aclose()  # type: ignore[attr-defined]
    assert closed == [True]
    spent = PROMPT_TOKENS + estimate_text_tokens("abcd")
    assert limiter.remaining(ask())["tokens"] == pytest.approx(1000 - spent)


# --- the guarantee, checked by a state machine -------------------------------------------


class RefBucket:
    """The spec of one budget: full at the start, refilled continuously, capped."""

    def __init__(self, per_minute: float, now: float) -> None:
        self.cap, self.rate, self.balance, self.at = per_minute, per_minute / 60, per_minute, now

    def at_time(self, now: float) -> float:
        self.balance = min(self.cap, self.balance + (now - self.at) * self.rate)
        self.at = now
        return self.balance

    def wait(self, amount: float, now: float) -> float:
        return max(0.0, (amount - self.at_time(now)) / self.rate)


class LimiterMatchesSpec(RuleBasedStateMachine):
    """Requests from three keys against a fake clock; waits move the clock."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.loop = asyncio.new_event_loop()
        self.admitted: dict[str | None, list[float]] = {}
        self.refs: dict[str | None, tuple[RefBucket, RefBucket | None]] = {}

    @initialize(rpm=st.sampled_from([2, 3, 6, 60]), tpm=st.none() | st.sampled_from([100, 300]),
                 max_wait=st.sampled_from([0.0, 10.0, 45.0]))
    def build(self, rpm: int, tpm: int | None, max_wait: float) -> None:
        self.rpm, self.tpm, self.max_wait = rpm, tpm, max_wait
        self.limiter = FakeSleepLimiter(rpm, tpm, key="user", max_wait=max_wait,
                                        clock=self.clock)

    def teardown(self) -> None:
        self.loop.close()

    def ref(self, user: str | None) -> tuple[RefBucket, RefBucket | None]:
        if user not in self.refs:
            tokens = None if self.tpm is None else RefBucket(self.tpm, self.clock.now)
            self.refs[user] = (RefBucket(self.rpm, self.clock.now), tokens)
        return self.refs[user]

    @rule(seconds=st.sampled_from([0.25, 1.0, 5.0, 20.0, 60.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(user=st.sampled_from(["a", "b", None]), max_tokens=st.sampled_from([None, 10, 60, 400]),
          usage=st.sampled_from([None, 5, 40, 250, "error"]), streaming=st.booleans())
    def request(self, user: str | None, max_tokens: int | None, usage: int | str | None,
                streaming: bool) -> None:
        request, cost = ask(user, max_tokens), PROMPT_TOKENS + (max_tokens or 0)
        started = self.clock.now
        requests_ref, tokens_ref = self.ref(user)
        need = max(requests_ref.wait(1, started),
                   0.0 if tokens_ref is None else tokens_ref.wait(cost, started))
        error = self.attempt(request, usage, streaming)
        event(f"outcome: {type(error).__name__}, waited {self.clock.now > started}")
        if isinstance(error, RequestTooLargeError):
            assert self.tpm is not None
            assert cost > self.tpm
            return
        if isinstance(error, RateLimitError):
            assert error.retry_after is not None
            assert error.retry_after > self.max_wait
            assert need > self.max_wait - 1e-6  # refused only when the spec refuses too
            return
        assert isinstance(error, ProviderUnavailableError) == (usage == "error")
        assert need <= self.max_wait + 1e-6
        assert self.clock.now - started == pytest.approx(need, abs=1e-6)
        self.spend(requests_ref, tokens_ref, cost, usage)

    def attempt(self, request: ChatRequest, usage: int | str | None,
                streaming: bool) -> Exception | None:
        try:
            self.loop.run_until_complete(self.send(request, usage, streaming))
        except (RequestTooLargeError, RateLimitError, ProviderUnavailableError) as exc:
            return exc
        return None

    async def send(self, request: ChatRequest, usage: int | str | None, streaming: bool) -> None:
        reply: MockReply | MockFailure
        if usage == "error":
            reply = MockFailure(status=503)
        else:  # Usage() reports nothing: the limiter falls back to its own estimate
            reply = MockReply("ok", usage=Usage(total_tokens=usage) if usage else Usage())
        provider = MockProvider([reply])

        async def upstream(req: ChatRequest) -> AsyncIterator[StreamChunk]:
            self.admitted.setdefault(req.user, []).append(self.clock.now)
            async for chunk in provider.stream(req):
                yield chunk

        async def chat(req: ChatRequest) -> ChatResponse:
            self.admitted.setdefault(req.user, []).append(self.clock.now)
            return await provider.chat(req)

        call = Call.for_request(request, streaming=streaming)
        if streaming:
            _ = [c async for c in self.limiter.stream(request, call, upstream)]
        else:
            await self.limiter.chat(request, call, chat)

    def spend(self, requests_ref: RefBucket, tokens_ref: RefBucket | None, cost: int,
              usage: int | str | None) -> None:
        """Mirror an admitted call: take when it goes ahead, then settle to what was used."""
        for ref, amount in ((requests_ref, 1.0), (tokens_ref, float(cost))):
            if ref is not None:
                ref.at_time(self.clock.now)
                ref.balance -= amount
        if tokens_ref is not None:
            if isinstance(usage, int):
                actual = usage
            else:
                actual = PROMPT_TOKENS + (0 if usage == "error" else estimate_text_tokens("ok"))
            tokens_ref.balance = min(tokens_ref.cap, tokens_ref.balance + cost - actual)

    @invariant()
    def requests_in_any_window_stay_within_the_budget(self) -> None:
        for times in self.admitted.values():
            for i, start in enumerate(times):
                for j in range(i, len(times)):
                    window = times[j] - start
                    assert j - i + 1 <= self.rpm + self.rpm * window / 60 + 1e-6

    @invariant()
    def token_budgets_reconcile(self) -> None:
        if self.tpm is None:
            return
        for user, (_, tokens_ref) in self.refs.items():
            assert tokens_ref is not None
            left = self.limiter.remaining(ask(user))["tokens"]
            assert left == pytest.approx(tokens_ref.at_time(self.clock.now), abs=1e-6)


LimiterMatchesSpec.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None)
test_limiter_matches_spec = LimiterMatchesSpec.TestCase

