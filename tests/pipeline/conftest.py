"""Pipeline fixtures: store backends over memory or a real redis-server.

The server comes from ``tests/redis_server.py`` (the ``redis_url`` and ``redis_server``
fixtures in ``tests/conftest.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from chainweave.pipeline.backends import MemoryBackend, RedisBackend, StoreBackend
from tests.redis_server import RedisServer, unique_prefix

__all__ = ["BACKENDS", "BackendFactory", "RedisServer", "backend", "backend_kind",
           "make_backend", "unique_prefix"]

BACKENDS = ["memory", "redis"]

BackendFactory = Callable[..., StoreBackend]
"""``make(max_size=1000, ttl=3600.0, prefix=None)``: a new backend of the test's kind."""


@pytest.fixture(params=BACKENDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    """Which backend the test runs over."""
    return str(request.param)


@pytest.fixture
async def make_backend(request: pytest.FixtureRequest,
                       backend_kind: str) -> AsyncIterator[BackendFactory]:
    """Builds backends of ``backend_kind`` (Redis: a fresh prefix each); closes them after."""
    made: list[StoreBackend] = []
    url = request.getfixturevalue("redis_url") if backend_kind == "redis" else ""

    def make(max_size: int = 1000, ttl: float = 3600.0, prefix: str | None = None
             ) -> StoreBackend:
        backend: StoreBackend
        if backend_kind == "redis":
            backend = RedisBackend(url, prefix=prefix or unique_prefix(), ttl=ttl)
        else:
            backend = MemoryBackend(max_size=max_size, ttl=ttl)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.aclose()


@pytest.fixture
def backend(make_backend: BackendFactory) -> StoreBackend:
    """One backend of the parametrised kind."""
    return make_backend()
