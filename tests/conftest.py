"""Shared fixtures: a local HTTP server per test, and nothing that reaches the internet."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.redis_server import redis_server, redis_url
from tests.stubserver import StubServer

__all__ = ["redis_server", "redis_url", "stub"]


@pytest.fixture
def stub() -> Iterator[StubServer]:
    """A fresh scripted HTTP server on 127.0.0.1."""
    with StubServer() as server:
        yield server
