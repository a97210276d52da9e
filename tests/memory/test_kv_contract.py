"""The key-value store contract every backend passes, then each backend's own knobs.

A new backend joins the contract by adding a case to :func:`make_store`: a factory of
fresh, empty stores that take an injected clock.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainweave.errors import ConfigurationError, InputValidationError, StoreError
from chainweave.memory.kv import MAX_KEY_CHARS, MAX_LABEL_CHARS, Item, KeyValueStore
from chainweave.memory.kv_memory import InMemoryStore
from chainweave.memory.kv_redis import RedisStore
from chainweave.memory.kv_sqlite import SQLiteStore
from tests.redis_server import RedisServer, unique_prefix

StoreFactory = Callable[..., KeyValueStore]


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["inmemory", "sqlite", "redis"])
async def make_store(request: pytest.FixtureRequest, tmp_path: Path,
                     redis_url: str) -> AsyncIterator[StoreFactory]:
    """A factory of fresh, empty stores of the parametrised backend, closed after the test."""
    made: list[KeyValueStore] = []

    def factory(clock: Callable[[], float] | None = None) -> KeyValueStore:
        clock = clock or FakeClock()
        store: KeyValueStore
        if request.param == "inmemory":
            store = InMemoryStore(clock=clock)
        elif request.param == "sqlite":
            store = SQLiteStore(tmp_path / f"kv{len(made)}.db", clock=clock)
        else:
            store = RedisStore(redis_url, prefix=unique_prefix(), clock=clock)
        made.append(store)
        return store

    yield factory
    for store in made:
        await store.aclose()


@pytest.fixture
def store(make_store: StoreFactory) -> KeyValueStore:
    """A fresh, empty store of the parametrised backend."""
    return make_store()


def _addresses(items: list[Item]) -> list[tuple[tuple[str, ...], str]]:
    return [(item.namespace, item.key) for item in items]


# --- the contract ----------------------------------------------------------------------


def test_backend_is_a_key_value_store(store: KeyValueStore) -> None:
    """Every backend satisfies the KeyValueStore protocol code is typed against."""
    assert isinstance(store, KeyValueStore)


async def test_put_then_get_returns_the_item(store: KeyValueStore) -> None:
    """A put value is read back with its namespace, key and the clock's timestamps."""
    put = await store.put(("users", "u1", "memories"), "likes", {"food": ["tea", 1.5]})
    assert put == Item(namespace=("users", "u1", "memories"), key="likes",
                       value={"food": ["tea", 1.5]}, created_at=1000.0, updated_at=1000.0)
    assert await store.get(("users", "u1", "memories"), "likes") == put
    assert await store.get(("users", "u1", "memories"), "other") is None
    assert await store.get(("users", "u1"), "likes") is None


async def test_update_replaces_the_value_and_keeps_created_at(
        make_store: StoreFactory) -> None:
    """Putting a key again replaces its value; created_at stays, updated_at moves."""
    clock = FakeClock()
    store = make_store(clock)
    await store.put("ns", "k", "first")
    clock.now = 1_005.5
    updated = await store.put("ns", "k", "second")
    assert (updated.value, updated.created_at, updated.updated_at) == ("second", 1000.0, 1005.5)
    assert await store.get("ns", "k") == updated


async def test_delete_removes_the_item(store: KeyValueStore) -> None:
    """delete returns True once, then the item and its empty namespace are gone."""
    await store.put(("a", "b"), "k", 1)
    await store.put(("a",), "k", 2)
    assert await store.delete(("a", "b"), "k") is True
    assert await store.delete(("a", "b"), "k") is False
    assert await store.delete(("never",), "k") is False
    assert await store.get(("a", "b"), "k") is None
    assert await store.namespaces() == [("a",)]
    assert _addresses(await store.list()) == [(("a",), "k")]


async def test_a_plain_string_is_a_one_label_namespace(store: KeyValueStore) -> None:
    """"users" means ("users",) everywhere, and lists work as tuples."""
    await store.put("users", "k", True)
    assert (await store.get(("users",), "k")) is not None
    assert (await store.get(["users"], "k")) is not None
    assert _addresses(await store.list("users")) == [(("users",), "k")]
    assert await store.namespaces(["users"]) == [("users",)]


async def test_prefix_matches_whole_labels_only(store: KeyValueStore) -> None:
    """list(("user",)) finds ("user", ...) at any depth but never ("users",)."""
    for namespace in [("user",), ("user", "x"), ("users",), ("user x",), ("use",)]:
        await store.put(namespace, "k", list(namespace))
    assert _addresses(await store.list(("user",))) == [(("user",), "k"), (("user", "x"), "k")]
    assert _addresses(await store.list(("user", "x"))) == [(("user", "x"), "k")]
    assert await store.list(("user", "x", "y")) == []
    assert await store.namespaces(("user",)) == [("user",), ("user", "x")]


async def test_items_are_ordered_by_namespace_then_key(store: KeyValueStore) -> None:
    """list orders like sorted((namespace, key)): a namespace's items before its children."""
    addresses = [(("a",), "z"), (("a", "b"), "a"), (("a!",), "a"), (("a",), "b"),
                 (("a b",), "k"), (("ab",), "k"), (("é",), "k"), (("A",), "k"),
                 (("a", "b", "c"), "\x01"), (("a",), "\x1f")]
    for namespace, key in addresses:
        await store.put(namespace, key, 0)
    assert _addresses(await store.list()) == sorted(addresses)
    assert await store.namespaces() == sorted({ns for ns, _ in addresses})


async def test_list_pages_with_limit_and_offset(store: KeyValueStore) -> None:
    """limit and offset page through the ordered items under a prefix."""
    for index in range(7):
        await store.put(("p", str(index % 2)), f"k{index}", index)
    await store.put(("q",), "k", 0)
    everything = _addresses(await store.list("p"))
    assert len(everything) == 7
    assert _addresses(await store.list("p", limit=3)) == everything[:3]
    assert _addresses(await store.list("p", limit=3, offset=3)) == everything[3:6]
    assert _addresses(await store.list("p", offset=5)) == everything[5:]
    assert await store.list("p", offset=7) == []


@pytest.mark.parametrize("labels", [
    ("50%", "a_b"), ("it's", 'say "hi"'), ("back\\slash", "[x]", "-", "+", "*?"),
    ("ünï", "日本語", "😀"), ("with space", "\x7f", "tab-free")])
async def test_odd_characters_round_trip_and_stay_exact(store: KeyValueStore,
                                                        labels: tuple[str, ...]) -> None:
    """Wildcards, quotes, unicode and range markers in labels and keys are plain text."""
    keys = ["%", "_", "'", '"', "ключ 😀", "a\x1eb", "\x1f", "[", "line\nbreak"]
    lookalikes = [("5", "a"), ("50", "axb"), ("50%x",), ("x",)]
    for key in keys:
        await store.put(labels, key, {"key": key})
    for namespace in lookalikes:
        await store.put(namespace, "%", "decoy")
    for key in keys:
        item = await store.get(labels, key)
        assert item is not None
        assert item.value == {"key": key}
    assert _addresses(await store.list(labels)) == sorted((labels, key) for key in keys)
    assert _addresses(await store.list(labels[:1])) == sorted((labels, key) for key in keys)
    assert await store.namespaces(labels[:1]) == [labels]


@pytest.mark.parametrize("value", [object(), math.nan, -math.inf, {1, 2}, b"bytes",
                                  {"deep": [1, {"x": object()}]}, {"n": math.nan}])
async def test_non_json_values_are_refused_and_nothing_written(store: KeyValueStore,
                                                               value: Any) -> None:
    """A value that is not JSON raises naming "value", and the store is unchanged."""
    await store.put("ns", "kept", "old")
    for key in ("kept", "new"):
        with pytest.raises(InputValidationError) as info:
            await store.put("ns", key, value)
        assert info.value.field == "value"
    with pytest.raises(InputValidationError):
        await store.put("fresh", "k", value)
    assert [(item.key, item.value) for item in await store.list()] == [("kept", "old")]
    assert await store.namespaces() == [("ns",)]


async def test_values_come_back_as_their_json_round_trip(store: KeyValueStore) -> None:
    """Tuples come back as lists and mapping keys as strings, the same on every backend."""
    item = await store.put("ns", "k", {"t": (1, 2), 3: None, "f": 0.1, "big": 2**70})
    expected = {"t": [1, 2], "3": None, "f": 0.1, "big": 2**70}
    assert item.value == expected
    got = await store.get("ns", "k")
    assert got is not None
    assert got.value == expected


BAD_NAMESPACES: list[Any] = [
    "", ("",), ("a", ""), ("a\x1f",), ("a\x1eb",), ("nul\x00",), ("new\nline",),
    ("x" * (MAX_LABEL_CHARS + 1),), ("\ud800",), (1,), ("a", None), b"bytes", None, 5]


@pytest.mark.parametrize("namespace", [(), *BAD_NAMESPACES])
async def test_bad_namespaces_are_refused(store: KeyValueStore, namespace: Any) -> None:
    """put, get and delete refuse a bad or empty namespace, naming "namespace"."""
    for call in (store.put(namespace, "k", 1), store.get(namespace, "k"),
                 store.delete(namespace, "k")):
        with pytest.raises(InputValidationError) as info:
            await call
        assert info.value.field == "namespace"
    assert await store.list() == []


@pytest.mark.parametrize("prefix", BAD_NAMESPACES)
async def test_bad_prefixes_are_refused(store: KeyValueStore, prefix: Any) -> None:
    """list and namespaces refuse a bad prefix, naming "prefix"."""
    for call in (store.list(prefix), store.namespaces(prefix)):
        with pytest.raises(InputValidationError) as info:
            await call
        assert info.value.field == "prefix"


@pytest.mark.parametrize("key", ["", "x" * (MAX_KEY_CHARS + 1), "a\x00b", "\udc80", None, 3])
async def test_bad_keys_are_refused(store: KeyValueStore, key: Any) -> None:
    """put, get and delete refuse a key that is not 1..512 chars of text, naming "key"."""
    for call in (store.put("ns", key, 1), store.get("ns", key), store.delete("ns", key)):
        with pytest.raises(InputValidationError) as info:
            await call
        assert info.value.field == "key"
    assert await store.list() == []


async def test_longest_key_and_label_are_accepted(store: KeyValueStore) -> None:
    """A 512-character key under a 256-character label works."""
    namespace, key = ("n" * MAX_LABEL_CHARS,), "k" * MAX_KEY_CHARS
    await store.put(namespace, key, 1)
    assert _addresses(await store.list()) == [(namespace, key)]


@pytest.mark.parametrize(("name", "value"), [
    ("limit", 0), ("limit", -1), ("limit", True), ("limit", 1.5),
    ("offset", -1), ("offset", None), ("offset", 2.0)])
async def test_bad_paging_is_refused(store: KeyValueStore, name: str, value: Any) -> None:
    """limit must be a positive int or None and offset an int >= 0; the error names it."""
    with pytest.raises(InputValidationError) as info:
        await store.list(**{name: value})
    assert info.value.field == name


@pytest.mark.parametrize("ttl", [0, -1, math.inf, math.nan, True, "5"])
async def test_bad_ttl_is_refused(store: KeyValueStore, ttl: Any) -> None:
    """ttl must be a finite number of seconds > 0; nothing is written otherwise."""
    with pytest.raises(InputValidationError) as info:
        await store.put("ns", "k", 1, ttl=ttl)
    assert info.value.field == "ttl"
    assert await store.list() == []


async def test_values_are_copies(store: KeyValueStore) -> None:
    """Mutating the value passed in or any value handed back never changes the store."""
    value: dict[str, Any] = {"tags": ["a"]}
    put = await store.put("ns", "k", value)
    value["tags"].append("passed-in")
    put.value["tags"].append("from-put")
    got = await store.get("ns", "k")
    assert got is not None
    got.value["tags"].append("from-get")
    (listed,) = await store.list()
    listed.value.clear()
    again = await store.get("ns", "k")
    assert again is not None
    assert again.value == {"tags": ["a"]}


async def test_ttl_expires_items(make_store: StoreFactory) -> None:
    """An item put with ttl is gone everywhere once the clock reaches updated_at + ttl."""
    clock = FakeClock()
    store = make_store(clock)
    await store.put(("t", "short"), "k", 1, ttl=10)
    await store.put(("t", "kept"), "k", 2, ttl=10)
    await store.put(("t", "kept"), "k", 2)  # a put without ttl keeps the item for good
    clock.now = 1_009.5
    assert await store.get(("t", "short"), "k") is not None
    assert await store.namespaces() == [("t", "kept"), ("t", "short")]
    clock.now = 1_010.0
    assert await store.get(("t", "short"), "k") is None
    assert _addresses(await store.list("t")) == [(("t", "kept"), "k")]
    assert await store.namespaces() == [("t", "kept")]
    assert await store.delete(("t", "short"), "k") is False
    again = await store.put(("t", "short"), "k", 3, ttl=10)
    assert again.created_at == 1_010.0


async def test_aclose_can_be_called_twice(store: KeyValueStore) -> None:
    """Closing a store is idempotent, so cleanup code need not track it."""
    await store.aclose()
    await store.aclose()


# --- the contract as a property: any sequence of operations matches a dict -------------

_LABELS = st.sampled_from(["a", "ab", "a b", "%", "_", "é", "b"])
_NAMESPACES = st.lists(_LABELS, min_size=1, max_size=3).map(tuple)
_PREFIXES = st.lists(_LABELS, max_size=2).map(tuple)
_KEYS = st.sampled_from(["k", "k2", "%", "_", "'", "\x1e", "\x1f", "ä"])
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                max_size=3),
    max_leaves=6)
# Puts are drawn three times as often as the rest, so the store fills up.
_PUT = st.tuples(st.just("put"), _NAMESPACES, _KEYS, _JSON)
_OPS = st.one_of(
    _PUT, _PUT, _PUT,
    st.tuples(st.just("delete"), _NAMESPACES, _KEYS),
    st.tuples(st.just("get"), _NAMESPACES, _KEYS),
    st.tuples(st.just("list"), _PREFIXES, st.none() | st.integers(1, 4), st.integers(0, 4)),
    st.tuples(st.just("namespaces"), _PREFIXES),
)

_Model = dict[tuple[tuple[str, ...], str], Any]


async def _check_op(store: KeyValueStore, model: _Model, op: tuple[Any, ...]) -> None:
    kind, *args = op
    if kind == "put":
        namespace, key, value = args
        assert (await store.put(namespace, key, value)).value == value
        model[(namespace, key)] = value
    elif kind == "delete":
        assert await store.delete(*args) == (tuple(args) in model)
        model.pop((args[0], args[1]), None)
    elif kind == "get":
        item = await store.get(*args)
        assert (item.value if item else "absent") == model.get((args[0], args[1]), "absent")
    elif kind == "list":
        prefix, limit, offset = args
        expected = sorted((ns, key, value) for (ns, key), value in model.items()
                          if ns[:len(prefix)] == prefix)
        expected = expected[offset:][:limit]
        got = await store.list(prefix, limit=limit, offset=offset)
        assert [(item.namespace, item.key, item.value) for item in got] == expected
    else:
        expected_ns = sorted({ns for ns, _ in model if ns[:len(args[0])] == args[0]})
        assert await store.namespaces(args[0]) == expected_ns


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(_OPS, min_size=1, max_size=25))
async def test_any_operation_sequence_matches_a_dict(store: KeyValueStore,
                                                     ops: list[tuple[Any, ...]]) -> None:
    """Whatever the order of puts, deletes, reads and listings, the store acts like a dict."""
    for item in await store.list():
        await store.delete(item.namespace, item.key)
    model: _Model = {}
    for op in ops:
        await _check_op(store, model, op)
    final = [(item.namespace, item.key, item.value) for item in await store.list()]
    assert final == sorted((ns, key, value) for (ns, key), value in model.items())


# --- InMemoryStore ---------------------------------------------------------------------


async def test_inmemory_evicts_the_least_recently_used_item() -> None:
    """Past max_items the item least recently put or read is dropped; listing is no use."""
    store = InMemoryStore(max_items=2)
    await store.put("ns", "a", 1)
    await store.put("ns", "b", 2)
    await store.get("ns", "a")
    await store.list()
    await store.put("ns", "c", 3)
    assert _addresses(await store.list()) == [(("ns",), "a"), (("ns",), "c")]


@pytest.mark.parametrize(("field", "value"), [
    ("max_items", 0), ("max_items", True), ("max_items", 1.5), ("clock", 3.0)])
def test_inmemory_refuses_bad_settings(field: str, value: object) -> None:
    """A bad constructor argument raises InputValidationError naming it."""
    with pytest.raises(InputValidationError) as info:
        InMemoryStore(**{field: value})  # type: ignore[arg-type]
    assert info.value.field == field


# --- RedisStore --------------------------------------------------------------------------


async def _keys_under(client: redis_asyncio.Redis, prefix: str) -> list[str]:
    return sorted([key async for key in client.scan_iter(match=f"{prefix}*")])


async def test_redis_layout_is_a_hash_per_namespace_and_leaves_nothing_behind(
        redis_url: str) -> None:
    """Items live in one hash per namespace plus indexes; deleting all leaves no keys."""
    prefix, clock = unique_prefix(), FakeClock()
    client = redis_asyncio.Redis.from_url(redis_url, decode_responses=True)
    store = RedisStore(client=client, prefix=prefix, clock=clock)
    try:
        await store.put(("u", "1"), "a", 1)
        await store.put(("u", "1"), "b", 2)
        await store.put(("u",), "c", 3, ttl=5)
        assert await _keys_under(client, prefix) == [
            f"{prefix}expiry", f"{prefix}index", f"{prefix}namespaces",
            f"{prefix}ns:u\x1f", f"{prefix}ns:u\x1f1\x1f"]
        assert await client.hlen(f"{prefix}ns:u\x1f1\x1f") == 2
        await store.delete(("u", "1"), "a")
        await store.delete(("u", "1"), "b")
        clock.now += 5
        await store.list()
        assert await _keys_under(client, prefix) == []
    finally:
        await store.aclose()
        assert await client.ping()  # an injected client is the caller's to close
        await client.aclose()


async def test_redis_listing_never_uses_keys_or_scan(redis_url: str) -> None:
    """Prefix listing walks sorted-set indexes, never KEYS or SCAN over the keyspace."""
    client = redis_asyncio.Redis.from_url(redis_url, decode_responses=True)
    store = RedisStore(client=client, prefix=unique_prefix())
    try:
        await store.put(("a", "b"), "k", 1)

        async def calls() -> dict[str, int]:
            stats = await client.info("commandstats")
            return {name: stats.get(f"cmdstat_{name}", {}).get("calls", 0)
                    for name in ("keys", "scan", "zrangebylex")}

        before = await calls()
        assert len(await store.list("a")) == 1
        assert await store.namespaces("a") == [("a", "b")]
        after = await calls()
        assert after["keys"] == before["keys"]
        assert after["scan"] == before["scan"]
        assert after["zrangebylex"] >= before["zrangebylex"] + 2
    finally:
        await store.aclose()
        await client.aclose()


async def test_redis_stores_with_other_prefixes_do_not_meet(redis_url: str) -> None:
    """Two prefixes on one server are two separate stores."""
    first = RedisStore(redis_url, prefix=unique_prefix())
    second = RedisStore(redis_url, prefix=unique_prefix())
    try:
        await first.put("ns", "k", 1)
        assert await second.get("ns", "k") is None
        assert await second.list() == []
    finally:
        await first.aclose()
        await second.aclose()


async def test_redis_unreachable_is_a_retryable_store_error(redis_server: RedisServer) -> None:
    """When Redis is down, calls raise a retryable StoreError without the password."""
    url = f"redis://:hunter2-kv@127.0.0.1:{redis_server.port}/0"
    store = RedisStore(url, prefix=unique_prefix())
    redis_server.stop()
    try:
        for call in (store.get("ns", "k"), store.put("ns", "k", 1), store.list()):
            with pytest.raises(StoreError) as info:
                await call
            assert info.value.retryable is True
            assert "hunter2-kv" not in str(info.value)
    finally:
        await store.aclose()


@pytest.mark.parametrize("url", ["", "http://localhost:6379", "redis://localhost:notaport"])
def test_redis_refuses_a_bad_url(url: str) -> None:
    """A URL that is not redis://, rediss:// or unix:// is a ConfigurationError on "url"."""
    with pytest.raises(ConfigurationError) as info:
        RedisStore(url)
    assert info.value.field == "url"


def test_redis_needs_a_url_or_a_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no url, no client and no REDIS_URL the store says what it needs."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    with pytest.raises(ConfigurationError, match="REDIS_URL") as info:
        RedisStore()
    assert info.value.field == "url"


async def test_redis_url_defaults_to_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                     redis_url: str) -> None:
    """RedisStore() connects to $REDIS_URL."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    prefix = unique_prefix()
    store = RedisStore(prefix=prefix)
    try:
        await store.put("ns", "k", "v")
        check = RedisStore(redis_url, prefix=prefix)
        assert await check.get("ns", "k") is not None
        await check.aclose()
    finally:
        await store.aclose()


@pytest.mark.parametrize(("field", "value"), [("prefix", 3), ("clock", "now")])
def test_redis_refuses_bad_settings(field: str, value: object, redis_url: str) -> None:
    """A bad constructor argument raises InputValidationError naming it."""
    with pytest.raises(InputValidationError) as info:
        RedisStore(redis_url, **{field: value})  # type: ignore[arg-type]
    assert info.value.field == field
