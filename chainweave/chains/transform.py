"""Plain Python functions as chains: :class:`TransformChain` and the ``@chain`` decorator."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeAlias, overload

from chainweave.chains.base import Chain
from chainweave.chains.context import RunContext
from chainweave.errors import InputValidationError

__all__ = ["TransformChain", "chain", "is_async_callable"]

TransformFunction: TypeAlias = Callable[[dict[str, Any]], Any]


class TransformChain(Chain):
    """A chain that runs ``fn(inputs)`` and returns the dict it gives.

    Args:
        name: The chain's name.
        fn: A function, sync or async, from the inputs dict to an outputs dict.
        input_keys: The inputs ``fn`` needs.
        output_keys: The outputs ``fn`` returns.
        blocking: ``fn`` is synchronous and blocks (I/O, heavy CPU): run it in a worker
            thread so the event loop keeps serving other work. Left False, a sync
            function runs inline, which is fastest for quick functions.
        description: What the chain does.

    Raises:
        InputValidationError: ``fn`` is not callable, or an async function is declared
            blocking.
    """

    def __init__(self, name: str, fn: TransformFunction, *, input_keys: Iterable[str] = (),
                 output_keys: Iterable[str] = (), blocking: bool = False,
                 description: str = "") -> None:
        super().__init__(name, description=description or (inspect.getdoc(fn) or ""),
                         input_keys=input_keys, output_keys=output_keys)
        if not callable(fn):
            raise InputValidationError(f"{name}: fn must be callable, got {fn!r}", field="fn")
        self.is_async = is_async_callable(fn)
        if blocking and self.is_async:
            raise InputValidationError(f"{name}: blocking=True is for sync functions; "
                                       f"{fn!r} is async", field="blocking")
        self.fn = fn
        self.blocking = blocking

    async def _call(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        if self.is_async:
            result = await self.fn(inputs)
        elif self.blocking:
            result = await asyncio.to_thread(self.fn, inputs)
        else:
            result = self.fn(inputs)
        if inspect.isawaitable(result):  # a sync function that returned a coroutine
            result = await result
        if not isinstance(result, dict):
            result = dict(result) if isinstance(result, Mapping) else result
        return result  # type: ignore[no-any-return]


def is_async_callable(fn: Callable[..., Any]) -> bool:
    """Whether calling ``fn`` gives a coroutine: async functions, partials of them, and
    objects with an async ``__call__``."""
    target = fn.func if isinstance(fn, functools.partial) else fn
    call = None if inspect.isroutine(target) else type(target).__call__
    return inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(call)


@overload
def chain(fn: Callable[..., Any], /) -> TransformChain: ...


@overload
def chain(*, name: str | None = None, output_key: str | None = None,
          output_keys: Iterable[str] | None = None,
          blocking: bool = False) -> Callable[[Callable[..., Any]], TransformChain]: ...


def chain(fn: Callable[..., Any] | None = None, /, *, name: str | None = None,
          output_key: str | None = None, output_keys: Iterable[str] | None = None,
          blocking: bool = False,
          ) -> TransformChain | Callable[[Callable[..., Any]], TransformChain]:
    """Make a chain of a plain function whose parameters are its inputs.

    ``@chain`` on ``def word_count(text: str) -> int`` gives a chain named
    ``word_count`` with input ``text`` that returns ``{"word_count": n}``. Parameters
    without defaults are the required inputs; those with defaults are filled from the
    inputs when present; a ``**kwargs`` parameter receives every input.

    Args:
        fn: The function (sync or async), when used bare as ``@chain``.
        name: The chain's name; the function's name when left out.
        output_key: The key the return value goes under; the chain's name when left
            out.
        output_keys: Instead of ``output_key``: the function returns a dict with these
            keys, returned as the outputs.
        blocking: Run a sync function in a worker thread (see :class:`TransformChain`).

    Raises:
        InputValidationError: Both ``output_key`` and ``output_keys``, or a function
            with positional-only parameters (inputs are passed by name).
    """
    if output_key is not None and output_keys is not None:
        raise InputValidationError("@chain takes output_key or output_keys, not both",
                                   field="output_keys")

    def build(function: Callable[..., Any]) -> TransformChain:
        chain_name = name or getattr(function, "__name__", None) or "chain"
        signature = inspect.signature(function)
        required: list[str] = []
        optional: list[str] = []
        takes_all = False
        for parameter in signature.parameters.values():
            if parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
                raise InputValidationError(
                    f"@chain {chain_name}: parameter {parameter.name!r} is positional-only; "
                    "inputs are passed by name", field=parameter.name)
            if parameter.kind is inspect.Parameter.VAR_KEYWORD:
                takes_all = True
            elif parameter.kind is not inspect.Parameter.VAR_POSITIONAL:
                (optional if parameter.default is not inspect.Parameter.empty
                 else required).append(parameter.name)
        wanted = tuple(required + optional)
        key = output_key or chain_name
        keys = tuple(output_keys) if output_keys is not None else (key,)
        is_async = is_async_callable(function)

        def arguments(inputs: dict[str, Any]) -> dict[str, Any]:
            if takes_all:
                return inputs
            return {name: inputs[name] for name in wanted if name in inputs}

        def wrap(value: Any) -> dict[str, Any]:
            return value if output_keys is not None else {key: value}

        if is_async:
            async def run(inputs: dict[str, Any]) -> dict[str, Any]:
                return wrap(await function(**arguments(inputs)))
        else:
            def run(inputs: dict[str, Any]) -> dict[str, Any]:  # type: ignore[misc]
                return wrap(function(**arguments(inputs)))

        return TransformChain(chain_name, run, input_keys=required, output_keys=keys,
                              blocking=blocking,
                              description=inspect.getdoc(function) or "")

    return build(fn) if fn is not None else build
