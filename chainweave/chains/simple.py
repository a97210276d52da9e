"""One prompt, one model call, one parsed answer: :class:`SimpleChain`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from chainweave.chains.base import Chain, check_model
from chainweave.chains.context import RunContext
from chainweave.chains.parsers import OutputParser, ParseFailure, TextParser, as_parser
from chainweave.chains.prompt import PromptSpec, PromptTemplate
from chainweave.errors import InputValidationError, InvalidRequestError, OutputParserError
from chainweave.types import ChatModel, ChatRequest, ChatResponse, Message

__all__ = ["PARAMETER_KEYS", "SimpleChain", "StructuredMode"]

#: Inputs that set the request's parameters for one run (the seed's ``ChainInput`` shape:
#: ``{"input": ..., "temperature": 0.7, "max_tokens": 100}``).
PARAMETER_KEYS = frozenset({"model", "temperature", "max_tokens", "top_p", "top_k", "stop",
                            "seed", "frequency_penalty", "presence_penalty"})

StructuredMode = Literal["auto", "json_schema", "instructions"]

_REPAIR = ("Your reply could not be used: {error}\n"
           "Reply again with only the corrected output.")


class SimpleChain(Chain):
    """Render a prompt template, call the model, parse the answer.

    Args:
        name: The chain's name.
        llm: Any :class:`~chainweave.types.ChatModel`: a provider, a
            ``ProviderManager``, a ``Pipeline`` or a ``MockProvider``.
        prompt: A jinja2 template string (one user message, e.g. ``"Complete this:
            {{ input }}"``) or a list of role messages (see
            :class:`~chainweave.chains.prompt.PromptTemplate`). Templates run in
            jinja2's sandbox; an undefined variable is an error naming it.
        output_key: Where the parsed answer goes in the outputs.
        parser: ``"text"`` (default), ``"json"``, a pydantic model class, or an
            :class:`~chainweave.chains.parsers.OutputParser`.
        structured: How a structured answer is asked for. ``"json_schema"`` sends the
            provider's ``response_format``; ``"instructions"`` puts the format in a
            system message; ``"auto"`` sends the ``response_format`` and switches to
            instructions for good if the provider rejects it. Either way an answer
            that does not parse gets one repair round: the error goes back to the
            model, and a second failure raises
            :class:`~chainweave.errors.OutputParserError`.
        model: The model to ask; the ``llm``'s default when left out.
        input_params: Which inputs may set request parameters for one run (the seed's
            ``{"input": ..., "temperature": 0.7, "max_tokens": 100}``): all of
            :data:`PARAMETER_KEYS` when left out, none with ``()``. A name the prompt
            uses as a variable is always a variable, never a parameter. Narrow this
            when inputs come from end users who should not choose the model.
        description: What the chain does.
        **params: Request parameters (``temperature``, ``max_tokens``, ``top_p``,
            ``stop``, ``metadata``, ...).

    Raises:
        InputValidationError: ``llm`` is not a chat model, a parameter is not a request
            field or is out of range, or ``messages``/``tools`` are given (the prompt
            makes the messages; tool calling is :class:`AgentChain`'s).
        TemplateError: The prompt does not compile.
    """

    def __init__(self, name: str, llm: ChatModel, prompt: PromptSpec, *,
                 output_key: str = "result", parser: object = None,
                 structured: StructuredMode = "auto", model: str | None = None,
                 input_params: Iterable[str] | None = None, description: str = "",
                 **params: Any) -> None:
        self.prompt = PromptTemplate(prompt, where=name)
        super().__init__(name, description=description, input_keys=sorted(self.prompt.variables),
                         output_keys=(output_key,))
        if structured not in ("auto", "json_schema", "instructions"):
            raise InputValidationError(f"{name}: structured must be auto, json_schema or "
                                       f"instructions, got {structured!r}", field="structured")
        refused = sorted({"messages", "tools"} & set(params))
        if refused:
            raise InputValidationError(f"{name}: {refused[0]} is not a SimpleChain parameter "
                                       "(the prompt makes the messages; tools need AgentChain)",
                                       field=refused[0], node=name)
        self.llm = check_model(name, llm)
        allowed = PARAMETER_KEYS if input_params is None else frozenset(input_params)
        if not allowed <= PARAMETER_KEYS:
            raise InputValidationError(
                f"{name}: input_params {sorted(allowed - PARAMETER_KEYS)} are not request "
                f"parameters ({sorted(PARAMETER_KEYS)})", field="input_params", node=name)
        self.input_params = allowed - self.prompt.variables
        self._metadata = dict(params.pop("metadata", None) or {})
        self.output_key = output_key
        self.parser: OutputParser = as_parser(parser, where=name)
        self.structured: StructuredMode = structured
        self._format = self.parser.response_format()
        self._instructions = self.parser.instructions()
        self.params: dict[str, Any] = {"model": model, **params} if model else dict(params)
        # Validated once here; each call copies it with its messages (a third the cost).
        self._base = self._request({"messages": [Message(role="user", content=".")]}, {})

    def _request(self, base: dict[str, Any], inputs: Mapping[str, Any]) -> ChatRequest:
        if self.input_params.isdisjoint(inputs) and hasattr(self, "_base"):
            return self._base.model_copy(update=base)
        fields = {**self.params, **base}
        fields.update((key, inputs[key]) for key in self.input_params if key in inputs)
        try:
            return ChatRequest(**fields)
        except InputValidationError as exc:
            raise InputValidationError(f"{self.name}: bad request parameter: {exc.message}",
                                       errors=exc.errors, field=exc.field,
                                       node=self.name) from None

    async def _call(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        messages = self.prompt.messages(inputs)
        base: dict[str, Any] = {"messages": messages, "metadata": {
            **self._metadata, "chain": self.name, "run_id": ctx.run_id}}
        use_schema = self._format is not None and self.structured != "instructions"
        if self._instructions and not use_schema:
            messages.insert(0, Message(role="system", content=self._instructions))
        elif use_schema:
            base["response_format"] = self._format
        request, response = await self._ask(self._request(base, inputs), ctx)
        if isinstance(self.parser, TextParser):
            return {self.output_key: response.content}
        return {self.output_key: await self._parse(request, response, ctx)}

    async def _ask(self, request: ChatRequest,
                   ctx: RunContext) -> tuple[ChatRequest, ChatResponse]:
        """The request actually answered, and its answer."""
        try:
            return request, await ctx.chat(self.llm, request)
        except InvalidRequestError as exc:
            if (self.structured != "auto" or request.response_format is None
                    or "response_format" not in f"{exc.field} {exc.message}"):
                raise
        # The provider has no structured output: ask with instructions from now on
        # (a flag that only ever goes one way, so concurrent runs may share it).
        self.structured = "instructions"
        messages = [Message(role="system", content=self._instructions or ""),
                    *request.messages]
        fallback = request.model_copy(update={"messages": messages, "response_format": None})
        return fallback, await ctx.chat(self.llm, fallback)

    async def _parse(self, request: ChatRequest, response: ChatResponse,
                     ctx: RunContext) -> Any:
        try:
            return self.parser.parse(response.content)
        except ParseFailure as exc:
            first = str(exc)
        repair = request.model_copy(update={"messages": [
            *request.messages, Message(role="assistant", content=response.content or " "),
            Message(role="user", content=_REPAIR.format(error=first))]})
        second = await ctx.chat(self.llm, repair)
        try:
            return self.parser.parse(second.content)
        except ParseFailure as exc:
            raise OutputParserError(
                f"{self.name}: the answer did not parse after a repair round: {exc}",
                node=self.name, details={"errors": [first, str(exc)], "attempts": 2}) from None

