"""FallbackProvider: models tried in order, caller mistakes not retried elsewhere."""

from __future__ import annotations

import pytest

from chainweave.errors import (
    ContentFilteredError,
    InputValidationError,
    InvalidRequestError,
    ProviderUnavailableError,
    RateLimitError,
    StreamInterruptedError,
)
from chainweave.providers import FallbackProvider, FallbackTarget, MockProvider
from chainweave.testing import MockFailure, MockReply
from chainweave.types import ChatRequest, Message


def ask() -> ChatRequest:
    """A one-message request with no model of its own."""
    return ChatRequest(messages=[Message.user("hi")])


async def test_first_healthy_target_answers() -> None:
    """When the primary answers, the secondary is never called."""
    primary, secondary = MockProvider(["primary"]), MockProvider(["secondary"])
    provider = FallbackProvider([FallbackTarget(primary, "a"), FallbackTarget(secondary, "b")])
    resp = await provider.chat(ask())
    assert resp.content == "primary"
    assert secondary.call_count == 0
    assert resp.attempts == 1


async def test_falls_back_with_the_secondary_model_and_counts_attempts() -> None:
    """A retryable failure moves on; the next target gets its own model name."""
    primary = MockProvider([MockFailure(status=503)])
    secondary = MockProvider(["secondary"])
    provider = FallbackProvider([FallbackTarget(primary, "gpt-4o"),
                                 FallbackTarget(secondary, "claude-3-5-haiku-latest")])
    resp = await provider.chat(ask())
    assert resp.content == "secondary"
    assert resp.attempts == 2
    assert primary.requests[0].model == "gpt-4o"
    assert secondary.requests[0].model == "claude-3-5-haiku-latest"


@pytest.mark.parametrize("status", [400, 422])
async def test_invalid_request_is_not_retried_elsewhere(status: int) -> None:
    """A caller's invalid request fails at once instead of trying every model."""
    secondary = MockProvider(["never"])
    provider = FallbackProvider([FallbackTarget(MockProvider([MockFailure(status=status)])),
                                 FallbackTarget(secondary)])
    with pytest.raises(InvalidRequestError):
        await provider.chat(ask())
    assert secondary.call_count == 0


async def test_content_filter_is_not_retried_elsewhere() -> None:
    """A content-policy refusal is final."""
    refusal = ContentFilteredError("refused", provider="a")
    secondary = MockProvider(["never"])
    provider = FallbackProvider([FallbackTarget(MockProvider([refusal])),
                                 FallbackTarget(secondary)])
    with pytest.raises(ContentFilteredError):
        await provider.chat(ask())
    assert secondary.call_count == 0


async def test_all_failing_raises_last_error_with_every_attempt() -> None:
    """When every target fails, the last error lists all attempts."""
    provider = FallbackProvider([
        FallbackTarget(MockProvider([MockFailure(status=503)], name="a"), "m1"),
        FallbackTarget(MockProvider([MockFailure(status=429, retry_after=2)], name="b"), "m2"),
    ])
    with pytest.raises(RateLimitError) as info:
        await provider.chat(ask())
    attempts = info.value.details["attempts"]
    assert [(a["provider"], a["error_type"]) for a in attempts] == [
        ("a", "provider_unavailable"), ("b", "rate_limit_error")]


async def test_stream_falls_back_before_the_first_chunk() -> None:
    """A stream that fails to start is served by the next target."""
    provider = FallbackProvider([
        FallbackTarget(MockProvider([MockFailure(status=500)])),
        FallbackTarget(MockProvider([MockReply("hello there")])),
    ])
    chunks = [c async for c in provider.stream(ask())]
    assert "".join(c.delta for c in chunks) == "hello there"
    assert chunks[-1].finish_reason == "stop"


async def test_stream_failure_after_first_chunk_is_raised() -> None:
    """Once text has been streamed, a failure is raised, never restarted elsewhere."""
    secondary = MockProvider(["never"])
    provider = FallbackProvider([
        FallbackTarget(MockProvider([MockReply("one two three four", truncate_after=2)])),
        FallbackTarget(secondary),
    ])
    with pytest.raises(StreamInterruptedError):
        _ = [c async for c in provider.stream(ask())]
    assert secondary.call_count == 0


async def test_stream_all_failing_raises() -> None:
    """A stream where no target starts raises the last error."""
    provider = FallbackProvider([FallbackTarget(MockProvider([MockFailure(status=503)]))])
    with pytest.raises(ProviderUnavailableError):
        _ = [c async for c in provider.stream(ask())]


def test_needs_a_target() -> None:
    """An empty fallback order is refused."""
    with pytest.raises(InputValidationError, match="at least one"):
        FallbackProvider([])


async def test_closing_the_stream_closes_the_inner_stream() -> None:
    """Closing a fallback stream early closes the target's stream at once, not at GC."""
    closed: list[str] = []

    class Inner(MockProvider):
        async def stream(self, request: ChatRequest):  # type: ignore[no-untyped-def, override]
            try:
                async for chunk in super().stream(request):
                    yield chunk
            finally:
                closed.append("inner")

    provider = FallbackProvider([FallbackTarget(Inner([MockReply("one two three")]))])
    stream = provider.stream(ask())
    await stream.__anext__()
    await stream.aclose()  # type: ignore[attr-defined]
    assert closed == ["inner"]
