"""The conversation-memory contract every backend passes, then InMemoryMemory's own knobs.

A new backend joins the contract by adding one ``pytest.param`` to :data:`MEMORIES`: a
factory that takes the test's request (for ``tmp_path`` and ``redis_url``) and the
settings every backend shares (``max_messages``, ``ttl``, ``clock``), and returns a
fresh, empty store.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainweave.errors import InputValidationError
from chainweave.memory import ConversationMemory, InMemoryMemory, StoredMessage
from chainweave.memory.base import MAX_SESSION_ID_CHARS, message_tokens
from chainweave.memory.redis_memory import RedisMemory
from chainweave.memory.sqlite_memory import SQLiteMemory
from chainweave.types import Message, TextPart
from tests.redis_server import unique_prefix

MemoryFactory = Callable[..., ConversationMemory]


def _inmemory(request: pytest.FixtureRequest, **settings: Any) -> ConversationMemory:
    return InMemoryMemory(**settings)


def _sqlite(request: pytest.FixtureRequest, **settings: Any) -> ConversationMemory:
    tmp_path = request.getfixturevalue("tmp_path")
    return SQLiteMemory(tmp_path / f"memory-{uuid.uuid4().hex}.db", **settings)


def _redis(request: pytest.FixtureRequest, **settings: Any) -> ConversationMemory:
    return RedisMemory(request.getfixturevalue("redis_url"), prefix=unique_prefix(),
                       **settings)


MEMORIES = [
    pytest.param(_inmemory, id="inmemory"),
    pytest.param(_sqlite, id="sqlite"),
    pytest.param(_redis, id="redis"),
]


@pytest.fixture(params=MEMORIES)
async def make_memory(request: pytest.FixtureRequest
                      ) -> AsyncIterator[Callable[..., ConversationMemory]]:
    """Makes fresh, empty stores of the parametrised backend with the given settings
    (``max_messages``, ``ttl``, ``clock``); each is closed after the test."""
    factory: MemoryFactory = request.param
    made: list[ConversationMemory] = []

    def make(**settings: Any) -> ConversationMemory:
        made.append(factory(request, **settings))
        return made[-1]

    yield make
    for store in made:
        await store.aclose()


@pytest.fixture
def memory(make_memory: Callable[..., ConversationMemory]) -> ConversationMemory:
    """A fresh, empty store of the parametrised backend, closed after the test."""
    return make_memory()


def _texts(items: list[StoredMessage]) -> list[str]:
    return [item.message.text for item in items]


def _turn(question: str, answer: str) -> list[Message]:
    return [Message.user(question), Message.assistant(answer)]


# --- the contract ------------------------------------------------------------------------


def test_backend_is_a_conversation_memory(memory: ConversationMemory) -> None:
    """Every backend satisfies the ConversationMemory protocol a chain is typed against."""
    assert isinstance(memory, ConversationMemory)


async def test_history_returns_appended_messages_oldest_first(
        memory: ConversationMemory) -> None:
    """Appends accumulate and history returns them in order with increasing seq from 1."""
    first = await memory.append("s", _turn("q1", "a1"))
    second = await memory.append("s", [Message.user("q2")])
    history = await memory.history("s")
    assert _texts(history) == ["q1", "a1", "q2"]
    assert [item.message.role for item in history] == ["user", "assistant", "user"]
    assert [item.seq for item in history] == [1, 2, 3]
    assert history == [*first, *second]


async def test_message_dicts_are_validated_into_messages(memory: ConversationMemory) -> None:
    """Message dicts, seed shapes included, are stored as Message objects."""
    await memory.append("s", [{"role": "user", "content": "hi"}, {"type": "ai", "content": "yo"}])
    history = await memory.history("s")
    assert [item.message for item in history] == [Message.user("hi"), Message.assistant("yo")]


async def test_unknown_session_has_empty_history(memory: ConversationMemory) -> None:
    """Reading a session never written gives [] and does not create it."""
    assert await memory.history("nobody") == []
    assert await memory.sessions() == []


async def test_limit_keeps_the_newest_messages(memory: ConversationMemory) -> None:
    """history(limit=N) returns the newest N messages, still oldest first."""
    await memory.append("s", [Message.user(str(i)) for i in range(5)])
    assert _texts(await memory.history("s", limit=2)) == ["3", "4"]
    assert _texts(await memory.history("s", limit=10)) == ["0", "1", "2", "3", "4"]


async def test_max_tokens_keeps_the_newest_messages_that_fit(
        memory: ConversationMemory) -> None:
    """history(max_tokens=N) keeps the newest run of messages whose tokens sum to <= N."""
    messages = [Message.user("x" * 40), Message.assistant("short"), Message.user("tiny")]
    await memory.append("s", messages)
    last_two = message_tokens(messages[1]) + message_tokens(messages[2])
    assert _texts(await memory.history("s", max_tokens=last_two)) == ["short", "tiny"]
    assert _texts(await memory.history("s", max_tokens=last_two - 1)) == ["tiny"]
    assert await memory.history("s", max_tokens=message_tokens(messages[2]) - 1) == []
    assert _texts(await memory.history("s", limit=1, max_tokens=last_two)) == ["tiny"]


@pytest.mark.parametrize("name", ["limit", "max_tokens"])
@pytest.mark.parametrize("value", [0, -3, True, 1.5, "2"])
async def test_history_refuses_a_bad_window(memory: ConversationMemory, name: str,
                                            value: object) -> None:
    """limit and max_tokens must be positive ints; the error names the argument."""
    with pytest.raises(InputValidationError) as info:
        await memory.history("s", **{name: value})  # type: ignore[arg-type]
    assert info.value.field == name


async def test_clear_empties_a_session_but_keeps_it(memory: ConversationMemory) -> None:
    """clear drops the messages, keeps the session listed, and seq keeps counting."""
    await memory.append("s", _turn("q1", "a1"))
    await memory.clear("s")
    assert await memory.history("s") == []
    assert await memory.sessions() == ["s"]
    (stored,) = await memory.append("s", [Message.user("q2")])
    assert stored.seq > 2


async def test_delete_removes_the_session(memory: ConversationMemory) -> None:
    """delete drops the session entirely: no history, not listed."""
    await memory.append("s", _turn("q1", "a1"))
    await memory.delete("s")
    await memory.delete("never-existed")
    assert await memory.history("s") == []
    assert await memory.sessions() == []


async def test_sessions_are_listed_sorted(memory: ConversationMemory) -> None:
    """sessions() lists every written session, sorted; an empty append creates none."""
    for session in ("b", "c", "a"):
        await memory.append(session, [Message.user(session)])
    assert await memory.append("empty", []) == []
    assert await memory.sessions() == ["a", "b", "c"]


async def test_metadata_and_timestamps_are_kept(memory: ConversationMemory) -> None:
    """Each message keeps its metadata (as JSON) and when it was appended."""
    before = time.time()
    await memory.append("s", _turn("q", "a"), metadata={"run": "r1", "tags": ("x", 1)})
    await memory.append("s", [Message.user("plain")])
    after = time.time()
    history = await memory.history("s")
    assert [item.metadata for item in history] == [
        {"run": "r1", "tags": ["x", 1]}, {"run": "r1", "tags": ["x", 1]}, {}]
    assert all(before - 1 <= item.timestamp <= after + 1 for item in history)
    assert history[0].timestamp <= history[2].timestamp


@pytest.mark.parametrize("metadata", [{"when": object()}, {"x": float("nan")},
                                      {"s": {1, 2}}, ["not", "a", "mapping"]])
async def test_bad_metadata_is_refused_and_nothing_written(
        memory: ConversationMemory, metadata: Any) -> None:
    """Metadata that is not JSON raises InputValidationError and stores nothing."""
    await memory.append("kept", [Message.user("old")])
    with pytest.raises(InputValidationError) as info:
        await memory.append("kept", _turn("q", "a"), metadata=metadata)
    with pytest.raises(InputValidationError):
        await memory.append("new", _turn("q", "a"), metadata=metadata)
    assert info.value.field == "metadata"
    assert _texts(await memory.history("kept")) == ["old"]
    assert await memory.sessions() == ["kept"]


async def test_a_bad_message_refuses_the_whole_append(memory: ConversationMemory) -> None:
    """One invalid message in a batch raises, naming its index, and stores none of them."""
    with pytest.raises(InputValidationError) as info:
        await memory.append("s", [Message.user("fine"), {"role": "user"}, "text"])  # type: ignore[list-item]
    assert info.value.field is not None
    assert info.value.field.startswith("messages.1")
    with pytest.raises(InputValidationError):
        await memory.append("s", "not a list")  # type: ignore[arg-type]
    assert await memory.history("s") == []
    assert await memory.sessions() == []


@pytest.mark.parametrize("session_id", ["", "x" * (MAX_SESSION_ID_CHARS + 1), None, 7])
async def test_bad_session_ids_are_refused(memory: ConversationMemory,
                                           session_id: Any) -> None:
    """Every method refuses a session id that is not a non-empty string of <= 256 chars."""
    calls = [memory.append(session_id, [Message.user("q")]), memory.history(session_id),
             memory.clear(session_id), memory.delete(session_id)]
    for call in calls:
        with pytest.raises(InputValidationError) as info:
            await call
        assert info.value.field == "session_id"
    assert await memory.sessions() == []


async def test_longest_session_id_is_accepted(memory: ConversationMemory) -> None:
    """A session id of exactly 256 characters works."""
    session = "x" * MAX_SESSION_ID_CHARS
    await memory.append(session, [Message.user("q")])
    assert await memory.sessions() == [session]


async def test_sessions_are_isolated(memory: ConversationMemory) -> None:
    """Writing, clearing or deleting one session never touches another."""
    await memory.append("a", _turn("qa", "aa"))
    await memory.append("b", _turn("qb", "ab"))
    await memory.clear("a")
    assert _texts(await memory.history("b")) == ["qb", "ab"]
    await memory.delete("b")
    await memory.append("a", [Message.user("again")])
    assert _texts(await memory.history("a")) == ["again"]
    assert await memory.sessions() == ["a"]


async def test_callers_cannot_change_stored_history(memory: ConversationMemory) -> None:
    """Mutating what was passed in or handed back leaves the stored history unchanged."""
    message = Message(role="user", content=[TextPart(text="original")])
    metadata: dict[str, Any] = {"tags": ["a"]}
    returned = await memory.append("s", [message], metadata=metadata)
    metadata["tags"].append("b")
    assert isinstance(message.content, list)
    message.content.append(TextPart(text=" changed"))
    returned[0].metadata["tags"].append("c")
    read = await memory.history("s")
    read[0].metadata.clear()
    (stored,) = await memory.history("s")
    assert stored.message.text == "original"
    assert stored.metadata == {"tags": ["a"]}


async def test_aclose_can_be_called_twice(memory: ConversationMemory) -> None:
    """Closing a store is idempotent, so cleanup code need not track it."""
    await memory.aclose()
    await memory.aclose()


# --- the settings every backend shares -------------------------------------------------


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_max_messages_keeps_the_newest_per_session(
        make_memory: Callable[..., ConversationMemory]) -> None:
    """max_messages trims each session to its newest N messages, seq unchanged."""
    memory = make_memory(max_messages=3)
    await memory.append("s", [Message.user(str(i)) for i in range(4)])
    await memory.append("s", [Message.user("4")])
    await memory.append("t", [Message.user("t")])
    history = await memory.history("s")
    assert _texts(history) == ["2", "3", "4"]
    assert [item.seq for item in history] == [3, 4, 5]
    assert _texts(await memory.history("t")) == ["t"]


async def test_ttl_hides_and_drops_old_messages(
        make_memory: Callable[..., ConversationMemory]) -> None:
    """Messages older than ttl are not returned; an idle session expires whole."""
    clock = FakeClock()
    memory = make_memory(ttl=10, clock=clock)
    await memory.append("s", [Message.user("old")])
    clock.now += 5
    await memory.append("s", [Message.user("new")])
    clock.now += 5
    assert _texts(await memory.history("s")) == ["old", "new"]
    clock.now += 1
    history = await memory.history("s")
    assert _texts(history) == ["new"]
    assert history[0].timestamp == 1_005.0
    clock.now += 10
    assert await memory.sessions() == []
    (stored,) = await memory.append("s", [Message.user("fresh")])
    assert stored.seq == 1


async def test_ttl_applies_inside_limit_and_token_windows(
        make_memory: Callable[..., ConversationMemory]) -> None:
    """A window never brings back an expired message: it holds the newest live ones."""
    clock = FakeClock()
    memory = make_memory(ttl=10, clock=clock)
    for text in ("a", "b", "c"):
        await memory.append("s", [Message.user(text)])
        clock.now += 4
    # now 1012: "a" (1000) has expired, "b" (1004) and "c" (1008) are live
    assert _texts(await memory.history("s", limit=3)) == ["b", "c"]
    assert _texts(await memory.history("s", max_tokens=10_000)) == ["b", "c"]
    assert _texts(await memory.history("s", limit=1)) == ["c"]


async def test_clearing_an_expired_session_does_not_revive_it(
        make_memory: Callable[..., ConversationMemory]) -> None:
    """clear on a session idle past ttl leaves it gone; the next append starts at seq 1."""
    clock = FakeClock()
    memory = make_memory(ttl=10, clock=clock)
    await memory.append("s", _turn("q", "a"))
    clock.now += 11
    await memory.clear("s")
    assert await memory.sessions() == []
    (stored,) = await memory.append("s", [Message.user("again")])
    assert stored.seq == 1


@pytest.mark.parametrize(("field", "value"), [
    ("max_messages", 0), ("max_messages", 2.5), ("max_messages", True), ("ttl", 0),
    ("ttl", -1), ("ttl", float("inf")), ("ttl", float("nan")), ("ttl", True),
    ("ttl", "10"), ("clock", 3.0),
])
async def test_bad_settings_are_refused(make_memory: Callable[..., ConversationMemory],
                                        field: str, value: object) -> None:
    """A bad max_messages, ttl or clock raises InputValidationError naming it."""
    with pytest.raises(InputValidationError) as info:
        make_memory(**{field: value})
    assert info.value.field == field


# --- the contract as a property: any sequence of operations matches a dict of lists ----

_SESSIONS = st.sampled_from(["a", "b"])
_MESSAGES = st.lists(st.builds(lambda role, text: Message(role=role, content=text),
                               st.sampled_from(["user", "assistant", "system"]),
                               st.text(alphabet="ab xyz", max_size=12)), max_size=3)
_APPEND = st.tuples(st.just("append"), _SESSIONS, _MESSAGES,
                   st.dictionaries(st.sampled_from(["k", "n"]), st.integers(0, 9), max_size=2))
_HISTORY = st.tuples(st.just("history"), _SESSIONS, st.integers(1, 6), st.integers(1, 50))
# Appends and reads are drawn three times as often as the rest, so histories grow.
_OPS = st.one_of(
    _APPEND, _APPEND, _APPEND, _HISTORY, _HISTORY, _HISTORY,
    st.tuples(st.just("clear"), _SESSIONS),
    st.tuples(st.just("delete"), _SESSIONS),
    st.tuples(st.just("sessions")),
)

_Model = dict[str, list[tuple[Message, dict[str, Any]]]]


def _expected_window(items: list[tuple[Message, dict[str, Any]]], limit: int | None,
                     max_tokens: int | None) -> list[tuple[Message, dict[str, Any]]]:
    """The spec of limit and max_tokens, written out plainly."""
    chosen: list[tuple[Message, dict[str, Any]]] = []
    spent = 0
    for item in reversed(items):
        if limit is not None and len(chosen) == limit:
            break
        spent += message_tokens(item[0])
        if max_tokens is not None and spent > max_tokens:
            break
        chosen.insert(0, item)
    return chosen


async def _check_op(memory: ConversationMemory, model: _Model, last_seq: dict[str, int],
                    op: tuple[Any, ...]) -> None:
    kind, *args = op
    if kind == "append":
        session, messages, metadata = args
        stored = await memory.append(session, messages, metadata=metadata)
        assert [item.message for item in stored] == messages
        seqs = [item.seq for item in stored]
        assert seqs == sorted(set(seqs))
        assert all(seq > last_seq.get(session, 0) for seq in seqs)
        if messages:
            last_seq[session] = seqs[-1]
            model.setdefault(session, []).extend((m, dict(metadata)) for m in messages)
    elif kind == "history":
        session, limit, tokens = args
        for window in ((None, None), (limit, None), (None, tokens), (limit, tokens)):
            got = await memory.history(session, limit=window[0], max_tokens=window[1])
            expected = _expected_window(model.get(session, []), *window)
            assert [(item.message, item.metadata) for item in got] == expected
    elif kind == "clear":
        await memory.clear(args[0])
        if args[0] in model:
            model[args[0]] = []
    elif kind == "delete":
        await memory.delete(args[0])
        model.pop(args[0], None)
        last_seq.pop(args[0], None)
    else:
        assert await memory.sessions() == sorted(model)


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(_OPS, min_size=1, max_size=30))
async def test_any_operation_sequence_matches_a_dict_of_lists(
        memory: ConversationMemory, ops: list[tuple[Any, ...]]) -> None:
    """Whatever the order of appends, reads, clears and deletes, the store acts like the model."""
    for session in await memory.sessions():
        await memory.delete(session)
    model: _Model = {}
    last_seq: dict[str, int] = {}
    for op in ops:
        await _check_op(memory, model, last_seq, op)
    for session, items in model.items():
        assert [item.message for item in await memory.history(session)] == [m for m, _ in items]
    assert await memory.sessions() == sorted(model)


# --- InMemoryMemory ---------------------------------------------------------------------


async def test_least_recently_used_session_is_evicted() -> None:
    """Past max_sessions the session least recently read or written is dropped."""
    memory = InMemoryMemory(max_sessions=2)
    await memory.append("a", [Message.user("a")])
    await memory.append("b", [Message.user("b")])
    await memory.history("a")
    await memory.sessions()  # listing is not a use
    await memory.append("c", [Message.user("c")])
    assert await memory.sessions() == ["a", "c"]
    assert await memory.history("b") == []


@pytest.mark.parametrize(("field", "value"), [
    ("max_sessions", 0), ("max_sessions", None), ("max_messages", 0), ("max_messages", 2.5),
    ("ttl", 0), ("ttl", float("inf")), ("ttl", True), ("clock", 3.0),
])
def test_inmemory_refuses_bad_settings(field: str, value: object) -> None:
    """A bad constructor argument raises InputValidationError naming it."""
    with pytest.raises(InputValidationError) as info:
        InMemoryMemory(**{field: value})  # type: ignore[arg-type]
    assert info.value.field == field
