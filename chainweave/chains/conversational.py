"""A chat that remembers: :class:`ConversationalChain`.

Each run loads the session's history from a
:class:`~chainweave.memory.ConversationMemory`, keeps a window of the latest turns,
optionally summarises the turns before the window, asks the model, and stores the new
user and assistant messages. A turn is a user message and everything after it up to
the next user message. A run reads only a bounded tail of the history (see the class).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cachetools import LRUCache

from chainweave._internal.templates import Template
from chainweave.chains.base import Chain
from chainweave.chains.context import RunContext
from chainweave.chains.simple import PARAMETER_KEYS
from chainweave.errors import ChainInputError, InputValidationError
from chainweave.memory.base import (
    ConversationMemory,
    StoredMessage,
    check_session_id,
    message_tokens,
)
from chainweave.memory.inmemory import InMemoryMemory
from chainweave.types import ChatModel, ChatRequest, Message

__all__ = ["SUMMARY_PREFIX", "ConversationalChain", "window_start"]

#: How the summary of the turns before the window is introduced to the model.
SUMMARY_PREFIX = "Summary of the earlier conversation: "

_SUMMARY_INSTRUCTIONS = (
    "You condense conversations. Write a short summary of the conversation you are "
    "given, keeping names, facts, decisions and open questions. Reply with the summary "
    "only.")
#: How many sessions' summaries one chain keeps.
_SUMMARY_SESSIONS = 1_000
#: How many messages per session the chain's own default memory keeps.
_DEFAULT_MAX_MESSAGES = 10_000
#: The first read when only a token window bounds what is needed (doubled as needed).
_FIRST_READ = 32


@dataclass(frozen=True, slots=True)
class _Summary:
    """A summary of a session's messages up to the one with ``seq`` (and ``timestamp``)."""

    text: str
    seq: int
    timestamp: float


class ConversationalChain(Chain):
    """Answer the user with the conversation so far, and remember the exchange.

    Each run sends ``[system?, summary?, *window, user]`` to the model: the rendered
    ``system_prompt``, a summary of the turns before the window (when ``summarize``),
    the window of recent history and the new user message. Only when the model
    answered are the user message and the reply appended to ``memory`` (in one
    ``append``, with ``{"chain": name, "run_id": ...}`` as metadata); a failed call
    stores nothing.

    The session comes from ``RunConfig(session_id=...)`` or, when the run has none, from
    the input named ``session_key``. Concurrent runs of one session may interleave.
    Inputs named like a request parameter (see
    :data:`~chainweave.chains.simple.PARAMETER_KEYS`: ``temperature``, ``max_tokens``,
    ``model``, ...) override ``params`` for that run, unless ``system_prompt`` uses the
    name as a variable (or it is ``input_key`` or ``session_key``).

    What a run reads from ``memory``: with ``max_turns``, the newest
    ``4 * max_turns + 8`` messages, doubled while that holds fewer than the window's
    turns; with ``max_history_tokens``, the newest messages within that budget as the
    memory counts them (then cut to whole turns). With ``summarize``, the window and the
    messages that left it since the cached summary; the first summarised run of a
    session in this process (or one after the history changed under the summary)
    reads the whole history. With no window at all, everything is sent and read.

    Summaries are cached per session inside the chain object (in this process only,
    for up to 1,000 sessions): while no further turn leaves the window the cached
    summary is reused; when more turns leave it, one call folds them into the previous
    summary. A history that changed under it (cleared, trimmed past the summary's last
    message) is summarised afresh. A lock guards the cache (as one guards the default
    memory), so one chain may serve many threads, each calling ``run_sync``.

    Args:
        name: The chain's name.
        llm: The :class:`~chainweave.types.ChatModel` that answers.
        memory: Where conversations are kept; when left out, a new
            :class:`~chainweave.memory.InMemoryMemory` keeping the newest 10,000
            messages of each of up to 10,000 sessions.
        system_prompt: A jinja2 template rendered with the inputs; its variables are
            inputs of the chain.
        input_key: The input holding the user's message (a string).
        output_key: Where the reply text goes in the outputs.
        max_turns: Send at most this many of the latest turns.
        max_history_tokens: Send only the latest whole turns whose estimated tokens
            (:func:`~chainweave.memory.base.message_tokens`, as the memory counts them,
            and also for the request's ``model`` when one is set) fit in this budget.
        summarize: Summarise the turns outside the window (needs ``max_turns`` or
            ``max_history_tokens``).
        summary_llm: The model that writes summaries; ``llm`` when left out (then with
            the run's ``model`` parameter, and no other parameter).
        session_key: The input holding the session id when the run config has none.
        description: What the chain does.
        **params: Request parameters for the reply (``model``, ``temperature``, ...).

    Raises:
        InputValidationError: An argument is malformed, or a parameter is not a
            request field or is out of range. At run time: a parameter input is out of
            range (before any call, with nothing stored).
        TemplateError: ``system_prompt`` does not compile.
    """

    def __init__(self, name: str, llm: ChatModel, *, memory: ConversationMemory | None = None,
                 system_prompt: str | None = None, input_key: str = "input",
                 output_key: str = "response", max_turns: int | None = None,
                 max_history_tokens: int | None = None, summarize: bool = False,
                 summary_llm: ChatModel | None = None, session_key: str = "session_id",
                 description: str = "", **params: Any) -> None:
        for field, key in (("input_key", input_key), ("output_key", output_key),
                           ("session_key", session_key)):
            _require(isinstance(key, str) and bool(key), name, field,
                     f"must be a non-empty string, got {key!r}")
        _require(input_key != session_key, name, "session_key",
                 f"must differ from input_key ({input_key!r})")
        _require(system_prompt is None or isinstance(system_prompt, str), name,
                 "system_prompt", f"must be a template string, got {system_prompt!r}")
        self.system_prompt = Template(system_prompt, where=name) if system_prompt else None
        variables = self.system_prompt.variables if self.system_prompt else frozenset()
        super().__init__(name, description=description,
                         input_keys=sorted(variables | {input_key}), output_keys=(output_key,))
        self.llm = _model(name, "llm", llm)
        self.memory = _memory(name, memory)
        self.max_turns = _positive(name, "max_turns", max_turns)
        self.max_history_tokens = _positive(name, "max_history_tokens", max_history_tokens)
        self._check_summary(summarize, summary_llm)
        self.summarize = summarize
        self.summary_llm = summary_llm
        self.input_key = input_key
        self.output_key = output_key
        self.session_key = session_key
        self.params = _check_params(name, params)
        self._overridable = PARAMETER_KEYS - variables - {input_key, session_key}
        self._first_read = _FIRST_READ if max_turns is None else 4 * max_turns + 8
        self._summaries: LRUCache[str, _Summary] = LRUCache(maxsize=_SUMMARY_SESSIONS)
        self._summaries_lock = threading.Lock()  # cachetools caches are not thread-safe

    def _check_summary(self, summarize: object, summary_llm: ChatModel | None) -> None:
        _require(isinstance(summarize, bool), self.name, "summarize",
                 f"must be True or False, got {summarize!r}")
        _require(not summarize or self.max_turns is not None
                 or self.max_history_tokens is not None, self.name, "summarize",
                 "needs max_turns or max_history_tokens: without a window no turn is "
                 "ever left to summarise")
        if summary_llm is not None:
            _require(bool(summarize), self.name, "summary_llm",
                     "is only used with summarize=True")
            _model(self.name, "summary_llm", summary_llm)

    async def _call(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        session_id = self._session_id(inputs, ctx)
        text = inputs[self.input_key]
        if not isinstance(text, str):
            raise InputValidationError(
                f"{self.name}: input {self.input_key!r} must be a string, got "
                f"{type(text).__name__}", field=self.input_key, node=self.name)
        user = Message.user(text)
        request = self._request(inputs, user, ctx)  # checks parameter inputs before any call
        messages = [Message.system(self.system_prompt.render(inputs))] \
            if self.system_prompt else []
        history, start = await self._recent(session_id, request.model)
        if start and self.summarize:
            summary = await self._summary(session_id, history[:start], request.model, ctx)
            if summary:
                messages.append(Message.system(SUMMARY_PREFIX + summary))
        messages += [item.message for item in history[start:]]
        messages.append(user)
        response = await ctx.chat(self.llm, request.model_copy(update={"messages": messages}))
        await self.memory.append(session_id, [user, response.message],
                                 metadata={"chain": self.name, "run_id": ctx.run_id})
        return {self.output_key: response.content}

    def _session_id(self, inputs: dict[str, Any], ctx: RunContext) -> str:
        if ctx.session_id is not None:
            return ctx.session_id
        if self.session_key not in inputs:
            raise ChainInputError(
                f"{self.name}: no session id: give one with RunConfig(session_id=...) or "
                f"as the input {self.session_key!r}", missing=[self.session_key],
                field=self.session_key, node=self.name)
        try:
            return check_session_id(self.name, inputs[self.session_key])
        except InputValidationError as exc:
            exc.field, exc.node = self.session_key, self.name
            raise

    def _request(self, inputs: Mapping[str, Any], user: Message,
                 ctx: RunContext) -> ChatRequest:
        """The reply's request (its messages still to fill in), with this run's parameters.

        Raises:
            InputValidationError: A parameter input is out of range; names it.
        """
        metadata = {**self.params.get("metadata", {}), "chain": self.name, "run_id": ctx.run_id}
        fields = {**self.params, "messages": [user], "metadata": metadata}
        fields.update((key, inputs[key]) for key in self._overridable if key in inputs)
        try:
            return ChatRequest(**fields)
        except InputValidationError as exc:
            raise InputValidationError(f"{self.name}: bad request parameter: {exc.message}",
                                       errors=exc.errors, field=exc.field,
                                       node=self.name) from None

    async def _recent(self, session_id: str,
                      model: str | None) -> tuple[list[StoredMessage], int]:
        """A tail of the session's history holding the window, and where the window starts."""
        if self.summarize:
            return await self._summary_tail(session_id, model)
        limit = None if self.max_turns is None else self._first_read
        while True:
            tail = await self.memory.history(session_id, limit=limit,
                                             max_tokens=self.max_history_tokens)
            start = self._start(tail, model)
            if start or not tail:
                return tail, start
            if limit is not None and len(tail) == limit:
                limit *= 2  # the window may reach further back than this read
                continue
            if await self._cut_in_a_turn(session_id, tail):
                return tail, _first_turn(tail)
            return tail, 0

    async def _cut_in_a_turn(self, session_id: str, tail: list[StoredMessage]) -> bool:
        """Whether the token budget cut ``tail`` after the start of its first turn."""
        if (self.max_history_tokens is None or tail[0].message.role == "user"
                or tail[0].seq == 1):
            return False
        # It starts without a user message: the middle of a turn, or the session's start.
        before = await self.memory.history(session_id, limit=len(tail) + 1)
        return bool(before) and before[0].seq < tail[0].seq

    async def _summary_tail(self, session_id: str,
                            model: str | None) -> tuple[list[StoredMessage], int]:
        """The window and what left it since the cached summary (all of it without one)."""
        cached = self._cached(session_id)
        limit = None if cached is None else self._first_read
        while True:
            tail = await self.memory.history(session_id, limit=limit)
            start = self._start(tail, model)
            if cached is None or limit is None or len(tail) < limit:
                return tail, start
            if start and _covered(cached, tail[:start]):
                return tail, start
            if start and tail[0].seq <= cached.seq:
                limit = None  # the summarised messages changed: summarise them afresh
            else:  # seq numbers only increase: this many reach back to the summary's end
                limit = max(2 * limit, tail[-1].seq - cached.seq + 1)

    def _start(self, tail: Sequence[StoredMessage], model: str | None) -> int:
        start = window_start(tail, max_turns=self.max_turns,
                             max_tokens=self.max_history_tokens, model=model)
        if model is not None and self.max_history_tokens is not None:
            # The memory counts tokens without a model: a turn must fit by both counts.
            start = max(start, window_start(tail, max_tokens=self.max_history_tokens))
        return start

    def _cached(self, session_id: str) -> _Summary | None:
        with self._summaries_lock:
            return self._summaries.get(session_id)

    async def _summary(self, session_id: str, dropped: Sequence[StoredMessage],
                       model: str | None, ctx: RunContext) -> str:
        """The summary of ``dropped``, from the cache or extended by one LLM call."""
        cached = self._cached(session_id)
        covered = _covered(cached, dropped)
        if cached is not None and covered == len(dropped):
            return cached.text
        previous = cached.text if cached is not None and covered else None
        text = await self._summarise(previous, dropped[covered:], model, ctx)
        last = dropped[-1]
        with self._summaries_lock:
            self._summaries[session_id] = _Summary(text, last.seq, last.timestamp)
        return text

    async def _summarise(self, previous: str | None, new: Sequence[StoredMessage],
                         model: str | None, ctx: RunContext) -> str:
        transcript = "\n".join(_line(item.message) for item in new)
        prompt = (f"Summary so far: {previous}\n\nWhat was said next:\n{transcript}"
                  if previous else f"The conversation:\n{transcript}")
        fields: dict[str, Any] = {}
        if self.summary_llm is None and model is not None:
            fields["model"] = model
        request = ChatRequest(
            messages=[Message.system(_SUMMARY_INSTRUCTIONS), Message.user(prompt)],
            metadata={"chain": self.name, "run_id": ctx.run_id, "purpose": "summary"},
            **fields)
        # Never streamed: the summary is not part of the answer the caller sees.
        response = await ctx.chat(self.summary_llm or self.llm, request, stream=False)
        return response.content.strip()


def window_start(history: Sequence[StoredMessage], *, max_turns: int | None = None,
                 max_tokens: int | None = None, model: str | None = None) -> int:
    """Where the window of whole recent turns begins in ``history``.

    A turn starts at a user message (messages before the first one count as a turn).
    ``max_turns`` keeps the latest that many turns; ``max_tokens`` keeps the latest
    whole turns whose estimated tokens add up to at most that. Both may apply.

    Returns:
        The index of the first message in the window (``len(history)`` when no turn
        fits).
    """
    starts = [index for index, item in enumerate(history)
              if index == 0 or item.message.role == "user"]
    start = 0
    if max_turns is not None and len(starts) > max_turns:
        start = starts[-max_turns]
    if max_tokens is None:
        return start
    budget, chosen = max_tokens, len(history)
    for turn in reversed(starts):
        if turn < start:
            break
        cost = sum(message_tokens(item.message, model) for item in history[turn:chosen])
        if cost > budget:
            break
        budget, chosen = budget - cost, turn
    return chosen


def _covered(cached: _Summary | None, dropped: Sequence[StoredMessage]) -> int:
    """How many of ``dropped`` the cached summary covers (0 when it does not fit them)."""
    if cached is None:
        return 0
    for index in range(len(dropped) - 1, -1, -1):
        item = dropped[index]
        if item.seq == cached.seq and item.timestamp == cached.timestamp:
            return index + 1
        if item.seq < cached.seq:
            break
    return 0


def _first_turn(history: Sequence[StoredMessage]) -> int:
    """The index of the first user message (``len(history)`` when there is none)."""
    return next((index for index, item in enumerate(history) if item.message.role == "user"),
                len(history))


def _line(message: Message) -> str:
    text = message.text
    if message.tool_calls:
        calls = ", ".join(f"{call.name}({call.arguments})" for call in message.tool_calls)
        text = f"{text} [called {calls}]".strip()
    return f"{message.role.capitalize()}: {text}"


def _require(ok: bool, name: str, field: str, problem: str) -> None:
    if not ok:
        raise InputValidationError(f"{name}: {field} {problem}", field=field, node=name)


def _model(name: str, field: str, llm: object) -> ChatModel:
    _require(callable(getattr(llm, "chat", None)) and callable(getattr(llm, "stream", None)),
             name, field, "must be a ChatModel (with chat and stream methods), got "
             f"{type(llm).__name__}")
    return llm  # type: ignore[return-value]


def _memory(name: str, memory: object) -> ConversationMemory:
    if memory is None:
        return InMemoryMemory(max_messages=_DEFAULT_MAX_MESSAGES)
    _require(isinstance(memory, ConversationMemory), name, "memory",
             f"must be a ConversationMemory, got {type(memory).__name__}")
    return memory  # type: ignore[return-value]


def _positive(name: str, field: str, value: object) -> int | None:
    _require(value is None or (isinstance(value, int) and not isinstance(value, bool)
                               and value >= 1), name, field,
             f"must be a positive integer or None, got {value!r}")
    return value  # type: ignore[return-value]


def _check_params(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` when they make a valid request together with any messages."""
    _require("messages" not in params, name, "messages",
             "are built by the chain; they cannot be a parameter")
    try:
        ChatRequest(**{**params, "messages": [Message.user(".")]})
    except InputValidationError as exc:
        raise InputValidationError(f"{name}: request parameter {exc.message}",
                                   field=exc.field, node=name, errors=exc.errors) from None
    return dict(params)
