"""ProviderManager over two OpenAI-adapter deployments on a real local server that fails
on command: 500s, 429 with Retry-After, connection resets and hangs."""

from __future__ import annotations

import pytest

from chainweave.errors import RateLimitError
from chainweave.providers import OpenAIProvider
from chainweave.providers.breaker import BreakerPolicy
from chainweave.providers.manager import ProviderManager
from chainweave.providers.retry import RetryPolicy
from chainweave.types import ChatRequest, Message
from tests.providers.openai_wire import KEY, completion, error_reply, sse_reply, text_stream
from tests.stubserver import Reply, StubServer

A, B = "/a/v1/chat/completions", "/b/v1/chat/completions"


def two_deployments(stub: StubServer, **kwargs: object) -> ProviderManager:
    """A manager with deployments ``a`` and ``b`` on the stub server's two roots."""
    options: dict[str, object] = {"default_model": "gpt-4o-mini",
                                  "retry": RetryPolicy(max_attempts=4, base_delay=0.01,
                                                       max_delay=0.05, deadline=10)}
    options.update(kwargs)
    pm = ProviderManager(**options)  # type: ignore[arg-type]
    for name in ("a", "b"):
        stub.route("GET", f"/{name}/v1/models", Reply(json={"data": [{"id": "gpt-4o-mini"}]}))
        pm.register(name, OpenAIProvider(api_key=KEY, base_url=f"{stub.url}/{name}/v1",
                                          name=name), ["gpt-4o-mini"], timeout=0.3)
    return pm


def ask() -> ChatRequest:
    """A one-message request."""
    return ChatRequest(messages=[Message.user("Capital of France?")])


@pytest.mark.parametrize(
    "failure",
    [
        error_reply(500, "server error", type_="server_error"),
        error_reply(429, "slow down", type_="requests", headers={"retry-after": "1"}),
        Reply(reset=True),
        Reply(json=completion("too late"), delay=1.0),
    ],
    ids=["500", "429-retry-after", "reset", "hang"],
)
async def test_a_failing_deployment_is_routed_around(stub: StubServer, failure: Reply) -> None:
    """Every call is answered by the healthy deployment while the other fails."""
    stub.route("POST", A, failure)
    stub.route("POST", B, Reply(json=completion("from b")))
    async with two_deployments(stub) as pm:
        answers = [(await pm.chat(ask())).content for _ in range(4)]
    assert answers == ["from b"] * 4
    assert pm.status()["b"]["successes"] == 4


async def test_breaker_opens_on_repeated_500s_and_stops_calling(stub: StubServer) -> None:
    """After the breaker opens, the failing deployment gets no more requests."""
    stub.route("POST", A, error_reply(500, "down", type_="server_error"))
    stub.route("POST", B, Reply(json=completion("from b")))
    pm = two_deployments(stub, breaker=BreakerPolicy(failure_threshold=2, cooldown=60))
    for _ in range(10):
        await pm.chat(ask())
    await pm.aclose()
    hits_on_a = sum(1 for r in stub.requests if r.path == A)
    assert hits_on_a == 2
    assert pm.status()["a"]["breaker"] == "open"


async def test_both_rate_limited_raises_with_retry_after(stub: StubServer) -> None:
    """When both deployments answer 429, the error carries the vendor's Retry-After."""
    for path in (A, B):
        stub.route("POST", path, error_reply(429, "slow down", headers={"retry-after": "30"}))
    pm = two_deployments(stub, max_wait=0.1)
    with pytest.raises(RateLimitError) as info:
        await pm.chat(ask())
    await pm.aclose()
    assert info.value.retry_after == pytest.approx(30.0, abs=1.0)


async def test_stream_fails_over_before_first_token(stub: StubServer) -> None:
    """A stream whose first deployment answers 503 streams from the other."""
    stub.route("POST", A, error_reply(503, "overloaded"))
    stub.route("POST", B, sse_reply(text_stream("Par", "is")))
    async with two_deployments(stub) as pm:
        chunks = [c async for c in pm.stream(ask())]
    assert "".join(c.delta for c in chunks) == "Paris"
    assert chunks[-1].usage is not None
