"""The :class:`Chain` base: running, streaming, batching and composing chains.

A chain maps a dict of inputs to a dict of outputs. Subclasses implement one method,
``_call(inputs, ctx)``; the base gives every chain the same ways to run it:

* ``await chain.run(inputs)`` returns the outputs; ``invoke`` returns a
  :class:`ChainRun` with usage, run id, metadata and timing as well;
* ``chain.run_sync(inputs)`` from synchronous code (never inside a running loop);
* ``async for event in chain.stream(inputs)`` yields :mod:`~chainweave.chains.events`;
* ``await chain.batch([...], max_concurrency=8)`` runs many inputs concurrently.

Around every ``_call`` the base checks the declared inputs, records a span
``chainweave.chain {name}`` when tracing is configured, sends start and end events when
the run is streamed, and marks an error with the chain it came from (``node`` on
chainweave errors, a note on others), without changing its type.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from opentelemetry.trace import Status, StatusCode

from chainweave._internal.redact import redact
from chainweave._internal.sync import run_sync
from chainweave._internal.tracing import tracer, tracing_enabled
from chainweave.chains.context import (
    RunConfig,
    RunContext,
    check_concurrency,
    check_timeout,
)
from chainweave.chains.events import ChainEnd, ChainEvent, ChainStart
from chainweave.errors import (
    ChainInputError,
    ChainTimeoutError,
    ChainweaveError,
    ExecutionError,
    InputValidationError,
)
from chainweave.types import ChatModel, Usage

if TYPE_CHECKING:
    from chainweave.chains.sequential import SequentialChain
    from chainweave.providers.retry import RetryPolicy

__all__ = ["Chain", "ChainRun", "Inputs", "check_model", "check_seconds", "within"]

#: What ``run`` accepts: a mapping of inputs, or one bare value for a one-input chain.
Inputs = Mapping[str, Any] | Any

_NOTE = "chainweave: raised in chain "
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ChainRun:
    """The result of one run, from :meth:`Chain.invoke`.

    Attributes:
        outputs: What the chain returned.
        run_id: The run's id.
        chain: The chain's name.
        usage: Tokens and cost summed over every LLM call in the run.
        llm_calls: How many LLM calls the run made.
        metadata: The run's metadata: the ``RunConfig.metadata`` it started with and
            what chains recorded (a conditional chain's route under ``routes``).
        started_at: When the run started (UTC).
        elapsed_ms: How long it took.
    """

    outputs: dict[str, Any]
    run_id: str
    chain: str
    usage: Usage = field(default_factory=Usage)
    llm_calls: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    elapsed_ms: float = 0.0


class Chain(ABC):
    """A step that maps a dict of inputs to a dict of outputs.

    Args:
        name: What the chain is called in spans, events, errors and registries.
        description: What it does, for people and registries.
        input_keys: The inputs it needs; a run without them raises
            :class:`~chainweave.errors.ChainInputError` listing every missing one.
        output_keys: The outputs it promises to return.

    Raises:
        InputValidationError: ``name`` is empty or a key list is malformed.
    """

    def __init__(self, name: str, *, description: str = "",
                 input_keys: Iterable[str] = (), output_keys: Iterable[str] = ()) -> None:
        if not isinstance(name, str) or not name.strip():
            raise InputValidationError(
                f"{type(self).__name__}: name must be a non-empty string, got {name!r}",
                field="name")
        self.name = name
        self.description = description
        self.input_keys: tuple[str, ...] = _keys(name, "input_keys", input_keys)
        self.output_keys: tuple[str, ...] = _keys(name, "output_keys", output_keys)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    @abstractmethod
    async def _call(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        """Do the chain's work: map ``inputs`` (already checked) to outputs.

        Run other chains with ``await other.call(values, ctx)`` and make LLM calls with
        ``await ctx.chat(llm, request)``, so usage, events and spans nest properly.
        """

    # --- running -------------------------------------------------------------------

    async def invoke(self, inputs: Inputs = None, config: RunConfig | None = None,
                     **kwargs: Any) -> ChainRun:
        """Run the chain and return its outputs with the run's usage, metadata and timing.

        Args:
            inputs: A mapping of inputs, or one bare value when the chain has exactly
                one input key.
            config: The run's settings (id, session, tags, metadata, timeout,
                concurrency).
            **kwargs: More inputs, merged over ``inputs``.

        Raises:
            ChainInputError: Inputs are missing; every missing name is listed.
            ChainTimeoutError: ``config.timeout`` passed.
        """
        ctx = RunContext.start(self.name, config, tracing=tracing_enabled())
        started_at = datetime.now(UTC)
        started = time.perf_counter()
        outputs = await self._top(self.coerce_inputs(inputs, kwargs), ctx)
        return ChainRun(outputs, ctx.run_id, self.name, ctx.usage, ctx.llm_calls, ctx.metadata,
                        started_at, (time.perf_counter() - started) * 1000.0)

    async def run(self, inputs: Inputs = None, config: RunConfig | None = None,
                  **kwargs: Any) -> dict[str, Any]:
        """Run the chain and return its outputs (see :meth:`invoke` for the arguments)."""
        ctx = RunContext.start(self.name, config, tracing=tracing_enabled())
        return await self._top(self.coerce_inputs(inputs, kwargs), ctx)

    def run_sync(self, inputs: Inputs = None, config: RunConfig | None = None,
                 **kwargs: Any) -> dict[str, Any]:
        """:meth:`run` from synchronous code; an error inside a running event loop."""
        return run_sync(self.run(inputs, config, **kwargs))

    async def stream(self, inputs: Inputs = None, config: RunConfig | None = None,
                     **kwargs: Any) -> AsyncIterator[ChainEvent]:
        """Run the chain, yielding its events as they happen.

        Events: :class:`~chainweave.chains.events.ChainStart` and ``ChainEnd`` for this
        chain and every chain inside it, ``TokenEvent`` for each piece of text an LLM
        step streams, and ``ErrorEvent`` when a chain fails. The last event of a
        successful run is this chain's ``ChainEnd``, which holds the outputs. A failed
        run raises its error after the ``ErrorEvent``. Leaving the loop early cancels
        the run.
        """
        values = self.coerce_inputs(inputs, kwargs)
        queue: asyncio.Queue[ChainEvent | None] = asyncio.Queue()
        ctx = RunContext.start(self.name, config, sink=queue.put_nowait,
                               tracing=tracing_enabled())
        task = asyncio.create_task(self._top(values, ctx))
        task.add_done_callback(lambda _: queue.put_nowait(None))
        try:
            while (event := await queue.get()) is not None:
                yield event
            task.result()
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    @overload
    async def batch(self, inputs: Sequence[Inputs], config: RunConfig | None = None, *,
                    max_concurrency: int | None = None,
                    return_exceptions: Literal[False] = False) -> list[dict[str, Any]]: ...

    @overload
    async def batch(self, inputs: Sequence[Inputs], config: RunConfig | None = None, *,
                    max_concurrency: int | None = None,
                    return_exceptions: Literal[True]) -> list[dict[str, Any] | Exception]: ...

    async def batch(self, inputs: Sequence[Inputs], config: RunConfig | None = None, *,
                    max_concurrency: int | None = None,
                    return_exceptions: bool = False) -> Sequence[dict[str, Any] | Exception]:
        """Run the chain on each of ``inputs`` concurrently; results come in input order.

        Args:
            inputs: One input mapping (or bare value) per run.
            config: Settings shared by the runs; each run gets its own run id.
            max_concurrency: How many runs at once; ``config.max_concurrency`` when left
                out, else all of them.
            return_exceptions: Put a failed run's exception in its place in the result
                instead of cancelling the other runs and raising it.

        Raises:
            ChainInputError: An item lacks inputs; nothing has run yet.
        """
        if isinstance(inputs, str | bytes | Mapping) or not isinstance(inputs, Sequence):
            raise InputValidationError(
                f"{self.name}: batch() takes a list of inputs, got {type(inputs).__name__}",
                field="inputs", node=self.name)
        problem = check_concurrency(max_concurrency)
        if problem is not None:
            raise InputValidationError(f"{self.name}: batch max_concurrency {problem}",
                                       field="max_concurrency", node=self.name)
        items = [self.coerce_inputs(item, {}) for item in inputs]
        if not items:
            return []
        for index, item in enumerate(items):
            self.check_inputs(item, where=f"batch item {index}")
        base = replace(config, run_id=None) if config is not None else None
        limit = max_concurrency or (base.max_concurrency if base else None) or len(items)
        results: list[dict[str, Any] | Exception] = [{} for _ in items]
        pending = iter(range(len(items)))
        tracing = tracing_enabled()

        async def one(index: int) -> None:
            ctx = RunContext.start(self.name, base, tracing=tracing)
            try:
                results[index] = await self._top(items[index], ctx)
            except Exception as exc:
                if not return_exceptions:
                    raise
                results[index] = exc

        async def worker() -> None:
            for index in pending:
                await one(index)

        if limit >= len(items):  # one task per item, no workers to hand items out
            await _gather_fail_fast([one(index) for index in range(len(items))])
        else:
            await _gather_fail_fast([worker() for _ in range(limit)])
        return results

    async def call(self, inputs: Mapping[str, Any], ctx: RunContext) -> dict[str, Any]:
        """Run this chain as a step of the chain that owns ``ctx`` (for ``_call`` bodies)."""
        return await self._execute(inputs, ctx.child(self.name))

    # --- composing -----------------------------------------------------------------

    def __or__(self, other: Chain) -> SequentialChain:
        """``a | b``: a :class:`SequentialChain` that runs ``a`` and then ``b``."""
        from chainweave.chains.sequential import SequentialChain

        if not isinstance(other, Chain):
            return NotImplemented
        steps = [*_piped(self), *_piped(other)]
        return SequentialChain(" | ".join(step.name for step in steps), steps, piped=True)

    def with_retry(self, policy: RetryPolicy | None = None, **kwargs: Any) -> Chain:
        """This chain, tried again on failure under ``policy`` (or ``RetryPolicy(**kwargs)``).

        Which errors are retried is the policy's ``should_retry``: retryable chainweave
        errors and timeouts by default, or the classes in ``retry_on``.
        """
        from chainweave.chains.wrappers import RetryChain

        return RetryChain(self, policy, **kwargs)

    def with_fallbacks(self, fallbacks: Sequence[Chain], *,
                       exceptions: tuple[type[Exception], ...] = (Exception,)) -> Chain:
        """This chain, and when it fails with one of ``exceptions``, each fallback in turn.

        When every one fails, the last error is raised with the earlier ones attached
        as notes.
        """
        from chainweave.chains.wrappers import FallbackChain

        return FallbackChain(self, fallbacks, exceptions=exceptions)

    def with_timeout(self, seconds: float) -> Chain:
        """This chain, cancelled with :class:`ChainTimeoutError` after ``seconds``."""
        from chainweave.chains.wrappers import TimeoutChain

        return TimeoutChain(self, seconds)

    # --- what every run goes through -----------------------------------------------

    def coerce_inputs(self, inputs: Inputs, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """``inputs`` as a fresh dict: a mapping is copied; a bare value needs one input key.

        Raises:
            ChainInputError: A bare value was given to a chain without exactly one
                input key.
        """
        if inputs is None:
            values: dict[str, Any] = {}
        elif isinstance(inputs, Mapping):
            values = dict(inputs)
        elif len(self.input_keys) == 1:
            values = {self.input_keys[0]: inputs}
        else:
            raise ChainInputError(
                f"{self.name}: a bare {type(inputs).__name__} input needs a chain with exactly "
                f"one input key; this one has {list(self.input_keys)}; pass a dict",
                field="inputs", node=self.name)
        if kwargs:
            values.update(kwargs)
        return values

    def check_inputs(self, inputs: Mapping[str, Any], *, where: str | None = None) -> None:
        """Raise :class:`ChainInputError` listing every declared input ``inputs`` lacks."""
        missing = [key for key in self.input_keys if key not in inputs]
        if missing:
            place = f" ({where})" if where else ""
            raise ChainInputError(
                f"{self.name}{place}: missing input{'s' if len(missing) > 1 else ''} "
                f"{', '.join(map(repr, missing))}; got {sorted(map(str, inputs)) or 'none'}",
                missing=missing, field=missing[0], node=self.name)

    async def _top(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        timeout = ctx.config.timeout
        if timeout is None:
            return await self._execute(inputs, ctx)
        return await within(timeout, self._execute(inputs, ctx), ctx, lambda: ChainTimeoutError(
            f"run of chain {self.name!r} timed out after {timeout}s",
            node=self.name, details={"timeout": timeout}))

    async def _execute(self, inputs: Mapping[str, Any], ctx: RunContext) -> dict[str, Any]:
        """Check inputs, then ``_call`` inside this chain's span and events."""
        values = inputs if isinstance(inputs, dict) else dict(inputs)
        streaming = ctx.streaming
        if streaming:
            ctx.emit(ChainStart(ctx.run_id, self.name, ctx.path, dict(values)))
            started = time.perf_counter()
        try:
            self.check_inputs(values)
            if ctx.tracing:
                outputs = await self._traced(values, ctx)
            else:
                outputs = await self._call(values, ctx)
            self._check_outputs(outputs)
        except Exception as exc:
            _mark(exc, self.name)
            ctx.report(exc)
            raise
        if streaming:
            ctx.emit(ChainEnd(ctx.run_id, self.name, ctx.path, outputs, ctx.usage,
                              (time.perf_counter() - started) * 1000.0))
        return outputs

    async def _traced(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        attributes: dict[str, Any] = {"chain.name": self.name, "chain.type": type(self).__name__,
                                      "chainweave.run_id": ctx.run_id}
        if ctx.config.tags:
            attributes["chainweave.tags"] = list(ctx.config.tags)
        with tracer.start_as_current_span(f"chainweave.chain {self.name}", attributes=attributes,
                                          record_exception=False,
                                          set_status_on_exception=False) as span:
            try:
                outputs = await self._call(inputs, ctx)
            except Exception as exc:
                description = redact(f"{type(exc).__name__}: {exc}")
                span.add_event("exception", {"exception.type": type(exc).__name__,
                                             "exception.message": redact(str(exc))})
                span.set_status(Status(StatusCode.ERROR, description))
                raise
            if ctx.llm_calls:
                span.set_attributes({"gen_ai.usage.input_tokens": ctx.prompt_tokens,
                                     "gen_ai.usage.output_tokens": ctx.completion_tokens,
                                     "chainweave.llm_calls": ctx.llm_calls})
            return outputs

    def _check_outputs(self, outputs: object) -> None:
        if not isinstance(outputs, dict):
            raise ExecutionError(f"chain {self.name!r} returned {type(outputs).__name__}, "
                                 "not a dict of outputs", node=self.name)
        missing = [key for key in self.output_keys if key not in outputs]
        if missing:
            raise ExecutionError(f"chain {self.name!r} did not return its output "
                                 f"{', '.join(map(repr, missing))}; it returned "
                                 f"{sorted(outputs)}", node=self.name,
                                 details={"missing": missing})


def _keys(name: str, what: str, keys: Iterable[str]) -> tuple[str, ...]:
    if isinstance(keys, str):
        keys = (keys,)
    try:
        values = tuple(keys)
    except TypeError:
        raise InputValidationError(f"{name}: {what} must be a list of strings, got {keys!r}",
                                   field=what) from None
    bad = [key for key in values if not isinstance(key, str) or not key]
    if bad:
        raise InputValidationError(f"{name}: {what} must be non-empty strings, got {bad!r}",
                                   field=what)
    if len(set(values)) != len(values):
        raise InputValidationError(f"{name}: {what} has duplicates: {list(values)}", field=what)
    return values


def _mark(exc: Exception, chain: str) -> None:
    """Name the innermost chain an error came from, keeping the error's type."""
    if isinstance(exc, ChainweaveError):
        if exc.node is None:
            exc.node = chain
        return
    notes = getattr(exc, "__notes__", ())
    if not any(isinstance(note, str) and note.startswith(_NOTE) for note in notes):
        exc.add_note(f"{_NOTE}{chain!r}")


def _piped(chain: Chain) -> list[Chain]:
    from chainweave.chains.sequential import SequentialChain

    if isinstance(chain, SequentialChain) and chain.piped:
        return list(chain.steps)
    return [chain]


async def _gather_fail_fast(coroutines: list[Any]) -> None:
    """Await every coroutine; on the first failure cancel the rest and raise it."""
    if len(coroutines) == 1:
        await coroutines[0]
        return
    tasks = [asyncio.ensure_future(coro) for coro in coroutines]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        # The first failure (or our own cancellation): stop the others before raising.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def within(seconds: float, work: Awaitable[T], ctx: RunContext,
                 timed_out: Callable[[], ChainTimeoutError]) -> T:
    """Await ``work``; past ``seconds`` cancel it, then report the error ``timed_out()``
    builds through ``ctx`` and raise it. A ``TimeoutError`` the work raises itself
    passes through unchanged."""
    try:
        async with asyncio.timeout(seconds) as scope:
            return await work
    except TimeoutError as exc:
        if not scope.expired():
            raise
        error = timed_out()
        ctx.report(error)
        raise error from exc


def check_model(owner: str, llm: object) -> ChatModel:
    """``llm`` if it speaks the :class:`~chainweave.types.ChatModel` protocol.

    Raises:
        InputValidationError: It lacks a callable ``chat`` or ``stream``.
    """
    if not (callable(getattr(llm, "chat", None)) and callable(getattr(llm, "stream", None))):
        raise InputValidationError(
            f"{owner}: llm must be a ChatModel (a provider, ProviderManager, Pipeline or "
            f"MockProvider with chat() and stream()), got {type(llm).__name__}",
            field="llm", node=owner)
    return llm  # type: ignore[return-value]


def check_seconds(owner: str, what: str, value: object) -> float | None:
    """``value`` as a timeout in seconds (or None), else a clear error naming it.

    Raises:
        InputValidationError: ``value`` is not a positive, finite number of seconds.
    """
    problem = check_timeout(value)
    if problem is not None:
        raise InputValidationError(f"{owner}: {what} {problem}", field=what, node=owner)
    return value  # type: ignore[return-value]
