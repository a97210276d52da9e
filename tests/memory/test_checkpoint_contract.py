"""The checkpoint-store contract every backend passes, then the model and each backend's knobs.

A new backend joins the contract by adding one ``pytest.param`` to :data:`STORES`: a
factory ``(request, key, **settings)`` where stores made with the same ``key`` share
their storage (a reopened store starts with an empty cache, so it rebuilds states
from what was stored).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainweave.errors import (
    ConfigurationError,
    InputValidationError,
    SchemaVersionError,
    StoreError,
)
from chainweave.memory.checkpoint import (
    Checkpoint,
    CheckpointStore,
    StateMigrations,
    new_checkpoint_id,
)
from chainweave.memory.checkpoint_memory import MemoryCheckpointer
from chainweave.memory.checkpoint_redis import RedisCheckpointer
from chainweave.memory.checkpoint_sqlite import SQLiteCheckpointer
from tests.memory._checkpoint_states import Model, message, state_at
from tests.redis_server import unique_prefix

StoreFactory = Callable[..., CheckpointStore]


def _memory(request: pytest.FixtureRequest, key: str, **settings: Any) -> CheckpointStore:
    shared: dict[str, MemoryCheckpointer] = request.getfixturevalue("memory_stores")
    store = MemoryCheckpointer(**settings)
    if key in shared:  # reopened: the same checkpoints, read by a store with a cold cache
        store._threads = shared[key]._threads
    shared.setdefault(key, store)
    return store


def _sqlite(request: pytest.FixtureRequest, key: str, **settings: Any) -> CheckpointStore:
    tmp_path = request.getfixturevalue("tmp_path")
    return SQLiteCheckpointer(tmp_path / f"checkpoints-{key}.db", **settings)


def _redis(request: pytest.FixtureRequest, key: str, **settings: Any) -> CheckpointStore:
    return RedisCheckpointer(request.getfixturevalue("redis_url"), prefix=f"{key}:",
                             **settings)


STORES = [
    pytest.param(_memory, id="memory"),
    pytest.param(_sqlite, id="sqlite"),
    pytest.param(_redis, id="redis"),
]


class Stores:
    """Makes stores of one backend; ``reopen`` gives another store on the same storage,
    which starts with an empty cache (for memory: another store sharing the first's
    checkpoints; write through the first one only)."""

    def __init__(self, request: pytest.FixtureRequest, factory: StoreFactory) -> None:
        self._request, self._factory = request, factory
        self._storage: dict[int, tuple[str, dict[str, Any]]] = {}
        self.made: list[CheckpointStore] = []

    def make(self, **settings: Any) -> CheckpointStore:
        """A fresh, empty store with the given settings."""
        return self._open(uuid.uuid4().hex, settings)

    def reopen(self, store: CheckpointStore) -> CheckpointStore:
        """Another store with ``store``'s settings on its storage."""
        return self._open(*self._storage[id(store)])

    def _open(self, key: str, settings: dict[str, Any]) -> CheckpointStore:
        store = self._factory(self._request, key, **settings)
        self._storage[id(store)] = (key, settings)
        self.made.append(store)
        return store


@pytest.fixture
def memory_stores() -> dict[str, MemoryCheckpointer]:
    """The memory stores of one test, by storage key."""
    return {}


@pytest.fixture(params=STORES)
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[Stores]:
    """Makes stores of the parametrised backend; each is closed after the test."""
    made = Stores(request, request.param)
    yield made
    for store in made.made:
        await store.aclose()


@pytest.fixture
def store(stores: Stores) -> CheckpointStore:
    """A fresh, empty store of the parametrised backend."""
    return stores.make()


def _cp(step: int, parent: str | None = None, *, thread: str = "t",
        **fields: Any) -> Checkpoint:
    fields.setdefault("state", state_at(step))
    return Checkpoint(thread_id=thread, parent_id=parent, step=step, **fields)


async def _chain(store: CheckpointStore, steps: int, *, thread: str = "t",
                 parent: str | None = None) -> list[Checkpoint]:
    """Put ``steps`` checkpoints, each the child of the one before."""
    made = []
    for step in range(steps):
        checkpoint = _cp(step, parent, thread=thread)
        await store.put(checkpoint)
        made.append(checkpoint)
        parent = checkpoint.checkpoint_id
    return made


# --- the contract: put, get, list -------------------------------------------------------


def test_backend_is_a_checkpoint_store(store: CheckpointStore) -> None:
    """Every backend satisfies the CheckpointStore protocol the graph engine is typed against."""
    assert isinstance(store, CheckpointStore)


async def test_put_then_get_returns_every_field(store: CheckpointStore) -> None:
    """A checkpoint comes back exactly: state, next, pending writes, metadata, version, time."""
    checkpoint = _cp(3, "p0", next=["node_b", {"task": "t1", "args": [1, 2]}],
                     pending_writes=[{"node": "a", "channel": "messages", "value": [1.5]}],
                     metadata={"source": "loop", "writes": {"a": None}},
                     schema_version="v1", created_at=1_700_000_000.25)
    await store.put(checkpoint)
    assert await store.get("t", checkpoint.checkpoint_id) == checkpoint
    assert await store.get("t") == checkpoint


async def test_get_without_id_returns_the_newest(store: CheckpointStore) -> None:
    """With no checkpoint id, get returns the thread's most recently put checkpoint."""
    made = await _chain(store, 3)
    assert await store.get("t") == made[-1]


async def test_unknown_thread_or_checkpoint_reads_as_none(store: CheckpointStore) -> None:
    """Reading what was never put gives None or [] and creates nothing."""
    await _chain(store, 1)
    assert await store.get("nobody") is None
    assert await store.get("t", "missing") is None
    assert await store.list("nobody") == []
    assert await store.threads() == ["t"]


async def test_list_is_newest_first_with_limit_and_before(store: CheckpointStore) -> None:
    """list pages backwards through a thread: newest first, limit, then before=<last id>."""
    made = await _chain(store, 6)
    assert await store.list("t") == made[::-1]
    first = await store.list("t", limit=4)
    assert first == made[:1:-1]
    rest = await store.list("t", limit=4, before=first[-1].checkpoint_id)
    assert rest == made[1::-1]
    assert await store.list("t", before="unknown") == []


async def test_order_is_the_order_of_put_not_of_ids(store: CheckpointStore) -> None:
    """Newest means most recently put, even when the caller's own ids sort otherwise."""
    ids = ["step-9", "step-10", "a"]
    for step, checkpoint_id in enumerate(ids):
        await store.put(_cp(step, checkpoint_id=checkpoint_id))
    assert [item.checkpoint_id for item in await store.list("t")] == ids[::-1]
    newest = await store.get("t")
    assert newest is not None
    assert newest.checkpoint_id == "a"


async def test_returned_checkpoint_is_the_callers_own(store: CheckpointStore) -> None:
    """Changing a returned state never changes what the store holds."""
    checkpoint = (await _chain(store, 2))[-1]
    got = await store.get("t")
    assert got is not None
    got.state["messages"].append("mutated")
    got.state["extra"] = 1
    assert await store.get("t") == checkpoint


async def test_put_same_id_replaces_it_in_place(stores: Stores) -> None:
    """Putting an id again replaces it, keeps its place, and its children still read back."""
    store = stores.make(snapshot_every=1)
    made = await _chain(store, 4)
    changed = made[1].model_copy(update={"state": {"replaced": True}, "metadata": {"v": 2}})
    await store.put(changed)
    expected = [made[0], changed, *made[2:]]
    assert await store.list("t") == expected[::-1]
    assert await stores.reopen(store).list("t") == expected[::-1]


async def test_adding_pending_writes_to_a_checkpoint(stores: Stores) -> None:
    """The engine re-puts a checkpoint with more pending writes; the state is unchanged."""
    store = stores.make()
    made = await _chain(store, 3)
    writes = [{"node": "a", "value": 1}, {"node": "b", "value": [2]}]
    updated = made[1].model_copy(update={"pending_writes": writes})
    await store.put(updated)
    assert await stores.reopen(store).get("t", made[1].checkpoint_id) == updated
    assert await stores.reopen(store).get("t", made[2].checkpoint_id) == made[2]


async def test_forks_read_back(stores: Stores) -> None:
    """A checkpoint forked from an older one is the newest; both branches read back."""
    store = stores.make(snapshot_every=2)
    main = await _chain(store, 6)
    fork = _cp(3, main[2].checkpoint_id, state={**state_at(3), "branch": "b"})
    await store.put(fork)
    grandchild = _cp(4, fork.checkpoint_id, state={**state_at(4), "branch": "b"})
    await store.put(grandchild)
    reopened = stores.reopen(store)
    assert await reopened.get("t") == grandchild
    for checkpoint in [*main, fork, grandchild]:
        assert await reopened.get("t", checkpoint.checkpoint_id) == checkpoint


async def test_concurrent_puts_on_one_thread_all_land(stores: Stores) -> None:
    """Many tasks putting forks of one parent at once lose none of them."""
    store = stores.make()
    root = (await _chain(store, 1))[0]
    forks = [_cp(1, root.checkpoint_id, state={**state_at(1), "fork": index})
             for index in range(12)]
    await asyncio.gather(*(store.put(fork) for fork in forks))
    got = await stores.reopen(store).list("t")
    assert sorted(got, key=lambda item: item.checkpoint_id) == sorted(
        [root, *forks], key=lambda item: item.checkpoint_id)


# --- threads, delete, prune -------------------------------------------------------------


async def test_threads_are_sorted_and_delete_thread_counts(store: CheckpointStore) -> None:
    """threads() lists threads sorted; delete_thread drops one and says how many went."""
    await _chain(store, 3, thread="b")
    await _chain(store, 2, thread="a:1")
    assert await store.threads() == ["a:1", "b"]
    assert await store.delete_thread("b") == 3
    assert await store.delete_thread("b") == 0
    assert await store.threads() == ["a:1"]
    assert await store.get("b") is None
    assert len(await store.list("a:1")) == 2


async def test_prune_keep_last_keeps_the_newest_readable(stores: Stores) -> None:
    """keep_last drops older checkpoints; the kept ones read back even if their deltas
    were based on dropped ones."""
    store = stores.make(snapshot_every=50)
    made = await _chain(store, 20)
    assert await store.prune("t", keep_last=5) == 15
    assert await stores.reopen(store).list("t") == made[:-6:-1]
    more = await _chain(store, 3, parent=made[-1].checkpoint_id)
    assert (await stores.reopen(store).list("t"))[:3] == more[::-1]


async def test_prune_older_than_drops_old_checkpoints(stores: Stores) -> None:
    """older_than drops what was created more than that many seconds ago."""
    store = stores.make()
    old = [_cp(step, created_at=time.time() - 3600 + step) for step in range(3)]
    parent = None
    for checkpoint in old:
        checkpoint = checkpoint.model_copy(update={"parent_id": parent})
        await store.put(checkpoint)
        parent = checkpoint.checkpoint_id
    recent = await _chain(store, 2, parent=parent)
    assert await store.prune("t", older_than=60) == 3
    assert await stores.reopen(store).list("t") == recent[::-1]


async def test_prune_with_both_rules_drops_what_either_rule_drops(
        store: CheckpointStore) -> None:
    """Given keep_last and older_than, a checkpoint goes if either rule drops it."""
    await store.put(_cp(0, created_at=time.time() - 3600))
    await _chain(store, 4, parent=None)
    assert await store.prune("t", keep_last=3, older_than=60) == 2
    assert len(await store.list("t")) == 3


async def test_prune_without_thread_prunes_every_thread(store: CheckpointStore) -> None:
    """prune() with no thread applies the rule to each thread; a thread left empty goes."""
    await _chain(store, 4, thread="a")
    await _chain(store, 2, thread="b")
    assert await store.prune(keep_last=1) == 4
    assert [len(await store.list(name)) for name in ("a", "b")] == [1, 1]
    assert await store.prune(keep_last=0) == 2
    assert await store.threads() == []


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["state", "next", "pending_writes", "metadata"])
async def test_non_json_is_refused_with_nothing_written(store: CheckpointStore,
                                                        field: str) -> None:
    """A value JSON cannot hold is refused, naming the field, before anything is written."""
    values: dict[str, Any] = {"state": {"when": object()}, "next": [{1, 2}],
                              "pending_writes": [{"value": float("nan")}],
                              "metadata": {"x": b"bytes"}}
    first = (await _chain(store, 1))[0]
    bad = _cp(1, first.checkpoint_id, **{field: values[field]})
    with pytest.raises(InputValidationError) as caught:
        await store.put(bad)
    assert caught.value.field == field
    assert await store.list("t") == [first]
    with pytest.raises(InputValidationError):
        await store.put(bad.model_copy(update={"thread_id": "fresh"}))
    assert await store.threads() == ["t"]


async def test_checkpoint_that_is_its_own_parent_is_refused(store: CheckpointStore) -> None:
    """A checkpoint naming itself as parent is refused (it would make a cycle)."""
    with pytest.raises(InputValidationError) as caught:
        await store.put(_cp(0, "same", checkpoint_id="same"))
    assert caught.value.field == "parent_id"


@pytest.mark.parametrize(("call", "field"), [
    (lambda s: s.get(""), "thread_id"),
    (lambda s: s.get("t", 5), "checkpoint_id"),
    (lambda s: s.get("t", schema_version=""), "schema_version"),
    (lambda s: s.list("x" * 300), "thread_id"),
    (lambda s: s.list("t", limit=0), "limit"),
    (lambda s: s.list("t", before=""), "before"),
    (lambda s: s.put({"thread_id": "t"}), "checkpoint"),
    (lambda s: s.delete_thread(None), "thread_id"),
    (lambda s: s.prune("t"), "keep_last"),
    (lambda s: s.prune("t", keep_last=-1), "keep_last"),
    (lambda s: s.prune("t", older_than=math.nan), "older_than"),
    (lambda s: s.prune(3, keep_last=1), "thread_id"),
])
async def test_bad_arguments_are_refused_by_name(store: CheckpointStore, call: Any,
                                                 field: str) -> None:
    """Every method checks its arguments and names the bad one."""
    with pytest.raises(InputValidationError) as caught:
        await call(store)
    assert caught.value.field == field


# --- schema versions ---------------------------------------------------------------------


async def test_other_schema_version_without_migration_raises(store: CheckpointStore) -> None:
    """A state stored under v1 read as v2 with no migration is an error naming both."""
    await store.put(_cp(0, schema_version="v1"))
    with pytest.raises(SchemaVersionError) as caught:
        await store.get("t", schema_version="v2")
    assert caught.value.details == {"stored_version": "v1", "wanted_version": "v2"}
    with pytest.raises(SchemaVersionError):
        await store.list("t", schema_version="v2")
    same = await store.get("t", schema_version="v1")
    assert same is not None
    assert same.schema_version == "v1"


async def test_registered_migrations_are_applied_over_several_hops(stores: Stores) -> None:
    """A v1 state read as v3 goes through the registered v1->v2->v3 steps."""
    migrations = StateMigrations()
    migrations.register("v1", "v2", lambda state: {**state, "count": len(state["messages"])})
    migrations.register("v2", "v3", lambda state: {"history": state["messages"],
                                                   "count": state["count"]})
    store = stores.make(migrations=migrations)
    await store.put(_cp(2, schema_version="v1"))
    got = await store.get("t", schema_version="v3")
    assert got is not None
    assert got.schema_version == "v3"
    assert got.state == {"history": state_at(2)["messages"], "count": 3}
    listed = await store.list("t", schema_version="v3")
    assert listed == [got]
    raw = await store.get("t")
    assert raw is not None
    assert raw.schema_version == "v1"


async def test_unversioned_state_is_returned_as_it_is(store: CheckpointStore) -> None:
    """A checkpoint stored without a version is returned unchanged whatever is asked."""
    checkpoint = (await _chain(store, 1))[0]
    assert await store.get("t", schema_version="v9") == checkpoint


# --- size-conscious storage --------------------------------------------------------------


async def test_long_run_reads_back_exactly_at_every_step(stores: Stores) -> None:
    """100 steps of a growing state, stored as deltas and snapshots, all read back exactly."""
    store = stores.make(snapshot_every=8)
    made = await _chain(store, 100)
    reopened = stores.reopen(store)
    for checkpoint in made[::-1]:
        assert await reopened.get("t", checkpoint.checkpoint_id) == checkpoint
    assert await stores.reopen(store).list("t") == made[::-1]


async def test_states_that_shrink_and_change_type_read_back(store: CheckpointStore) -> None:
    """Deltas also carry removed keys, truncated lists and values that change type."""
    states: list[dict[str, Any]] = [
        {"messages": [message(0), message(1)], "flag": True, "gone": 1},
        {"messages": [message(0)], "flag": 1},
        {"messages": {"now": "a dict"}, "flag": 1.0},
        {"messages": [], "flag": None, "back": [1]},
    ]
    parent = None
    for step, state in enumerate(states):
        checkpoint = _cp(step, parent, state=state)
        await store.put(checkpoint)
        parent = checkpoint.checkpoint_id
        got = await store.get("t")
        assert got is not None
        assert json.dumps(got.state) == json.dumps(state)


_PUTS = st.lists(st.tuples(st.sampled_from(["next", "next", "fork", "replace", "prune"]),
                           st.integers(0, 1000), st.integers(1, 5)),
                 min_size=1, max_size=25)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_PUTS, snapshot_every=st.integers(1, 4))
async def test_any_sequence_of_puts_reads_back_exactly(
        stores: Stores, ops: list[tuple[str, int, int]], snapshot_every: int) -> None:
    """Whatever mix of linear puts, forks, replacements and prunes, every checkpoint
    reads back as it was put, in the order it was first put."""
    store = stores.make(snapshot_every=snapshot_every)
    model = Model()
    for kind, pick, size in ops:
        await model.apply(store, kind, pick, size)
    for reader in (store, stores.reopen(store)):
        assert await reader.list("t") == model.newest_first()
        for checkpoint in model.newest_first():
            assert await reader.get("t", checkpoint.checkpoint_id) == checkpoint


# --- the model, ids and migrations on their own ------------------------------------------


def test_checkpoint_ids_are_unique_and_increase() -> None:
    """new_checkpoint_id never repeats and sorts in creation order."""
    ids = [new_checkpoint_id() for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(("fields", "where"), [
    ({"thread_id": ""}, "thread_id"),
    ({"thread_id": "a\ud800"}, "thread_id"),
    ({"checkpoint_id": "x" * 257}, "checkpoint_id"),
    ({"step": "first"}, "step"),
    ({"state": []}, "state"),
    ({"created_at": math.inf}, "created_at"),
    ({"schema_version": ""}, "schema_version"),
    ({"unknown": 1}, "unknown"),
])
def test_checkpoint_model_refuses_bad_fields(fields: dict[str, Any], where: str) -> None:
    """A malformed checkpoint is refused when built, naming the field."""
    with pytest.raises(InputValidationError) as caught:
        Checkpoint(**{"thread_id": "t", "step": 0, "state": {}, **fields})
    assert caught.value.field == where


def test_migrations_take_the_shortest_path() -> None:
    """Between versions the migrations follow the fewest registered steps."""
    migrations = StateMigrations()
    migrations.register("1", "2", lambda s: {**s, "via": [*s["via"], 2]})
    migrations.register("2", "3", lambda s: {**s, "via": [*s["via"], 3]})
    migrations.register("3", "4", lambda s: {**s, "via": [*s["via"], 4]})
    migrations.register("1", "3", lambda s: {**s, "via": [*s["via"], 13]})
    assert migrations.path("1", "4") == ["1", "3", "4"]
    assert migrations.migrate({"via": []}, "1", "4") == {"via": [13, 4]}
    assert migrations.path("4", "1") is None


@pytest.mark.parametrize("result", ["raise", "list"])
def test_failing_migration_is_a_schema_version_error(result: str) -> None:
    """A migration that fails or returns a non-dict never hands back garbage."""
    def step(state: dict[str, Any]) -> Any:
        if result == "raise":
            raise KeyError("messages")
        return ["not", "a", "dict"]

    migrations = StateMigrations()
    migrations.register("a", "b", step)
    with pytest.raises(SchemaVersionError, match="from 'a' to 'b'"):
        migrations.migrate({}, "a", "b")


@pytest.mark.parametrize(("args", "field"), [
    (("", "b", dict), "from_version"),
    (("a", 2, dict), "to_version"),
    (("a", "a", dict), "to_version"),
    (("a", "b", "not callable"), "fn"),
])
def test_register_refuses_bad_steps(args: tuple[Any, ...], field: str) -> None:
    """register checks the versions and the function, naming the bad one."""
    with pytest.raises(InputValidationError) as caught:
        StateMigrations().register(*args)
    assert caught.value.field == field


# --- each backend's own knobs ------------------------------------------------------------


@pytest.mark.parametrize("factory", [
    lambda: MemoryCheckpointer(snapshot_every=0),
    lambda: SQLiteCheckpointer(":memory:", snapshot_every=True),
    lambda: MemoryCheckpointer(migrations={"v1": "v2"}),  # type: ignore[arg-type]
    lambda: MemoryCheckpointer(max_threads=0),
    lambda: SQLiteCheckpointer(3.5),  # type: ignore[arg-type]
    lambda: RedisCheckpointer("redis://127.0.0.1:1/0", prefix=None),  # type: ignore[arg-type]
])
def test_stores_refuse_bad_settings(factory: Callable[[], Any]) -> None:
    """Out-of-range settings are refused when the store is made."""
    with pytest.raises(InputValidationError):
        factory()


async def test_memory_store_drops_the_least_recently_used_thread() -> None:
    """MemoryCheckpointer keeps at most max_threads threads, dropping the least used."""
    store = MemoryCheckpointer(max_threads=2)
    for thread in ("a", "b"):
        await _chain(store, 1, thread=thread)
    await store.get("a")
    await _chain(store, 1, thread="c")
    assert await store.threads() == ["a", "c"]


@pytest.mark.parametrize("url", [None, "http://127.0.0.1/0", "redis://host:99999999/0"])
def test_redis_store_needs_a_usable_url(url: str | None,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a usable Redis URL (argument or $REDIS_URL) the store says so clearly."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    with pytest.raises(ConfigurationError) as caught:
        RedisCheckpointer(url)
    assert caught.value.field == "url"


async def test_redis_store_reports_an_unreachable_server_as_store_error() -> None:
    """When Redis cannot be reached, calls fail with a retryable StoreError, not redis-py's."""
    store = RedisCheckpointer("redis://:secret@127.0.0.1:1/0")
    try:
        with pytest.raises(StoreError) as caught:
            await store.get("t")
        assert caught.value.retryable
        assert "secret" not in str(caught.value)
    finally:
        await store.aclose()


async def test_redis_store_leaves_a_given_client_open(redis_url: str) -> None:
    """A client the caller passed in is used, and not closed by aclose."""
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url, decode_responses=True)
    store = RedisCheckpointer(client=client, prefix=unique_prefix())
    await _chain(store, 2)
    await store.aclose()
    assert await client.ping()
    await client.aclose()
