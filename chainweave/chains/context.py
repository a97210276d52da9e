"""One chain run's settings (:class:`RunConfig`) and what its steps share (:class:`RunContext`).

A run is one call of ``run``, ``invoke`` or ``stream`` on the outermost chain. Every
chain inside it gets its own :class:`RunContext`, linked to its parent's, so usage is
counted per chain and summed up the tree as LLM calls finish.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chainweave.chains.events import ChainEvent, ErrorEvent, TokenEvent
from chainweave.errors import InputValidationError
from chainweave.streaming import StreamAccumulator
from chainweave.types import ChatModel, ChatRequest, ChatResponse, Usage

__all__ = ["RunConfig", "RunContext", "new_run_id"]


def new_run_id() -> str:
    """A fresh random run id (32 hex digits)."""
    return os.urandom(16).hex()


@dataclass(frozen=True, slots=True)
class RunConfig:
    """Settings for one run of a chain.

    Args:
        run_id: The run's id, in results, events and spans; a random one when left out.
        session_id: The conversation a :class:`ConversationalChain` keeps history for.
        tags: Labels for the run, put on its spans.
        metadata: Anything to carry with the run; it starts the run's metadata, which
            chains add to (a conditional chain records the route it chose).
        timeout: Seconds the whole run may take; past it the run is cancelled with
            :class:`~chainweave.errors.ChainTimeoutError`.
        max_concurrency: The default limit on concurrent work inside the run (parallel
            branches, batch items, tool calls) where the chain sets none.

    Raises:
        InputValidationError: A field has the wrong type or is out of range.
    """

    run_id: str | None = None
    session_id: str | None = None
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    timeout: float | None = None
    max_concurrency: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.tags, tuple):
            tags = self.tags
            if isinstance(tags, str) or not isinstance(tags, Iterable):
                _invalid("tags", f"must be a list of strings, got {tags!r}")
            object.__setattr__(self, "tags", tuple(tags))
        problems = [
            ("run_id", _check_id(self.run_id)),
            ("session_id", _check_id(self.session_id)),
            ("tags", None if all(isinstance(t, str) for t in self.tags)
             else "must be a list of strings"),
            ("metadata", None if isinstance(self.metadata, Mapping) else "must be a mapping"),
            ("timeout", check_timeout(self.timeout)),
            ("max_concurrency", check_concurrency(self.max_concurrency)),
        ]
        for name, problem in problems:
            if problem is not None:
                _invalid(name, problem)


def _invalid(name: str, problem: str) -> None:
    raise InputValidationError(f"RunConfig.{name}: {problem}", field=name)


def _check_id(value: object) -> str | None:
    if value is None or (isinstance(value, str) and value):
        return None
    return f"must be a non-empty string, got {value!r}"


def check_timeout(value: object) -> str | None:
    """Why ``value`` is not a timeout in seconds, or None when it is one (or None)."""
    if value is None:
        return None
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value) or value <= 0):
        return f"must be a number of seconds > 0, got {value!r}"
    return None


def check_concurrency(value: object) -> str | None:
    """Why ``value`` is not a concurrency limit, or None when it is one (or None)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return f"must be an integer >= 1, got {value!r}"
    return None


class _Run:
    """What every chain in one run shares."""

    __slots__ = ("config", "metadata", "reported", "run_id", "sink", "tracing")

    def __init__(self, config: RunConfig, sink: Callable[[ChainEvent], None] | None,
                 tracing: bool) -> None:
        self.config = config
        self.run_id = config.run_id or new_run_id()
        self.metadata: dict[str, Any] = dict(config.metadata)
        self.sink = sink
        self.tracing = tracing
        # Exceptions already sent as an ErrorEvent, so each is reported once.
        self.reported: set[int] = set()


class RunContext:
    """What one chain invocation inside a run sees: the run's settings and its own usage.

    A chain's ``_call`` receives it and passes it on when it runs other chains (through
    :meth:`Chain.call <chainweave.chains.Chain.call>`), and makes its LLM calls through
    :meth:`chat`, which counts usage and, when the run is streamed, streams tokens.

    Attributes:
        chain: The name of the chain this context belongs to.
        parent: The context of the chain that ran this one, or None at the top.
        llm_calls: LLM calls made by this chain and the chains inside it.
    """

    __slots__ = ("_cost", "_run", "chain", "completion_tokens", "llm_calls", "parent",
                 "prompt_tokens", "total_tokens")

    def __init__(self, run: _Run, chain: str, parent: RunContext | None = None) -> None:
        self._run = run
        self.chain = chain
        self.parent = parent
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.total_tokens = 0
        self._cost: float | None = None
        self.llm_calls = 0

    @classmethod
    def start(cls, chain: str, config: RunConfig | None = None, *,
              sink: Callable[[ChainEvent], None] | None = None,
              tracing: bool = False) -> RunContext:
        """The context of a new run's outermost chain."""
        return cls(_Run(config or _DEFAULT_CONFIG, sink, tracing), chain)

    def child(self, chain: str) -> RunContext:
        """The context for a chain that this one runs."""
        return RunContext(self._run, chain, self)

    def __repr__(self) -> str:
        return f"RunContext(run_id={self.run_id!r}, chain={self.chain!r})"

    # --- the run ---------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self._run.run_id

    @property
    def config(self) -> RunConfig:
        """The run's :class:`RunConfig`."""
        return self._run.config

    @property
    def session_id(self) -> str | None:
        """The run's session id, if it has one."""
        return self._run.config.session_id

    @property
    def metadata(self) -> dict[str, Any]:
        """The run's metadata, shared by every chain in it (and returned with the run)."""
        return self._run.metadata

    @property
    def streaming(self) -> bool:
        """Whether the run is being streamed, so LLM steps should stream tokens."""
        return self._run.sink is not None

    @property
    def tracing(self) -> bool:
        """Whether spans are recorded (an OpenTelemetry SDK was configured)."""
        return self._run.tracing

    @property
    def path(self) -> tuple[str, ...]:
        """The names of the chains from the outermost down to this one."""
        names: list[str] = []
        node: RunContext | None = self
        while node is not None:
            names.append(node.chain)
            node = node.parent
        return tuple(reversed(names))

    def max_concurrency(self, own: int | None) -> int | None:
        """A chain's own limit if it set one, else the run's."""
        return own if own is not None else self._run.config.max_concurrency

    # --- events ----------------------------------------------------------------------

    def emit(self, event: ChainEvent) -> None:
        """Send ``event`` to the stream's consumer; a no-op when the run is not streamed."""
        sink = self._run.sink
        if sink is not None:
            sink(event)

    def report(self, exc: BaseException) -> None:
        """Send an :class:`ErrorEvent` for ``exc`` unless an inner chain already did."""
        run = self._run
        if run.sink is not None and id(exc) not in run.reported:
            run.reported.add(id(exc))
            run.sink(ErrorEvent.of(run.run_id, self.chain, self.path, exc))

    # --- usage -----------------------------------------------------------------------

    @property
    def usage(self) -> Usage:
        """Tokens and cost of the LLM calls made so far by this chain and those inside it."""
        return Usage(prompt_tokens=self.prompt_tokens,
                     completion_tokens=self.completion_tokens,
                     total_tokens=self.total_tokens, cost_usd=self._cost)

    def add_usage(self, usage: Usage | None, calls: int = 1) -> None:
        """Count one LLM call's usage here and in every enclosing chain."""
        node: RunContext | None = self
        while node is not None:
            node.llm_calls += calls
            if usage is not None:
                node.prompt_tokens += usage.prompt_tokens
                node.completion_tokens += usage.completion_tokens
                node.total_tokens += usage.total_tokens
                if usage.cost_usd is not None:
                    node._cost = (node._cost or 0.0) + usage.cost_usd
            node = node.parent

    # --- LLM calls -------------------------------------------------------------------

    async def chat(self, llm: ChatModel, request: ChatRequest, *,
                   stream: bool | None = None) -> ChatResponse:
        """Send ``request`` to ``llm`` and count its usage.

        When the run is streamed (or ``stream=True``), the answer is streamed and each
        text delta sent as a :class:`TokenEvent`; the result is the same response.
        """
        if not (self.streaming if stream is None else stream):
            try:
                response = await llm.chat(request)
            except BaseException:
                self.add_usage(None)  # a failed call still counts as a call
                raise
            self.add_usage(response.usage)
            return response
        accumulated = StreamAccumulator()
        chunks = llm.stream(request)
        try:
            async for chunk in chunks:
                if chunk.error is not None:
                    raise chunk.error.to_exception(provider=chunk.provider,
                                                   model=chunk.model or request.model)
                accumulated.add(chunk)
                if chunk.delta:
                    self.emit(TokenEvent(self.run_id, self.chain, self.path, chunk.delta))
        finally:
            self.add_usage(accumulated.usage)
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()
        return accumulated.response(provider=_provider_name(llm),
                                    model=request.model or accumulated.model or "")


def _provider_name(llm: ChatModel) -> str:
    name = getattr(llm, "name", None)
    return name if isinstance(name, str) else type(llm).__name__


_DEFAULT_CONFIG = RunConfig()
