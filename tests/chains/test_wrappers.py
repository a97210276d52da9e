"""with_retry, with_fallbacks and with_timeout."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from chainweave.chains import RetryPolicy, SimpleChain, TransformChain, chain
from chainweave.errors import (
    AuthenticationError,
    ChainTimeoutError,
    InputValidationError,
    ProviderUnavailableError,
    RateLimitError,
)
from chainweave.testing import MockProvider

FAST = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.001, jitter=False)


def flaky(failures: list[Exception], result: str = "ok") -> tuple[TransformChain, list[int]]:
    """A chain raising each of ``failures`` in turn, then returning ``result``."""
    calls: list[int] = []

    def run(d: dict[str, Any]) -> dict[str, Any]:
        calls.append(1)
        if len(calls) <= len(failures):
            raise failures[len(calls) - 1]
        return {"out": result}

    return TransformChain("flaky", run, output_keys=["out"]), calls


async def test_retry_recovers_from_retryable_errors() -> None:
    """Retryable errors are retried until the chain succeeds."""
    flaky_chain, calls = flaky([ProviderUnavailableError("down"), RateLimitError("slow")])
    assert await flaky_chain.with_retry(FAST).run({}) == {"out": "ok"}
    assert len(calls) == 3


async def test_retry_gives_up_after_max_attempts() -> None:
    """After ``max_attempts`` the last error is raised, with notes on the earlier tries."""
    flaky_chain, calls = flaky([ProviderUnavailableError(str(i)) for i in range(5)])
    with pytest.raises(ProviderUnavailableError, match="2"):
        await flaky_chain.with_retry(FAST).run({})
    assert len(calls) == 3


async def test_non_retryable_errors_are_not_retried() -> None:
    """An authentication failure or a bug is raised at once."""
    for error in (AuthenticationError("bad key"), ValueError("bug")):
        flaky_chain, calls = flaky([error])
        with pytest.raises(type(error)):
            await flaky_chain.with_retry(FAST).run({})
        assert len(calls) == 1


async def test_retry_on_chooses_the_errors() -> None:
    """``retry_on`` retries exactly the listed exception types."""
    flaky_chain, calls = flaky([ValueError("transient in this app")])
    policy = RetryPolicy(max_attempts=2, base_delay=0.001, jitter=False, retry_on=(ValueError,))
    assert await flaky_chain.with_retry(policy).run({}) == {"out": "ok"}
    assert len(calls) == 2


async def test_retry_honours_retry_after() -> None:
    """The wait before a retry is at least the error's ``retry_after``."""
    flaky_chain, _ = flaky([RateLimitError("slow", retry_after=0.15)])
    started = time.perf_counter()
    await flaky_chain.with_retry(FAST).run({})
    assert time.perf_counter() - started >= 0.15


async def test_retry_stops_at_the_deadline() -> None:
    """A wait past the policy's deadline gives up instead of sleeping."""
    flaky_chain, calls = flaky([RateLimitError("slow", retry_after=30)])
    policy = RetryPolicy(max_attempts=5, deadline=1.0)
    started = time.perf_counter()
    with pytest.raises(RateLimitError):
        await flaky_chain.with_retry(policy).run({})
    assert time.perf_counter() - started < 0.5
    assert len(calls) == 1


async def test_retry_keyword_form_and_usage_of_failed_attempts() -> None:
    """``with_retry(max_attempts=...)`` works, and failed attempts count as LLM calls."""
    llm = MockProvider([ProviderUnavailableError("down"), "fine"])
    ask = SimpleChain("ask", llm, "{{ q }}").with_retry(max_attempts=2, base_delay=0.001)
    run = await ask.invoke("?")
    assert run.outputs == {"result": "fine"}
    assert run.llm_calls == 2
    assert ask.name == "ask"


def test_retry_refuses_policy_and_fields_together() -> None:
    """A policy and loose fields together are ambiguous and refused."""
    with pytest.raises(InputValidationError, match="not both"):
        flaky([])[0].with_retry(FAST, max_attempts=2)


def test_retry_on_must_be_exception_classes() -> None:
    """``retry_on`` of something other than exception classes is refused."""
    with pytest.raises(InputValidationError, match="retry_on"):
        RetryPolicy(retry_on=("ValueError",))  # type: ignore[arg-type]


async def test_fallbacks_are_tried_in_order() -> None:
    """When the chain fails, each fallback is tried until one succeeds."""
    primary = SimpleChain("primary", MockProvider([ProviderUnavailableError("down")]), "{{ q }}")
    second = SimpleChain("second", MockProvider([RateLimitError("busy")]), "{{ q }}")
    third = SimpleChain("third", MockProvider(["from third"]), "{{ q }}")
    assert await primary.with_fallbacks([second, third]).run("?") == {"result": "from third"}


async def test_all_fallbacks_failing_raises_the_last_with_notes() -> None:
    """When everything fails the last error is raised, the earlier ones in its notes."""
    primary = SimpleChain("primary", MockProvider([ProviderUnavailableError("down")]), "{{ q }}")
    backup = SimpleChain("backup", MockProvider([RateLimitError("busy")]), "{{ q }}")
    with pytest.raises(RateLimitError) as caught:
        await primary.with_fallbacks([backup]).run("?")
    assert any("ProviderUnavailableError" in note for note in caught.value.__notes__)


async def test_fallbacks_only_catch_the_listed_exceptions() -> None:
    """An error outside ``exceptions`` is raised without trying the fallbacks."""
    backup_llm = MockProvider(["unused"])
    primary = SimpleChain("primary", MockProvider([AuthenticationError("bad key")]), "{{ q }}")
    guarded = primary.with_fallbacks([SimpleChain("backup", backup_llm, "{{ q }}")],
                                     exceptions=(ProviderUnavailableError,))
    with pytest.raises(AuthenticationError):
        await guarded.run("?")
    assert backup_llm.call_count == 0


def test_fallbacks_must_promise_the_same_outputs() -> None:
    """A fallback lacking the primary's outputs is refused when built."""
    primary = SimpleChain("primary", MockProvider(), "{{ q }}", output_key="answer")
    other = SimpleChain("other", MockProvider(), "{{ q }}", output_key="text")
    with pytest.raises(InputValidationError, match="other"):
        primary.with_fallbacks([other])
    with pytest.raises(InputValidationError):
        primary.with_fallbacks([])


async def test_timeout_cancels_a_slow_chain() -> None:
    """``with_timeout`` stops the chain and raises a retryable ChainTimeoutError."""
    finished: list[bool] = []

    @chain
    async def slow() -> str:
        await asyncio.sleep(5)
        finished.append(True)
        return "late"

    started = time.perf_counter()
    with pytest.raises(ChainTimeoutError, match="slow") as caught:
        await slow.with_timeout(0.05).run({})
    assert time.perf_counter() - started < 1
    assert caught.value.retryable
    assert finished == []


async def test_timeout_and_retry_compose() -> None:
    """A timed-out attempt is retried, since timeouts are retryable."""
    attempts: list[int] = []

    @chain
    async def sometimes_slow() -> str:
        attempts.append(1)
        await asyncio.sleep(5 if len(attempts) == 1 else 0)
        return "ok"

    guarded = sometimes_slow.with_timeout(0.05).with_retry(FAST)
    assert await guarded.run({}) == {"sometimes_slow": "ok"}
    assert len(attempts) == 2


@pytest.mark.parametrize("seconds", [0, -1, None, "1"])
def test_timeout_must_be_positive(seconds: Any) -> None:
    """A timeout must be a positive number of seconds."""
    with pytest.raises(InputValidationError, match="timeout"):
        flaky([])[0].with_timeout(seconds)


@pytest.mark.parametrize(("args", "kwargs"), [((), {"attempts": 3}), (("three",), {})])
def test_with_retry_arguments_are_checked(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """A misspelt policy field or a non-policy is a clear error, not a TypeError."""
    with pytest.raises(InputValidationError):
        flaky([])[0].with_retry(*args, **kwargs)


async def test_fallback_error_notes_are_redacted() -> None:
    """Notes about earlier failures carry no keys."""
    key = "sk-proj-A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6"
    first, _ = flaky([RuntimeError(f"Bearer {key}")])
    second, _ = flaky([RuntimeError("second")])
    with pytest.raises(RuntimeError, match="second") as caught:
        await first.with_fallbacks([second]).run({})
    assert all(key not in note for note in caught.value.__notes__)
