"""A model that calls tools until it has an answer: :class:`AgentChain`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from chainweave._internal.redact import redact
from chainweave._internal.templates import Template
from chainweave.chains.base import Chain, check_seconds
from chainweave.chains.context import RunContext, check_concurrency
from chainweave.chains.tools import FunctionTool, format_tool_result
from chainweave.errors import (
    ChainTimeoutError,
    InputValidationError,
    MaxIterationsError,
)
from chainweave.types import ChatModel, ChatRequest, ChatResponse, Message, ToolCall

__all__ = ["AgentChain"]

_SET_BY_AGENT = frozenset({"messages", "tools"})


class AgentChain(Chain):
    """Ask the model, run the tools it calls, send back their results; repeat until it answers.

    Each round sends the conversation so far with every tool's schema. When the reply
    calls tools, all of that reply's calls run concurrently and each result goes back
    as a ``tool`` message, in the order the model made the calls. A tool that fails
    (raises, times out, gets bad arguments, or does not exist) does not fail the run:
    the model gets ``"Error: <ExceptionType>: <message>"`` as that call's result and
    may try again. A reply without tool calls is the final answer.

    The number of tool calls made is recorded in the run's metadata, under
    ``metadata["tool_calls"][name]``. A streamed run streams every model reply's
    text as ``TokenEvent``s, the final answer's included.

    Args:
        name: The chain's name.
        llm: Any :class:`~chainweave.types.ChatModel` that supports tool calling.
        tools: The tools: :class:`~chainweave.chains.tools.FunctionTool`\\ s, or plain
            functions (sync or async), made into tools by
            :meth:`FunctionTool.from_function <chainweave.chains.tools.FunctionTool.from_function>`.
        system_prompt: A jinja2 template over the inputs for the system message; none
            when left out. Its variables become inputs of the chain.
        input_key: The input holding the user's message (text; other values are sent
            as JSON).
        output_key: Where the final answer's text goes in the outputs.
        max_iterations: The most model calls one run makes; a run that reaches it
            without a final answer raises
            :class:`~chainweave.errors.MaxIterationsError`.
        max_concurrency: How many tool calls of one reply run at once; the run's
            ``max_concurrency`` when left out, else all of them.
        tool_timeout: Seconds one tool call may take before the model is told it timed
            out. Async tools and ``blocking`` tools are stopped waiting for; a sync tool
            that runs inline holds the event loop and cannot be interrupted.
        return_messages: Also return the whole conversation, final answer included, as
            a list of :class:`~chainweave.types.Message` under ``"messages"``.
        model: The model to ask; the ``llm``'s default when left out.
        description: What the chain does.
        **params: Request parameters (``temperature``, ``max_tokens``,
            ``tool_choice``, ...).

    Raises:
        InputValidationError: No tools, a tool that is neither a ``FunctionTool`` nor a
            function, two tools with one name, a bad ``max_iterations``,
            ``max_concurrency`` or ``tool_timeout``, or a parameter that is not a
            request field or is out of range.
        TemplateError: ``system_prompt`` does not compile.
    """

    def __init__(self, name: str, llm: ChatModel,
                 tools: Sequence[FunctionTool | Callable[..., Any]], *,
                 system_prompt: str | None = None, input_key: str = "input",
                 output_key: str = "output", max_iterations: int = 10,
                 max_concurrency: int | None = None, tool_timeout: float | None = None,
                 return_messages: bool = False, model: str | None = None,
                 description: str = "", **params: Any) -> None:
        for what, key in (("input_key", input_key), ("output_key", output_key)):
            if not isinstance(key, str) or not key:
                raise InputValidationError(f"{name}: {what} must be a non-empty string, got "
                                           f"{key!r}", field=what, node=name)
        self.system_prompt = (None if system_prompt is None
                              else Template(system_prompt, where=name))
        variables = self.system_prompt.variables if self.system_prompt else frozenset()
        super().__init__(name, description=description,
                         input_keys=sorted({*variables, input_key}),
                         output_keys=(output_key, "messages") if return_messages
                         else (output_key,))
        self.llm = llm
        self.tools: dict[str, FunctionTool] = _tools(name, tools)
        self.input_key = input_key
        self.output_key = output_key
        self.max_iterations = _check_iterations(name, max_iterations)
        problem = check_concurrency(max_concurrency)
        if problem is not None:
            raise InputValidationError(f"{name}: max_concurrency {problem}",
                                       field="max_concurrency", node=name)
        self.max_concurrency = max_concurrency
        self.tool_timeout = check_seconds(name, "tool_timeout", tool_timeout)
        self.return_messages = return_messages
        self.params: dict[str, Any] = {"model": model, **params} if model else dict(params)
        self._specs = [tool.spec for tool in self.tools.values()]
        self._check_params()

    def _check_params(self) -> None:
        clash = sorted(_SET_BY_AGENT.intersection(self.params))
        if clash:
            raise InputValidationError(f"{self.name}: {', '.join(clash)} are set by the agent, "
                                       "not passed as parameters", field=clash[0],
                                       node=self.name)
        try:
            self._request([Message.user(".")], "")  # build one request to validate now
        except InputValidationError as exc:
            raise InputValidationError(f"{self.name}: request parameter {exc.message}",
                                       errors=exc.errors, field=exc.field,
                                       node=self.name) from None

    def _request(self, messages: list[Message], run_id: str) -> ChatRequest:
        extra = self.params.get("metadata", {})
        # A metadata that is not a mapping goes through as it is, for ChatRequest to refuse.
        metadata = ({**extra, "chain": self.name, "run_id": run_id}
                    if isinstance(extra, Mapping) else extra)
        return ChatRequest(**{**self.params, "messages": messages, "tools": self._specs,
                              "metadata": metadata})

    async def _call(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        messages = self._first_messages(inputs)
        counts: dict[str, int] = ctx.metadata.setdefault("tool_calls", {})
        counts.setdefault(self.name, 0)
        response: ChatResponse | None = None
        for iteration in range(1, self.max_iterations + 1):
            response = await ctx.chat(self.llm, self._request(messages, ctx.run_id))
            if not response.tool_calls:
                return self._outputs(response, messages)
            if iteration == self.max_iterations:
                break  # no model call is left to read the results: run nothing more
            messages.append(response.message)
            results = await self._run_tools(response.tool_calls, ctx)
            messages.extend(Message.tool(call.id, text, name=call.name)
                            for call, text in zip(response.tool_calls, results, strict=True))
            counts[self.name] += len(results)
        raise self._exhausted(response)

    def _first_messages(self, inputs: dict[str, Any]) -> list[Message]:
        messages = [] if self.system_prompt is None else [
            Message.system(self.system_prompt.render(inputs))]
        messages.append(Message.user(format_tool_result(inputs[self.input_key])))
        return messages

    def _outputs(self, response: ChatResponse, messages: list[Message]) -> dict[str, Any]:
        outputs: dict[str, Any] = {self.output_key: response.content}
        if self.return_messages:
            outputs["messages"] = [*messages, response.message]
        return outputs

    def _exhausted(self, response: ChatResponse | None) -> MaxIterationsError:
        called = sorted({call.name for call in response.tool_calls}) if response else []
        return MaxIterationsError(
            f"{self.name}: no final answer after {self.max_iterations} model calls "
            f"(max_iterations={self.max_iterations}); the last reply still called "
            f"{', '.join(called) or 'no tools'}",
            node=self.name,
            details={"max_iterations": self.max_iterations, "last_tool_calls": called})

    # --- running tools -------------------------------------------------------------

    async def _run_tools(self, calls: Sequence[ToolCall], ctx: RunContext) -> list[str]:
        """Every call's result text, in call order; the calls run concurrently."""
        limit = ctx.max_concurrency(self.max_concurrency)
        gate = asyncio.Semaphore(limit) if limit is not None else None

        async def run(call: ToolCall) -> str:
            if gate is None:
                return await self._run_tool(call)
            async with gate:
                return await self._run_tool(call)

        if len(calls) == 1:
            return [await run(calls[0])]
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(run(call)) for call in calls]
        return [task.result() for task in tasks]

    async def _run_tool(self, call: ToolCall) -> str:
        """The call's result as text, or ``Error: <type>: <message>`` when it failed."""
        try:
            tool = self.tools.get(call.name)
            if tool is None:
                raise InputValidationError(
                    f"unknown tool {call.name!r}; the tools are "
                    f"{', '.join(sorted(self.tools))}", field="name")
            return format_tool_result(await self._invoke(tool, call))
        except Exception as exc:  # any failure is the model's to read and recover from
            return redact(f"Error: {type(exc).__name__}: {exc}")

    async def _invoke(self, tool: FunctionTool, call: ToolCall) -> Any:
        if self.tool_timeout is None:
            return await tool.invoke(call.arguments)
        try:
            async with asyncio.timeout(self.tool_timeout) as scope:
                return await tool.invoke(call.arguments)
        except TimeoutError as exc:
            if not scope.expired():
                raise
            raise ChainTimeoutError(f"tool {tool.name!r} timed out after "
                                    f"{self.tool_timeout:g}s") from exc


def _tools(name: str, tools: object) -> dict[str, FunctionTool]:
    if isinstance(tools, str | bytes) or not isinstance(tools, Sequence):
        raise InputValidationError(f"{name}: tools must be a list of tools or functions, got "
                                   f"{type(tools).__name__}", field="tools", node=name)
    if not tools:
        raise InputValidationError(f"{name}: an agent needs at least one tool",
                                   field="tools", node=name)
    found: dict[str, FunctionTool] = {}
    for index, item in enumerate(tools):
        if isinstance(item, FunctionTool):
            made = item
        elif callable(item):
            try:
                made = FunctionTool.from_function(item)
            except InputValidationError as exc:
                exc.node = name
                raise
        else:
            raise InputValidationError(f"{name}: tools.{index} must be a FunctionTool or a "
                                       f"function, got {item!r}", field=f"tools.{index}",
                                       node=name)
        if made.name in found:
            raise InputValidationError(f"{name}: two tools are named {made.name!r}",
                                       field=f"tools.{index}", node=name)
        found[made.name] = made
    return found


def _check_iterations(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputValidationError(f"{name}: max_iterations must be an integer >= 1, got "
                                   f"{value!r}", field="max_iterations", node=name)
    return value
