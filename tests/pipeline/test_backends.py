"""The store backends: one contract for memory and Redis, then what each adds.

The contract tests run over both backends; the Redis ones use the session's real
redis-server, and the fallback tests a server of their own that they stop and restart.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
from pathlib import Path

import pytest
import redis.asyncio as redis_asyncio
from cachetools import LRUCache
from hypothesis import given
from hypothesis import strategies as st

from chainweave.errors import ConfigurationError, InputValidationError
from chainweave.pipeline.backends import MemoryBackend, RedisBackend, StoreBackend
from tests.pipeline import conftest
from tests.pipeline.conftest import BackendFactory, RedisServer, unique_prefix

BAD_TTLS = [0, -1, math.nan, math.inf, "5", True, None]

# --- the contract ----------------------------------------------------------------------


def test_backend_speaks_the_protocol(backend: StoreBackend) -> None:
    """Both backends are StoreBackends."""
    assert isinstance(backend, StoreBackend)


async def test_get_missing_is_none(backend: StoreBackend) -> None:
    """A key never set reads as None."""
    assert await backend.get("absent") is None


async def test_set_then_get(backend: StoreBackend) -> None:
    """A value set is read back unchanged, unicode included."""
    await backend.set("k", '{"text": "héllo ✓"}', 60)
    assert await backend.get("k") == '{"text": "héllo ✓"}'


async def test_set_replaces(backend: StoreBackend) -> None:
    """Setting a key again replaces its value."""
    await backend.set("k", "one", 60)
    await backend.set("k", "two", 60)
    assert await backend.get("k") == "two"


async def test_add_only_when_absent(backend: StoreBackend) -> None:
    """add stores a value only when the key is absent, and says whether it did."""
    assert await backend.add("k", "first", 60) is True
    assert await backend.add("k", "second", 60) is False
    assert await backend.get("k") == "first"


async def test_concurrent_adds_have_one_winner(backend: StoreBackend) -> None:
    """Of many concurrent adds for one key, exactly one wins, and its value stays."""
    results = await asyncio.gather(*(backend.add("k", f"v{i}", 60) for i in range(50)))
    assert results.count(True) == 1
    assert await backend.get("k") == f"v{results.index(True)}"


async def test_delete(backend: StoreBackend) -> None:
    """delete removes a key and says whether there was one."""
    await backend.set("k", "v", 60)
    assert await backend.delete("k") is True
    assert await backend.get("k") is None
    assert await backend.delete("k") is False


async def test_delete_only_if_value_matches(backend: StoreBackend) -> None:
    """delete(only_if=...) removes the key only while it holds that value."""
    await backend.set("k", "mine", 60)
    assert await backend.delete("k", only_if="theirs") is False
    assert await backend.get("k") == "mine"
    assert await backend.delete("k", only_if="mine") is True
    assert await backend.get("k") is None


async def test_entries_expire_after_their_own_ttl(backend: StoreBackend) -> None:
    """Each entry lives for its own ttl: a short one expires, a long one stays."""
    await backend.set("short", "s", 0.05)
    await backend.add("short-add", "s", 0.05)
    await backend.set("long", "l", 60)
    await asyncio.sleep(0.2)
    assert await backend.get("short") is None
    assert await backend.get("short-add") is None
    assert await backend.get("long") == "l"
    assert await backend.add("short-add", "again", 60) is True


async def test_default_ttl_applies(make_backend: BackendFactory) -> None:
    """Without a ttl, an entry lives for the backend's default ttl."""
    backend = make_backend(ttl=0.05)
    await backend.set("k", "v")
    assert await backend.get("k") == "v"
    await asyncio.sleep(0.2)
    assert await backend.get("k") is None


@pytest.mark.parametrize("ttl", BAD_TTLS[:-1])
async def test_bad_ttl_is_refused(backend: StoreBackend, ttl: object) -> None:
    """A ttl that is not a finite number of seconds > 0 raises, naming ttl."""
    for operation in (backend.set, backend.add):
        with pytest.raises(InputValidationError) as info:
            await operation("k", "v", ttl)  # type: ignore[arg-type]
        assert info.value.field == "ttl"
    assert await backend.get("k") is None


async def test_non_string_value_is_refused(backend: StoreBackend) -> None:
    """Values are strings (JSON); anything else raises, naming value."""
    with pytest.raises(InputValidationError) as info:
        await backend.set("k", {"not": "json text"}, 60)  # type: ignore[arg-type]
    assert info.value.field == "value"


async def test_empty_key_is_refused(backend: StoreBackend) -> None:
    """An empty key raises, naming key."""
    with pytest.raises(InputValidationError) as info:
        await backend.set("", "v", 60)
    assert info.value.field == "key"


# --- memory ----------------------------------------------------------------------------


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_memory_evicts_least_recently_used() -> None:
    """At max_size, the least recently used entry makes room."""
    backend = MemoryBackend(max_size=2)
    await backend.set("a", "1", 60)
    await backend.set("b", "2", 60)
    assert await backend.get("a") == "1"  # a is now more recent than b
    await backend.set("c", "3", 60)
    assert await backend.get("b") is None
    assert await backend.get("a") == "1"
    assert await backend.get("c") == "3"
    assert len(backend) == 2


_OPERATIONS = st.lists(st.tuples(st.sampled_from(["set", "get", "add", "delete"]),
                                  st.sampled_from("abcde"), st.sampled_from("xyz")),
                        max_size=40)


@given(_OPERATIONS)
def test_memory_keeps_the_entries_an_lru_cache_keeps(operations: list[tuple[str, str, str]]
                                                    ) -> None:
    """Any sequence of calls answers and keeps what a cachetools LRUCache of the same
    size would: every call on a live key makes it the most recently used."""
    reference: LRUCache[str, str] = LRUCache(maxsize=3)

    def expected(operation: str, key: str, value: str) -> object:
        if operation == "get":
            return reference.get(key)
        if operation == "delete":
            return reference.pop(key, None) is not None
        if operation == "add" and reference.get(key) is not None:
            return False
        reference[key] = value
        return True if operation == "add" else None

    async def run() -> None:
        backend = MemoryBackend(max_size=3)
        for operation, key, value in operations:
            call = getattr(backend, operation)
            got = await (call(key) if operation in ("get", "delete") else call(key, value, 60))
            assert got == expected(operation, key, value), (operation, key)
        assert len(backend) == len(reference)

    asyncio.run(run())


async def test_memory_expiry_follows_its_clock() -> None:
    """Entries expire when the clock passes their own ttl, not before."""
    clock = FakeClock()
    backend = MemoryBackend(ttl=100, timer=clock)
    await backend.set("short", "s", 10)
    await backend.set("default", "d")
    clock.now += 9.9
    assert await backend.get("short") == "s"
    clock.now += 0.2
    assert await backend.get("short") is None
    assert await backend.get("default") == "d"
    clock.now += 100
    assert await backend.get("default") is None
    assert len(backend) == 0


@pytest.mark.parametrize(("field", "kwargs"), [
    ("max_size", {"max_size": 0}), ("max_size", {"max_size": 2.5}),
    ("max_size", {"max_size": True}), ("ttl", {"ttl": 0}), ("ttl", {"ttl": -5}),
    ("ttl", {"ttl": math.nan}),
])
def test_memory_refuses_bad_settings(field: str, kwargs: dict[str, object]) -> None:
    """max_size < 1 or a ttl that is not > 0 raises InputValidationError naming it."""
    with pytest.raises(InputValidationError) as info:
        MemoryBackend(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


# --- Redis -----------------------------------------------------------------------------


async def test_redis_keys_carry_the_prefix(redis_url: str) -> None:
    """Entries are stored under prefix + key, as plain JSON strings."""
    prefix = unique_prefix()
    backend = RedisBackend(redis_url, prefix=prefix)
    raw = redis_asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        await backend.set("k", '{"a": 1}', 60)
        assert await raw.get(prefix + "k") == '{"a": 1}'
        assert 0 < await raw.pttl(prefix + "k") <= 60_000
    finally:
        await raw.aclose()
        await backend.aclose()


async def test_redis_prefixes_keep_stores_apart(redis_url: str) -> None:
    """Backends with one prefix share entries; another prefix sees none of them."""
    prefix = unique_prefix()
    first, same = RedisBackend(redis_url, prefix=prefix), RedisBackend(redis_url, prefix=prefix)
    other = RedisBackend(redis_url, prefix=unique_prefix())
    try:
        await first.set("k", "v", 60)
        assert await same.get("k") == "v"
        assert await other.get("k") is None
    finally:
        for backend in (first, same, other):
            await backend.aclose()


@pytest.mark.parametrize("url", [
    "http://localhost:6379", "localhost:6379", "", "redis://localhost:notaport",
    "redis://[::1", 6379,
])
def test_redis_refuses_bad_urls(url: object) -> None:
    """A URL that is not redis://, rediss:// or unix:// raises ConfigurationError."""
    with pytest.raises(ConfigurationError) as info:
        RedisBackend(url)  # type: ignore[arg-type]
    assert info.value.field == "url"


def test_redis_url_password_is_never_shown() -> None:
    """A password in the URL appears in no error message or repr."""
    with pytest.raises(ConfigurationError) as info:
        RedisBackend("redis://user:hunter2-secret@localhost:notaport")
    assert "hunter2-secret" not in str(info.value)
    backend = RedisBackend("redis://:hunter2-secret@localhost:6379/0")
    assert "hunter2-secret" not in repr(backend)
    in_query = RedisBackend("redis://localhost:6379/0?password=query-secret-1")
    assert "query-secret-1" not in repr(in_query)


@pytest.mark.parametrize(("field", "kwargs"), [
    ("retry_interval", {"retry_interval": -1}), ("retry_interval", {"retry_interval": "x"}),
    ("ttl", {"ttl": 0}), ("socket_timeout", {"socket_timeout": 0}), ("prefix", {"prefix": 1}),
])
def test_redis_refuses_bad_settings(field: str, kwargs: dict[str, object]) -> None:
    """Bad settings raise InputValidationError naming the setting."""
    with pytest.raises(InputValidationError) as info:
        RedisBackend("redis://localhost:6379", **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_redis_missing_package_is_a_configuration_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the redis package, RedisBackend says how to install it."""
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(ConfigurationError, match=r"chainweave\[redis\]"):
        RedisBackend("redis://localhost:6379")


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.name == "chainweave.pipeline.backends" and r.levelno == logging.WARNING]


async def test_redis_down_falls_back_with_one_warning(
        caplog: pytest.LogCaptureFixture, redis_server: RedisServer) -> None:
    """With nothing listening, every call is served from memory and one warning said so."""
    url = f"redis://:s3cret-password@127.0.0.1:{redis_server.port}/0"
    redis_server.stop()
    backend = RedisBackend(url, retry_interval=60, socket_timeout=1)
    caplog.set_level(logging.DEBUG, logger="chainweave.pipeline.backends")
    try:
        await backend.set("k", "v", 60)
        assert await backend.add("k", "other", 60) is False
        assert await backend.get("k") == "v"
        assert await backend.delete("k", only_if="v") is True
        assert await backend.get("k") is None
    finally:
        await backend.aclose()
    assert backend.using_fallback
    [warning] = _warnings(caplog)
    assert "fallback" in warning.getMessage()
    assert "s3cret-password" not in caplog.text


async def test_redis_is_used_again_after_it_restarts(
        caplog: pytest.LogCaptureFixture, redis_server: RedisServer) -> None:
    """A restarted server is used again after retry_interval, with one warning in all."""
    caplog.set_level(logging.DEBUG, logger="chainweave.pipeline.backends")
    backend = RedisBackend(redis_server.url, prefix="p:", retry_interval=0.1, socket_timeout=1)
    raw = redis_asyncio.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        await backend.set("before", "1", 60)
        redis_server.stop()
        await backend.set("during", "2", 60)  # the failure: one warning
        assert await backend.get("during") == "2"  # memory, without trying Redis
        await asyncio.sleep(0.15)
        assert await backend.get("during") == "2"  # a probe that fails again: no warning
        redis_server.start()
        await asyncio.sleep(0.15)
        await backend.set("after", "3", 60)  # the probe that finds Redis back
        assert not backend.using_fallback
        assert await raw.get("p:after") == "3"
        assert await backend.get("during") is None  # Redis answers, not the fallback
    finally:
        await raw.aclose()
        await backend.aclose()
    assert len(_warnings(caplog)) == 1
    assert any("available again" in r.getMessage() and r.levelno == logging.INFO
               for r in caplog.records)


def test_missing_redis_server_fails_the_run(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    """Without a redis-server binary the Redis fixtures fail (never skip), saying why."""
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match="redis-server was not found"):
        conftest.RedisServer()
