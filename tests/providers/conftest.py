"""Run every provider test over both HTTP transports: httpx's own pool and aiohttp's."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, params=["httpx", "aiohttp"])
def http_transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The transport adapters' own clients use in this test."""
    monkeypatch.setenv("CHAINWEAVE_HTTP_TRANSPORT", request.param)
    return str(request.param)
