"""ConversationalChain: history per session, windows, summaries, and saving only successes."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections import Counter
from typing import Any

import pytest
from cachetools import LRUCache

from chainweave.chains import conversational
from chainweave.chains.context import RunConfig
from chainweave.chains.conversational import SUMMARY_PREFIX, ConversationalChain, window_start
from chainweave.chains.events import TokenEvent
from chainweave.errors import ChainInputError, InputValidationError, RateLimitError
from chainweave.memory import InMemoryMemory, StoredMessage
from chainweave.memory.base import message_tokens
from chainweave.testing import FunctionProvider, MockProvider, MockReply
from chainweave.types import Message, ToolCall, Usage

S = RunConfig(session_id="s")


def _turns(*pairs: tuple[str, str]) -> list[Message]:
    return [message for q, a in pairs for message in (Message.user(q), Message.assistant(a))]


def _stored(messages: list[Message]) -> list[StoredMessage]:
    return [StoredMessage(message=m, timestamp=0.0, seq=i + 1) for i, m in enumerate(messages)]


def _tokens(messages: list[Message]) -> int:
    return sum(message_tokens(m) for m in messages)


# --- history ----------------------------------------------------------------------------


async def test_history_carries_over_between_runs_of_a_session() -> None:
    """A second run of the same session sends the first exchange before the new message."""
    llm = MockProvider(["first answer", "second answer"])
    chain = ConversationalChain("chat", llm)
    assert await chain.run("hello", S) == {"response": "first answer"}
    await chain.run("and again?", S)
    assert llm.requests[1].messages == [*_turns(("hello", "first answer")),
                                        Message.user("and again?")]


async def test_sessions_do_not_see_each_other() -> None:
    """A run of another session sees none of the first session's history."""
    llm = MockProvider(["one", "two"])
    chain = ConversationalChain("chat", llm)
    await chain.run("secret", RunConfig(session_id="alice"))
    await chain.run("hi", RunConfig(session_id="bob"))
    assert llm.requests[1].messages == [Message.user("hi")]


async def test_exchange_is_stored_with_run_metadata() -> None:
    """After a run, memory holds the user message and the reply, tagged with chain and run."""
    memory = InMemoryMemory()
    chain = ConversationalChain("chat", MockProvider(["hi there"]), memory=memory)
    run = await chain.invoke("hello", S)
    history = await memory.history("s")
    assert [item.message for item in history] == _turns(("hello", "hi there"))
    assert [item.metadata for item in history] == [{"chain": "chat", "run_id": run.run_id}] * 2


async def test_session_can_come_from_the_inputs() -> None:
    """Without RunConfig.session_id, the session_key input names the session."""
    llm = MockProvider(["a1", "a2"])
    chain = ConversationalChain("chat", llm, session_key="conversation")
    await chain.run({"input": "q1", "conversation": "c1"})
    await chain.run("q2", RunConfig(session_id="c1"))
    assert llm.requests[1].messages == [*_turns(("q1", "a1")), Message.user("q2")]


async def test_run_config_session_wins_over_the_input() -> None:
    """When both are given, RunConfig.session_id decides the session."""
    memory = InMemoryMemory()
    chain = ConversationalChain("chat", MockProvider(["a"]), memory=memory)
    await chain.run({"input": "q", "session_id": "from-input"}, S)
    assert await memory.sessions() == ["s"]


async def test_missing_session_is_a_chain_input_error() -> None:
    """No session id anywhere raises ChainInputError naming both ways to give one."""
    llm = MockProvider(["unused"])
    chain = ConversationalChain("chat", llm)
    with pytest.raises(ChainInputError) as info:
        await chain.run("hello")
    assert info.value.missing == ["session_id"]
    assert "RunConfig(session_id=" in info.value.message
    assert "'session_id'" in info.value.message
    assert llm.requests == []


async def test_bad_session_input_is_refused() -> None:
    """A session input that is not a usable id raises InputValidationError naming it."""
    chain = ConversationalChain("chat", MockProvider(["unused"]))
    with pytest.raises(InputValidationError) as info:
        await chain.run({"input": "q", "session_id": ""})
    assert (info.value.field, info.value.node) == ("session_id", "chat")


async def test_failed_call_leaves_memory_unchanged() -> None:
    """When the model call fails nothing is stored, so a retry starts from the same history."""
    memory = InMemoryMemory()
    await memory.append("s", _turns(("q0", "a0")))
    chain = ConversationalChain("chat", MockProvider([RateLimitError("x")]), memory=memory)
    with pytest.raises(RateLimitError):
        await chain.run("lost", S)
    assert [item.message for item in await memory.history("s")] == _turns(("q0", "a0"))


# --- prompt and request ------------------------------------------------------------------


async def test_system_prompt_is_rendered_from_the_inputs() -> None:
    """The system prompt template's variables are inputs, rendered into the first message."""
    llm = MockProvider(["ok"])
    chain = ConversationalChain("chat", llm, system_prompt="You are {{ persona }}.")
    assert chain.input_keys == ("input", "persona")
    await chain.run({"input": "hi", "persona": "Ada"}, S)
    assert llm.requests[0].messages == [Message.system("You are Ada."), Message.user("hi")]
    with pytest.raises(ChainInputError) as info:
        await chain.run({"input": "hi"}, S)
    assert info.value.missing == ["persona"]


async def test_params_and_keys_shape_the_request_and_outputs() -> None:
    """Request parameters reach the model; input_key and output_key name the values."""
    llm = MockProvider(["reply"])
    chain = ConversationalChain("chat", llm, input_key="question", output_key="answer",
                                temperature=0.3, model="m1")
    run = await chain.invoke({"question": "q"}, S)
    assert run.outputs == {"answer": "reply"}
    request = llm.requests[0]
    assert (request.temperature, request.model) == (0.3, "m1")
    assert request.metadata == {"chain": "chat", "run_id": run.run_id}


async def test_non_text_input_is_refused() -> None:
    """The user message must be a string; the error names the input."""
    chain = ConversationalChain("chat", MockProvider(["unused"]))
    with pytest.raises(InputValidationError) as info:
        await chain.run({"input": 42}, S)
    assert info.value.field == "input"


def test_default_memory_keeps_a_bounded_history_per_session() -> None:
    """The default memory keeps at most 10,000 messages a session, so none grows forever."""
    chain = ConversationalChain("chat", MockProvider())
    assert isinstance(chain.memory, InMemoryMemory)
    assert chain.memory.max_messages == 10_000


async def test_default_memory_is_fresh_per_chain() -> None:
    """Two chains built without a memory never share history."""
    llm = MockProvider(["a"])
    first, second = ConversationalChain("one", llm), ConversationalChain("two", llm)
    assert isinstance(first.memory, InMemoryMemory)
    await first.run("q", S)
    await second.run("q2", S)
    assert llm.requests[1].messages == [Message.user("q2")]


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"max_turns": 0}, "max_turns"),
    ({"max_history_tokens": -1}, "max_history_tokens"),
    ({"max_turns": True}, "max_turns"),
    ({"summarize": True}, "summarize"),
    ({"summarize": "yes", "max_turns": 2}, "summarize"),
    ({"summary_llm": MockProvider()}, "summary_llm"),
    ({"summarize": True, "max_turns": 1, "summary_llm": object()}, "summary_llm"),
    ({"memory": object()}, "memory"),
    ({"input_key": ""}, "input_key"),
    ({"session_key": "input"}, "session_key"),
    ({"system_prompt": 3}, "system_prompt"),
    ({"temperature": 5}, "temperature"),
    ({"bogus": 1}, "bogus"),
    ({"messages": []}, "messages"),
])
def test_bad_arguments_are_refused(kwargs: dict[str, Any], field: str) -> None:
    """A bad constructor argument raises InputValidationError naming it and the chain."""
    with pytest.raises(InputValidationError) as info:
        ConversationalChain("chat", MockProvider(), **kwargs)
    assert (info.value.field, info.value.node) == (field, "chat")


class _ChatOnly:
    async def chat(self, request: Any) -> Any:
        raise AssertionError("never called")


@pytest.mark.parametrize("llm", [None, object(), _ChatOnly()])
def test_llm_must_be_a_chat_model(llm: Any) -> None:
    """An llm that is None or lacks chat or stream is refused at construction."""
    with pytest.raises(InputValidationError) as info:
        ConversationalChain("chat", llm)
    assert (info.value.field, info.value.node) == ("llm", "chat")


# --- windows -----------------------------------------------------------------------------


async def test_max_turns_sends_only_the_latest_turns() -> None:
    """max_turns=2 sends the two latest turns of history, then the new message."""
    memory = InMemoryMemory()
    await memory.append("s", _turns(("q1", "a1"), ("q2", "a2"), ("q3", "a3")))
    llm = MockProvider(["a4"])
    await ConversationalChain("chat", llm, memory=memory, max_turns=2).run("q4", S)
    assert llm.requests[0].messages == [*_turns(("q2", "a2"), ("q3", "a3")), Message.user("q4")]
    assert len(await memory.history("s")) == 8


async def test_max_history_tokens_sends_the_whole_turns_that_fit() -> None:
    """The token window keeps the newest whole turns whose tokens fit, exactly at the edge."""
    old, middle, new = (_turns(("long question " * 8, "long answer " * 8)),
                        _turns(("q2", "a2")), _turns(("q3", "a3")))
    memory = InMemoryMemory()
    await memory.append("s", [*old, *middle, *new])
    budget = _tokens(middle) + _tokens(new)
    llm = MockProvider(["x"])
    await ConversationalChain("a", llm, memory=memory, max_history_tokens=budget).run("q", S)
    await memory.delete("s")
    await memory.append("s", [*old, *middle, *new])
    await ConversationalChain("b", llm, memory=memory,
                              max_history_tokens=budget - 1).run("q", S)
    assert llm.requests[0].messages == [*middle, *new, Message.user("q")]
    assert llm.requests[1].messages == [*new, Message.user("q")]


async def test_turn_and_token_windows_both_apply() -> None:
    """With both limits, the tighter one decides what is sent."""
    memory = InMemoryMemory()
    turns = _turns(("q1", "a1"), ("q2", "a2"), ("q3", "a3"))
    await memory.append("s", turns)
    llm = MockProvider(["x"])
    roomy = _tokens(turns)
    await ConversationalChain("a", llm, memory=memory, max_turns=1,
                              max_history_tokens=roomy).run("q", S)
    await memory.delete("s")
    await memory.append("s", turns)
    await ConversationalChain("b", llm, memory=memory, max_turns=3,
                              max_history_tokens=_tokens(turns[4:])).run("q", S)
    assert llm.requests[0].messages == [*turns[4:], Message.user("q")]
    assert llm.requests[1].messages == [*turns[4:], Message.user("q")]


def test_a_turn_runs_from_one_user_message_to_the_next() -> None:
    """Tool calls, tool results and follow-ups belong to the turn of their user message."""
    call = ToolCall(id="c1", name="lookup", arguments="{}")
    history = _stored([Message.assistant("orphan"), Message.user("q1"),
                       Message.assistant(None, [call]), Message.tool("c1", "42"),
                       Message.assistant("it is 42"), Message.user("q2"),
                       Message.assistant("a2")])
    assert window_start(history, max_turns=1) == 5
    assert window_start(history, max_turns=2) == 1
    assert window_start(history, max_turns=3) == 0
    whole = _tokens([item.message for item in history[1:]])
    assert window_start(history, max_tokens=whole) == 1
    assert window_start(history, max_tokens=whole - 1) == 5
    assert window_start(history, max_tokens=1) == len(history)
    assert window_start([], max_turns=1, max_tokens=1) == 0


# --- summaries ---------------------------------------------------------------------------


def _summary_chain(memory: InMemoryMemory, summaries: list[str],
                   **kwargs: Any) -> tuple[ConversationalChain, MockProvider, MockProvider]:
    llm = MockProvider([f"a{i}" for i in range(1, 9)])
    summarizer = MockProvider(summaries)
    chain = ConversationalChain("chat", llm, memory=memory, summarize=True,
                                summary_llm=summarizer, **kwargs)
    return chain, llm, summarizer


async def test_turns_outside_the_window_are_summarised() -> None:
    """Turns that fall out of the window reach the model as a summary system message."""
    memory = InMemoryMemory()
    await memory.append("s", _turns(("my name is Ada", "hello Ada"), ("q2", "r2")))
    chain, llm, summarizer = _summary_chain(memory, ["The user is Ada."], max_turns=1,
                                            system_prompt="Be kind.")
    await chain.run("what is my name?", S)
    assert "my name is Ada" in (summarizer.requests[0].messages[-1].text)
    assert llm.requests[0].messages == [
        Message.system("Be kind."), Message.system(SUMMARY_PREFIX + "The user is Ada."),
        *_turns(("q2", "r2")), Message.user("what is my name?")]


async def test_summary_is_reused_until_more_turns_fall_out() -> None:
    """One summary call serves runs while no turn leaves the window; then it is extended."""
    memory = InMemoryMemory()
    big = _turns(("x" * 200, "y" * 200))
    await memory.append("s", big)
    small = _tokens(_turns(("q1", "a1")))
    chain, llm, summarizer = _summary_chain(memory, ["S1", "S2"],
                                            max_history_tokens=2 * small + small // 2)
    calls = []
    for index in range(1, 5):
        await chain.run(f"q{index}", S)
        calls.append(summarizer.call_count)
    assert calls == [1, 1, 1, 2]
    update = summarizer.requests[1].messages[-1].text
    assert "S1" in update
    assert "q1" in update
    assert "a1" in update
    assert "x" * 200 not in update
    assert llm.requests[2].messages[0] == Message.system(SUMMARY_PREFIX + "S1")
    assert llm.requests[3].messages[0] == Message.system(SUMMARY_PREFIX + "S2")


async def test_summary_of_a_cleared_history_is_not_reused() -> None:
    """After the session is cleared, the old summary is dropped and a fresh one written."""
    memory = InMemoryMemory()
    await memory.append("s", _turns(("old secret", "noted"), ("q", "r")))
    chain, llm, summarizer = _summary_chain(memory, ["S-old", "S-new"], max_turns=1)
    await chain.run("q1", S)
    await memory.clear("s")
    await memory.append("s", _turns(("fresh", "ok"), ("q2", "r2")))
    await chain.run("q3", S)
    fresh = summarizer.requests[1].messages[-1].text
    assert "S-old" not in fresh
    assert "old secret" not in fresh
    assert llm.requests[1].messages[0] == Message.system(SUMMARY_PREFIX + "S-new")


async def test_usage_adds_the_summary_call_to_the_reply() -> None:
    """invoke(...).usage sums the summary call and the reply call."""
    memory = InMemoryMemory()
    await memory.append("s", _turns(("q1", "a1"), ("q2", "a2")))
    llm = MockProvider([MockReply("sum", usage=Usage(prompt_tokens=20, completion_tokens=2)),
                        MockReply("answer", usage=Usage(prompt_tokens=30, completion_tokens=5))])
    chain = ConversationalChain("chat", llm, memory=memory, max_turns=1, summarize=True)
    run = await chain.invoke("q3", S)
    assert run.usage == Usage(prompt_tokens=50, completion_tokens=7)
    assert run.llm_calls == 2
    assert llm.requests[0].metadata["purpose"] == "summary"


async def test_streamed_run_streams_only_the_reply() -> None:
    """When the run is streamed, the summary's text is not sent as tokens."""
    memory = InMemoryMemory()
    await memory.append("s", _turns(("q1", "a1"), ("q2", "a2")))
    chain, _, _ = _summary_chain(memory, ["hidden summary"], max_turns=1)
    tokens = [event.text async for event in chain.stream("q3", S)
              if isinstance(event, TokenEvent)]
    assert "".join(tokens) == "a1"


# --- per-run parameters ------------------------------------------------------------------


async def test_parameter_inputs_override_the_request_for_one_run() -> None:
    """Inputs named like request parameters (temperature, max_tokens, ...) set that run."""
    llm = MockProvider(["one", "two"])
    chain = ConversationalChain("chat", llm, temperature=0.9, max_tokens=50)
    await chain.run({"input": "q", "temperature": 0.1, "max_tokens": 100, "stop": ["x"]}, S)
    await chain.run("q2", S)
    first, second = llm.requests
    assert (first.temperature, first.max_tokens, first.stop) == (0.1, 100, ["x"])
    assert (second.temperature, second.max_tokens, second.stop) == (0.9, 50, None)


async def test_a_prompt_variable_is_not_a_parameter_override() -> None:
    """A system_prompt variable named like a parameter fills the prompt, not the request."""
    llm = MockProvider(["ok"])
    chain = ConversationalChain("chat", llm, system_prompt="Be {{ temperature }}.",
                                temperature=0.2)
    await chain.run({"input": "q", "temperature": "warm"}, S)
    assert llm.requests[0].temperature == 0.2
    assert llm.requests[0].messages[0] == Message.system("Be warm.")


async def test_a_bad_parameter_input_is_refused_before_any_call() -> None:
    """An out-of-range parameter input names the field; no call is made and nothing saved."""
    memory = InMemoryMemory()
    await memory.append("s", _turns(("q1", "a1"), ("q2", "a2")))
    llm = MockProvider(["unused"])
    chain = ConversationalChain("chat", llm, memory=memory, max_turns=1, summarize=True)
    with pytest.raises(InputValidationError) as info:
        await chain.run({"input": "q3", "temperature": 5}, S)
    assert (info.value.field, info.value.node) == ("temperature", "chat")
    assert llm.requests == []
    assert len(await memory.history("s")) == 4


async def test_a_model_input_also_picks_the_summary_model() -> None:
    """A per-run model input reaches both the summary call and the reply."""
    memory = InMemoryMemory()
    await memory.append("s", _turns(("q1", "a1"), ("q2", "a2")))
    llm = MockProvider(["sum", "answer"])
    chain = ConversationalChain("chat", llm, memory=memory, max_turns=1, summarize=True,
                                model="base")
    await chain.run({"input": "q3", "model": "big"}, S)
    assert [request.model for request in llm.requests] == ["big", "big"]


# --- bounded reads -----------------------------------------------------------------------


class _RecordingMemory(InMemoryMemory):
    """An InMemoryMemory that records the (limit, max_tokens) of every history read."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[tuple[int | None, int | None]] = []

    async def history(self, session_id: str, *, limit: int | None = None,
                      max_tokens: int | None = None) -> list[StoredMessage]:
        self.reads.append((limit, max_tokens))
        return await super().history(session_id, limit=limit, max_tokens=max_tokens)


async def _long_memory(turns: int) -> _RecordingMemory:
    memory = _RecordingMemory()
    await memory.append("s", _turns(*((f"q{i}", f"a{i}") for i in range(turns))))
    memory.reads.clear()
    return memory


async def test_turn_window_reads_a_bounded_tail() -> None:
    """With max_turns, a run over 5,000 messages reads only the newest 4*max_turns+8."""
    memory = await _long_memory(2_500)
    llm = MockProvider(["x"])
    await ConversationalChain("chat", llm, memory=memory, max_turns=2).run("q", S)
    assert memory.reads == [(16, None)]
    assert llm.requests[0].messages == [*_turns(("q2498", "a2498"), ("q2499", "a2499")),
                                        Message.user("q")]


async def test_turn_window_reads_further_back_for_long_turns() -> None:
    """A turn longer than the first read is still sent whole: the read doubles until it fits."""
    memory = _RecordingMemory()
    long_turn = [Message.user("q1"), *(Message.assistant(f"step {i}") for i in range(20))]
    await memory.append("s", [*_turns(("q0", "a0")), *long_turn])
    memory.reads.clear()
    llm = MockProvider(["x"])
    await ConversationalChain("chat", llm, memory=memory, max_turns=1).run("q", S)
    assert memory.reads == [(12, None), (24, None)]
    assert llm.requests[0].messages == [*long_turn, Message.user("q")]


async def test_token_window_reads_only_what_fits() -> None:
    """With max_history_tokens, the memory is asked for that budget, and whole turns are sent."""
    memory = await _long_memory(2_500)
    # The budget also fits a2497, the end of a turn whose start does not fit.
    budget = (_tokens(_turns(("q2498", "a2498"), ("q2499", "a2499")))
              + message_tokens(Message.assistant("a2497")))
    llm = MockProvider(["x"])
    chain = ConversationalChain("chat", llm, memory=memory, max_history_tokens=budget)
    await chain.run("q", S)
    assert memory.reads == [(None, budget), (6, None)]  # then: is there more before it?
    assert llm.requests[0].messages == [*_turns(("q2498", "a2498"), ("q2499", "a2499")),
                                        Message.user("q")]


async def test_token_window_keeps_an_opening_message_only_with_the_whole_session() -> None:
    """Messages before the first user message are sent only when all the history fits."""
    greeting = Message.assistant("Hello! How can I help?")
    history = [greeting, *_turns(("q1", "a1"), ("q2", "a2"))]
    llm = MockProvider(["x", "y"])
    for name, budget in (("a", _tokens(history)), ("b", _tokens(history) - 1)):
        memory = InMemoryMemory()
        await memory.append("s", [Message.user("before the clear")])
        await memory.clear("s")  # seq numbers now start past 1
        await memory.append("s", history)
        await ConversationalChain(name, llm, memory=memory,
                                  max_history_tokens=budget).run("q", S)
    assert llm.requests[0].messages == [*history, Message.user("q")]
    assert llm.requests[1].messages == [*history[1:], Message.user("q")]


async def test_summarised_runs_read_only_the_window_and_what_left_it() -> None:
    """Once a session's summary is cached, a run reads a bounded tail, not the whole history."""
    memory = await _long_memory(2_500)
    llm = MockProvider(["S1", "x", "S2", "y"])
    chain = ConversationalChain("chat", llm, memory=memory, max_turns=2, summarize=True)
    await chain.run("first", S)
    memory.reads.clear()
    await chain.run("second", S)
    assert memory.reads == [(16, None)]
    update = llm.requests[2].messages[-1].text
    assert "S1" in update
    assert "q2498" in update
    assert "q2497" not in update
    assert llm.requests[3].messages[0] == Message.system(SUMMARY_PREFIX + "S2")


# --- threads -----------------------------------------------------------------------------


class _OneThreadAtATime(LRUCache[str, Any]):
    """An LRUCache that fails when two threads use it at once (it lingers in each use)."""

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self._inside = threading.RLock()

    def _enter(self) -> None:
        if not self._inside.acquire(blocking=False):
            raise AssertionError("the summary cache was used by two threads at once")
        time.sleep(1e-4)  # long enough for an unguarded thread to collide

    def __getitem__(self, key: str) -> Any:
        self._enter()
        try:
            return super().__getitem__(key)
        finally:
            self._inside.release()

    def __setitem__(self, key: str, value: Any) -> None:
        self._enter()
        try:
            super().__setitem__(key, value)
        finally:
            self._inside.release()


def test_one_chain_can_be_shared_by_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Threads sharing one chain through run_sync get no errors, and every exchange is kept."""
    monkeypatch.setattr(conversational, "LRUCache", _OneThreadAtATime)
    monkeypatch.setattr(conversational, "_SUMMARY_SESSIONS", 2)  # its summary cache evicts
    chain = ConversationalChain("chat", FunctionProvider(lambda request: "ok"), max_turns=1,
                                summarize=True)
    threads, runs, sessions = 8, 40, 6
    errors: list[BaseException] = []
    ready = threading.Barrier(threads)

    def work(index: int) -> None:
        ready.wait()
        try:
            for step in range(runs):
                chain.run_sync(f"{index}-{step}",
                               RunConfig(session_id=f"s{(index + step) % sessions}"))
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # interleave threads after a few bytecodes
    try:
        workers = [threading.Thread(target=work, args=(index,)) for index in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        sys.setswitchinterval(before)
    assert errors == []
    expected = Counter(f"s{(index + step) % sessions}"
                       for index in range(threads) for step in range(runs))
    for session, count in expected.items():
        history = asyncio.run(chain.memory.history(session))
        assert [item.seq for item in history] == list(range(1, 2 * count + 1))
