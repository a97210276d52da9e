"""RedisMemory: its keys, sharing, configuration, failures, and other processes.

The behaviour every backend shares is in ``test_conversation_contract.py``. Every test
uses its own key prefix on the session's redis-server.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as redis_asyncio

from chainweave.errors import (
    ConfigurationError,
    InputValidationError,
    StoreCorruptedError,
    StoreError,
)
from chainweave.memory.base import StoredMessage, message_tokens, select_recent
from chainweave.memory.redis_memory import RedisMemory
from chainweave.types import Message
from tests.memory._conversation_writer import check_all_appended, run_writers
from tests.memory.test_conversation_contract import FakeClock
from tests.redis_server import unique_prefix

PASSWORD = "hunter2-very-secret"


@pytest.fixture
def prefix() -> str:
    """A key prefix of the test's own."""
    return unique_prefix()


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis_asyncio.Redis]:
    """A plain client on the session's server, to look at the keys directly."""
    plain = redis_asyncio.Redis.from_url(redis_url, decode_responses=True)
    yield plain
    await plain.aclose()


@pytest.fixture
async def memory(redis_url: str, prefix: str) -> AsyncIterator[RedisMemory]:
    """A store under the test's prefix, closed afterwards."""
    store = RedisMemory(redis_url, prefix=prefix)
    yield store
    await store.aclose()


def _texts(items: list[StoredMessage]) -> list[str]:
    return [item.message.text for item in items]


async def test_keys_are_a_list_a_counter_and_a_session_set(
        memory: RedisMemory, client: redis_asyncio.Redis, prefix: str) -> None:
    """Each session is one list of StoredMessage JSON, a seq counter and a sessions entry."""
    await memory.append("s", [Message.user("q"), Message.assistant("a")], metadata={"k": 1})
    entries = await client.lrange(f"{prefix}messages:s", 0, -1)
    assert [StoredMessage.model_validate_json(e).seq for e in entries] == [1, 2]
    assert StoredMessage.model_validate_json(entries[0]).metadata == {"k": 1}
    assert await client.get(f"{prefix}seq:s") == "2"
    assert await client.zrange(f"{prefix}sessions", 0, -1) == ["s"]
    assert sorted(await client.keys(f"{prefix}*")) == [
        f"{prefix}messages:s", f"{prefix}seq:s", f"{prefix}sessions"]


async def test_stores_with_one_prefix_share_conversations(redis_url: str,
                                                          prefix: str) -> None:
    """Stores on one prefix share sessions and seq numbering; another prefix sees none."""
    first, second = RedisMemory(redis_url, prefix=prefix), RedisMemory(redis_url, prefix=prefix)
    other = RedisMemory(redis_url, prefix=unique_prefix())
    try:
        stored = await first.append("s", [Message.user("q")])
        assert await second.history("s") == stored
        (more,) = await second.append("s", [Message.user("q2")])
        assert more.seq == 2
        assert await other.sessions() == []
        assert await other.history("s") == []
    finally:
        for store in (first, second, other):
            await store.aclose()


async def test_url_defaults_to_the_redis_url_variable(
        redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """RedisMemory() connects to $REDIS_URL."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    memory = RedisMemory(prefix=prefix)
    try:
        await memory.append("s", [Message.user("q")])
        assert await memory.sessions() == ["s"]
    finally:
        await memory.aclose()


@pytest.mark.parametrize("url", [None, "", f"http://user:{PASSWORD}@localhost:6379/0",
                                 f"redis://:{PASSWORD}@localhost:notaport/0"])
def test_a_missing_or_bad_url_is_a_configuration_error(
        url: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """No URL (nor $REDIS_URL) or a bad one is a ConfigurationError that hides the password."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    with pytest.raises(ConfigurationError) as info:
        RedisMemory(url)
    assert info.value.field == "url"
    assert PASSWORD not in str(info.value)


def test_a_bad_prefix_is_refused(redis_url: str) -> None:
    """A prefix that is not a string raises InputValidationError naming it."""
    with pytest.raises(InputValidationError) as info:
        RedisMemory(redis_url, prefix=None)  # type: ignore[arg-type]
    assert info.value.field == "prefix"


def test_a_missing_redis_extra_is_a_configuration_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the redis package, RedisMemory says which extra to install."""
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(ConfigurationError, match=r"chainweave\[redis\]"):
        RedisMemory("redis://localhost:6379/0")


async def test_an_unreachable_server_is_a_retryable_store_error(prefix: str) -> None:
    """A server that does not answer gives a retryable StoreError that hides the password."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    memory = RedisMemory(f"redis://user:{PASSWORD}@127.0.0.1:{port}/0", prefix=prefix)
    try:
        with pytest.raises(StoreError) as info:
            await memory.append("s", [Message.user("q")])
    finally:
        await memory.aclose()
    assert info.value.retryable
    assert PASSWORD not in str(info.value)
    assert PASSWORD not in repr(memory)


async def test_a_clashing_key_is_a_store_error_not_to_retry(
        memory: RedisMemory, client: redis_asyncio.Redis, prefix: str) -> None:
    """A key of the wrong type under the prefix gives a non-retryable StoreError."""
    await client.set(f"{prefix}messages:s", "someone else's value")
    with pytest.raises(StoreError) as info:
        await memory.append("s", [Message.user("q")])
    assert not info.value.retryable
    assert "nothing was written" in str(info.value)
    assert await client.get(f"{prefix}messages:s") == "someone else's value"
    assert await client.keys(f"{prefix}*") == [f"{prefix}messages:s"]


@pytest.mark.parametrize("decode", [True, False])
async def test_a_given_client_is_used_and_left_open(redis_url: str, prefix: str,
                                                    decode: bool) -> None:
    """A caller's client (decoding responses or not) works, and aclose leaves it open."""
    given = redis_asyncio.Redis.from_url(redis_url, decode_responses=decode)
    memory = RedisMemory(client=given, prefix=prefix)
    try:
        await memory.append("s", [Message.user("q")])
        assert _texts(await memory.history("s", max_tokens=1000)) == ["q"]
        assert await memory.sessions() == ["s"]
        await memory.aclose()
        assert await given.ping()
        with pytest.raises(StoreError, match="closed"):
            await memory.history("s")
    finally:
        await given.aclose()


async def test_windows_read_only_the_newest_entries(memory: RedisMemory,
                                                    client: redis_asyncio.Redis,
                                                    prefix: str) -> None:
    """history(limit=N) and a small token budget never read old entries (one is broken)."""
    await memory.append("s", [Message.user(str(i)) for i in range(100)])
    await client.lset(f"{prefix}messages:s", 0, "not json")
    assert _texts(await memory.history("s", limit=2)) == ["98", "99"]
    one = message_tokens(Message.user("99"))
    assert _texts(await memory.history("s", max_tokens=one)) == ["99"]
    with pytest.raises(StoreCorruptedError):
        await memory.history("s")


@pytest.mark.parametrize("limit", [None, 1, 40, 150])
@pytest.mark.parametrize("budget", [1, 30, 700, 5_000, 100_000])
async def test_token_budgets_across_many_chunks_match_the_rule(
        memory: RedisMemory, limit: int | None, budget: int) -> None:
    """Reading back in chunks gives exactly what select_recent gives on the whole list."""
    await memory.append("s", [Message.user("word " * (i % 7)) for i in range(300)])
    everything = await memory.history("s")
    assert await memory.history("s", limit=limit, max_tokens=budget) == select_recent(
        everything, limit=limit, max_tokens=budget)


class _Meddling:
    """A client whose watched pipelines run ``meddle`` once, after their first LRANGE."""

    def __init__(self, real: redis_asyncio.Redis, meddle: Callable[[], Awaitable[None]]):
        self.real, self.meddle = real, meddle

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def pipeline(self) -> _MeddlingPipeline:
        return _MeddlingPipeline(self.real.pipeline(), self)


class _MeddlingPipeline:
    def __init__(self, real: Any, owner: _Meddling) -> None:
        self.real, self.owner = real, owner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    async def __aenter__(self) -> _MeddlingPipeline:
        await self.real.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.real.__aexit__(*exc)

    async def lrange(self, key: str, start: int, end: int) -> list[str]:
        entries: list[str] = await self.real.lrange(key, start, end)
        meddle, self.owner.meddle = self.owner.meddle, _nothing
        await meddle()
        return entries


async def _nothing() -> None:
    return None


async def test_a_write_during_a_chunked_read_gives_a_consistent_window(
        redis_url: str, prefix: str) -> None:
    """A delete and new appends between two chunk reads never mix old and new messages."""
    plain = redis_asyncio.Redis.from_url(redis_url, decode_responses=True)
    writer = RedisMemory(client=plain, prefix=prefix)
    await writer.append("s", [Message.user(f"old-{i}") for i in range(100)])

    async def meddle() -> None:
        await writer.delete("s")
        await writer.append("s", [Message.user(f"new-{i}") for i in range(150)])

    reader = RedisMemory(client=_Meddling(plain, meddle), prefix=prefix)
    try:
        got = await reader.history("s", max_tokens=100_000)
        assert _texts(got) == [f"new-{i}" for i in range(150)]
        assert [item.seq for item in got] == list(range(1, 151))
    finally:
        await reader.aclose()
        await writer.aclose()
        await plain.aclose()


async def test_expired_sessions_and_messages_are_removed_by_writes(
        redis_url: str, prefix: str, client: redis_asyncio.Redis) -> None:
    """With ttl, a later write deletes idle sessions' keys and a session's expired entries."""
    clock = FakeClock()
    memory = RedisMemory(redis_url, prefix=prefix, ttl=10, clock=clock)
    try:
        await memory.append("idle", [Message.user("x")])
        await memory.append("busy", [Message.user("old")])
        clock.now += 8
        await memory.append("busy", [Message.user("new")])
        clock.now += 3
        assert await client.llen(f"{prefix}messages:busy") == 2  # reads delete nothing
        await memory.append("busy", [Message.user("newer")])
    finally:
        await memory.aclose()
    assert sorted(await client.zrange(f"{prefix}sessions", 0, -1)) == ["busy"]
    assert not await client.exists(f"{prefix}messages:idle", f"{prefix}seq:idle")
    entries = await client.lrange(f"{prefix}messages:busy", 0, -1)
    assert [StoredMessage.model_validate_json(e).message.text for e in entries] == [
        "new", "newer"]


@pytest.mark.parametrize("broken", ["not json", "5", '{"no": "timestamp"}'])
async def test_a_broken_entry_does_not_stop_appends_with_ttl(
        redis_url: str, prefix: str, client: redis_asyncio.Redis, broken: str) -> None:
    """Dropping expired entries stops at one it cannot read; appends still land whole."""
    clock = FakeClock()
    memory = RedisMemory(redis_url, prefix=prefix, ttl=10, clock=clock)
    try:
        await memory.append("s", [Message.user("a")])
        clock.now += 8
        await memory.append("s", [Message.user("b")])
        await client.lset(f"{prefix}messages:s", 0, broken)  # "a", expired soon
        clock.now += 3
        (stored,) = await memory.append("s", [Message.user("c")])
        assert stored.seq == 3
        assert _texts(await memory.history("s", limit=2)) == ["b", "c"]
        assert await client.lindex(f"{prefix}messages:s", 0) == broken
    finally:
        await memory.aclose()


async def test_two_processes_appending_to_one_session_lose_nothing(
        redis_url: str, prefix: str) -> None:
    """Two OS processes appending 200 messages each leave all 400, seq 1..400, in order."""
    run_writers("redis", redis_url, prefix, "shared", ["A", "B"], 200)
    memory = RedisMemory(redis_url, prefix=prefix)
    try:
        history = await memory.history("shared")
    finally:
        await memory.aclose()
    switches = check_all_appended(history, ["A", "B"], 200)
    assert switches >= 2, "the writers did not overlap, so the test proved nothing"
