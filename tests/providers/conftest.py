"""Run every test that talks to the local server over both HTTP transports."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from chainweave.providers.anthropic import AnthropicProvider
from tests.providers.anthropic_wire import make_provider
from tests.stubserver import StubServer

TRANSPORTS = ["httpx", "aiohttp"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise tests using the ``stub`` server by transport; others run once."""
    if "stub" in metafunc.fixturenames:
        metafunc.fixturenames.append("http_transport")
        metafunc.parametrize("http_transport", TRANSPORTS, indirect=True)


@pytest.fixture
def http_transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The transport adapters' own clients use in this test."""
    transport = str(getattr(request, "param", "httpx"))
    monkeypatch.setenv("CHAINWEAVE_HTTP_TRANSPORT", transport)
    return transport


@pytest.fixture
async def provider(stub: StubServer) -> AsyncIterator[AnthropicProvider]:
    """An Anthropic adapter pointed at the stub server, closed afterwards."""
    adapter = make_provider(stub)
    yield adapter
    await adapter.aclose()
