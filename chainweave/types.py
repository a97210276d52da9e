"""The typed vocabulary every layer speaks: messages, requests, responses, stream chunks.

All models are frozen pydantic models. Malformed or out-of-range input raises
:class:`~chainweave.errors.InputValidationError` naming the field, such as
``ChatRequest.temperature: Input should be less than or equal to 2``.

The seed systems' shapes are accepted and normalised: messages written as
``{"type": "human" | "ai" | "system", "content": ...}``, the legacy ``function`` role
and ``function_call`` field, OpenAI's nested tool and tool-call shapes, and the flat
``{"name", "description", "parameters"}`` function declaration.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Protocol, Self, runtime_checkable

from pydantic import ConfigDict, Field, ValidationError, model_validator

from chainweave._internal.model import StrictModel
from chainweave.errors import InputValidationError

__all__ = [
    "ChatModel",
    "ChatRequest",
    "ChatResponse",
    "ContentPart",
    "EmbeddingModel",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "FinishReason",
    "HealthStatus",
    "ImagePart",
    "ImageURL",
    "JsonSchemaFormat",
    "Message",
    "ModelInfo",
    "Provider",
    "ResponseFormat",
    "Role",
    "StreamChunk",
    "StreamError",
    "TextPart",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolChoice",
    "Usage",
    "normalize_finish_reason",
]

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error"]

_ROLE_ALIASES: dict[str, str] = {
    "human": "user",
    "ai": "assistant",
    "developer": "system",
    "function": "tool",
}

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "eos": "stop",
    "length": "length",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_calls": "tool_calls",
    "tool_use": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
    "refusal": "content_filter",
    "safety": "content_filter",
}


def normalize_finish_reason(raw: str | None) -> FinishReason | None:
    """Map a vendor's finish or stop reason onto stop/length/tool_calls/content_filter.

    ``None`` stays ``None`` (a stream chunk before the end); an unknown reason is
    ``"stop"``, and the vendor's word is kept in ``raw_finish_reason``.
    """
    if raw is None:
        return None
    return _FINISH_REASONS.get(raw.lower(), "stop")


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


class _Model(StrictModel):
    """Base of the public types: bad input raises InputValidationError naming the field."""

    model_config = ConfigDict(populate_by_name=True)

    @classmethod
    def _error_from(cls, exc: ValidationError, error_context: Any) -> InputValidationError:
        return _validation_error(cls.__name__, exc)


def _validation_error(owner: str, exc: ValidationError) -> InputValidationError:
    errors = [
        {"field": _location(err["loc"]), "message": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]
    lines = [f"{owner}.{e['field']}: {e['message']}" if e["field"] else f"{owner}: {e['message']}"
             for e in errors]
    return InputValidationError(
        "; ".join(lines),
        errors=errors,
        field=(errors[0]["field"] or None) if errors else None,
    )


# --- content ---------------------------------------------------------------------------


class TextPart(_Model):
    """A text part of a multi-part message."""

    type: Literal["text"] = "text"
    text: str


class ImageURL(_Model):
    """An image by URL (``https://`` or ``data:image/...;base64,``)."""

    url: str = Field(min_length=1)
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Model):
    """An image part of a multi-part message."""

    type: Literal["image_url"] = "image_url"
    image_url: ImageURL

    @model_validator(mode="before")
    @classmethod
    def _url_string(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("image_url"), str):
            return {**data, "image_url": {"url": data["image_url"]}}
        return data


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


# --- tools -----------------------------------------------------------------------------


def _json_text(value: Any) -> Any:
    """``value`` as JSON text; left as it is when it cannot be, for validation to report."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return value


class ToolCall(_Model):
    """A call the model asks the application to make. ``arguments`` is a JSON string."""

    id: str
    name: str = Field(min_length=1)
    arguments: str = "{}"

    @model_validator(mode="before")
    @classmethod
    def _wire_shape(cls, data: Any) -> Any:
        # OpenAI nests name/arguments under "function"; accept that shape too.
        if isinstance(data, dict) and isinstance(data.get("function"), dict):
            fn = data["function"]
            return {
                "id": data.get("id", ""),
                "name": fn.get("name", ""),
                "arguments": _json_text(fn.get("arguments", "{}")),
            }
        if isinstance(data, dict) and "arguments" in data:
            return {**data, "arguments": _json_text(data["arguments"])}
        return data

    def parsed_arguments(self) -> Any:
        """The arguments decoded from JSON.

        Raises:
            InputValidationError: when the model produced arguments that are not JSON.
        """
        try:
            return json.loads(self.arguments or "{}")
        except json.JSONDecodeError as exc:
            raise InputValidationError(
                f"tool call {self.name!r} has arguments that are not JSON: {exc}",
                field="arguments",
            ) from None


class ToolCallDelta(_Model):
    """A fragment of a tool call in a stream; fragments with one ``index`` join up."""

    index: int = Field(ge=0)
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class Tool(_Model):
    """A function the model may call, described by a JSON schema."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-.]+$")
    description: str = ""
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    strict: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _wire_shape(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("function"), dict):
            return dict(data["function"])
        return data


class ToolChoice(_Model):
    """Which tool use the model must make: ``auto``, ``none``, ``required`` or one tool.

    Accepts the strings ``"auto" | "none" | "required"`` (and Anthropic's ``"any"``),
    OpenAI's ``{"type": "function", "function": {"name": ...}}`` and Anthropic's
    ``{"type": "tool", "name": ...}``.
    """

    mode: Literal["auto", "none", "required", "tool"]
    name: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shapes(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"mode": "required" if data == "any" else data}
        if isinstance(data, dict) and "mode" not in data:
            kind = data.get("type")
            if kind == "function" and isinstance(data.get("function"), dict):
                return {"mode": "tool", "name": data["function"].get("name")}
            if kind == "tool":
                return {"mode": "tool", "name": data.get("name")}
            if kind in ("auto", "none", "required", "any"):
                return {"mode": "required" if kind == "any" else kind}
        return data

    @model_validator(mode="after")
    def _name_for_tool(self) -> Self:
        if (self.mode == "tool") != bool(self.name):
            raise ValueError("a name is required exactly when mode is 'tool'")
        return self


class JsonSchemaFormat(_Model):
    """A JSON schema the response must follow."""

    name: str = Field(default="response", min_length=1, max_length=64)
    schema_: dict[str, Any] = Field(alias="schema")
    description: str | None = None
    strict: bool | None = None


class ResponseFormat(_Model):
    """Plain text, any JSON object, or JSON following a schema."""

    type: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="before")
    @classmethod
    def _shapes(cls, data: Any) -> Any:
        return {"type": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _schema_when_needed(self) -> Self:
        if (self.type == "json_schema") != (self.json_schema is not None):
            raise ValueError("json_schema is required exactly when type is 'json_schema'")
        return self


# --- messages --------------------------------------------------------------------------


def _legacy_call_id(name: Any) -> str:
    """The id shared by a legacy ``function_call`` and the ``function`` message answering it."""
    return f"call_{name}"


class Message(_Model):
    """One chat message.

    Roles are ``system``, ``user``, ``assistant`` and ``tool``. ``content`` is text or a
    list of parts; an assistant message may carry ``tool_calls`` instead of text, and a
    ``tool`` message answers the call named by ``tool_call_id``.
    """

    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _seed_shapes(cls, data: Any) -> Any:
        if not isinstance(data, dict) or (
            # The common shape needs no rewriting; skip the copy on the hot path.
            "type" not in data and "function_call" not in data
            and not (isinstance(data.get("role"), str) and data["role"] in _ROLE_ALIASES)
        ):
            return data
        data = dict(data)
        if "role" not in data and "type" in data:
            data["role"] = data.pop("type")
        role = data.get("role")
        if isinstance(role, str) and role in _ROLE_ALIASES:
            data["role"] = _ROLE_ALIASES[role]
            if role == "function" and not data.get("tool_call_id") and data.get("name"):
                data["tool_call_id"] = _legacy_call_id(data["name"])
        call = data.pop("function_call", None)
        if isinstance(call, dict) and not data.get("tool_calls"):
            data["tool_calls"] = [{
                "id": _legacy_call_id(call.get("name", "")),
                "name": call.get("name", ""),
                "arguments": call.get("arguments", "{}"),
            }]
        return data

    @model_validator(mode="after")
    def _role_rules(self) -> Self:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs tool_call_id")
        if self.role in ("system", "user") and self.content is None:
            raise ValueError(f"a {self.role} message needs content")
        if self.role == "assistant" and self.content is None and not self.tool_calls:
            raise ValueError("an assistant message needs content or tool_calls")
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only assistant messages carry tool_calls")
        return self

    @property
    def text(self) -> str:
        """The message's text: the string content, or its text parts joined."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content if isinstance(p, TextPart))

    @classmethod
    def system(cls, content: str) -> Message:
        """A system message."""
        return cls(role="system", content=content)

    @classmethod
    def user(cls, content: str) -> Message:
        """A user message."""
        return cls(role="user", content=content)

    @classmethod
    def assistant(cls, content: str | None = None,
                  tool_calls: list[ToolCall] | None = None) -> Message:
        """An assistant message, with text, tool calls or both."""
        return cls(role="assistant", content=content, tool_calls=tool_calls)

    @classmethod
    def tool(cls, tool_call_id: str, content: str, name: str | None = None) -> Message:
        """The result of a tool call."""
        return cls(role="tool", tool_call_id=tool_call_id, content=content, name=name)


# --- requests and responses -----------------------------------------------------------


class ChatRequest(_Model):
    """A chat completion request, in one shape for every vendor.

    ``model`` may be left out to use the provider's default model. Vendor-specific body
    fields go in ``extra_body``; ``metadata`` travels with the request but is never sent.
    """

    model: str | None = Field(default=None, min_length=1)
    messages: list[Message] = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=1)
    stop: list[str] | None = None
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    seed: int | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    response_format: ResponseFormat | None = None
    request_id: str | None = None
    user: str | None = None
    timeout: float | None = Field(default=None, gt=0)
    metadata: dict[str, Any] = Field(default_factory=dict)
    extra_body: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _shapes(cls, data: Any) -> Any:
        if not isinstance(data, dict) or (
            "functions" not in data and not isinstance(data.get("stop"), str)
        ):
            return data
        data = dict(data)
        if isinstance(data.get("stop"), str):
            data["stop"] = [data["stop"]]
        if "functions" in data and "tools" not in data:
            data["tools"] = data.pop("functions")
        return data

    @model_validator(mode="after")
    def _tool_choice_names_a_tool(self) -> Self:
        choice = self.tool_choice
        if choice is not None and choice.mode == "tool":
            names = {t.name for t in self.tools or ()}
            if choice.name not in names:
                raise ValueError(f"tool_choice names {choice.name!r}, which is not in tools")
        return self

    @classmethod
    def from_prompt(cls, prompt: str, *, system: str | None = None, **params: Any) -> ChatRequest:
        """A request with one user message (and an optional system message)."""
        messages = [Message.system(system)] if system else []
        messages.append(Message.user(prompt))
        return cls(messages=messages, **params)


class Usage(_Model):
    """Token counts of one call (or a sum of calls), and cost when a price is known."""

    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    total_tokens: int = Field(default=0, ge=0)
    cost_usd: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _total(self) -> Self:
        if self.total_tokens == 0 and (self.prompt_tokens or self.completion_tokens):
            object.__setattr__(self, "total_tokens", self.prompt_tokens + self.completion_tokens)
        return self

    def __add__(self, other: Usage) -> Usage:
        if self.cost_usd is None and other.cost_usd is None:
            cost = None
        else:
            cost = (self.cost_usd or 0.0) + (other.cost_usd or 0.0)
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            cost_usd=cost,
        )


class ChatResponse(_Model):
    """A finished chat completion.

    ``finish_reason`` is normalised (see :func:`normalize_finish_reason`); the vendor's
    own word is kept in ``raw_finish_reason``. When the model refuses, ``refusal`` holds
    its explanation and ``finish_reason`` is ``content_filter``. ``attempts`` counts
    calls made to get it, retries and failovers included.
    """

    id: str
    model: str
    provider: str
    content: str = ""
    refusal: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    finish_reason: FinishReason = "stop"
    raw_finish_reason: str | None = None
    usage: Usage = Field(default_factory=Usage)
    latency_ms: float = Field(default=0.0, ge=0)
    cached: bool = False
    attempts: int = Field(default=1, ge=1)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def message(self) -> Message:
        """The reply as an assistant message, to append to a conversation."""
        content = (self.content or None) if self.tool_calls else self.content
        return Message.assistant(content, self.tool_calls or None)


class StreamError(_Model):
    """A failure delivered inside a stream, as the ``error`` of its last chunk.

    Streams raise their errors by default; a pipeline's ``StreamingProcessor`` with
    ``errors="event"`` turns them into a final chunk carrying one of these, with
    ``finish_reason="error"``, for consumers that forward chunks (SSE) and must not
    break off mid-stream.
    """

    error_type: str
    error_code: str
    message: str
    status_code: int | None = None
    retryable: bool = False
    retry_after: float | None = None

    @classmethod
    def from_exception(cls, exc: BaseException) -> StreamError:
        """The structured form of ``exc``; non-chainweave errors become ``internal_error``."""
        from chainweave._internal.redact import redact
        from chainweave.errors import ChainweaveError

        if isinstance(exc, ChainweaveError):
            return cls(error_type=exc.error_type, error_code=exc.error_code,
                       message=exc.message, status_code=exc.status_code,
                       retryable=exc.retryable, retry_after=exc.retry_after)
        return cls(error_type="internal_error", error_code="INTERNAL_ERROR",
                   message=redact(f"{type(exc).__name__}: {exc}"))

    def to_exception(self, **context: Any) -> Exception:
        """The chainweave error this describes, of its original class when known.

        ``context`` (``provider``, ``model``, ``node``) is passed to the error.
        """
        from chainweave.errors import ChainweaveError, ExecutionError

        classes: dict[str, type[ChainweaveError]] = {}
        pending: list[type[ChainweaveError]] = [ChainweaveError]
        while pending:
            current = pending.pop()
            classes.setdefault(current.error_type, current)
            pending.extend(current.__subclasses__())
        cls = classes.get(self.error_type, ExecutionError)
        return cls(self.message, status_code=self.status_code, retryable=self.retryable,
                   retry_after=self.retry_after, details={"error_code": self.error_code},
                   **context)


class StreamChunk(_Model):
    """One piece of a streamed completion.

    Text arrives in ``delta``, a refusal's text in ``refusal``, and tool-call fragments
    in ``tool_call_deltas``. The last
    chunk carries ``finish_reason``, the assembled ``tool_calls`` and, when the vendor
    reports it, ``usage``. ``cached`` is true on chunks replayed from a response cache;
    ``error`` is set only on a last chunk that reports a failure (see :class:`StreamError`).
    """

    delta: str = ""
    refusal: str | None = None
    tool_call_deltas: list[ToolCallDelta] = Field(default_factory=list)
    tool_calls: list[ToolCall] = Field(default_factory=list)
    finish_reason: FinishReason | None = None
    raw_finish_reason: str | None = None
    usage: Usage | None = None
    id: str | None = None
    model: str | None = None
    provider: str | None = None
    cached: bool = False
    error: StreamError | None = None


class EmbeddingRequest(_Model):
    """Texts to embed."""

    model: str | None = Field(default=None, min_length=1)
    input: list[str] = Field(min_length=1)
    dimensions: int | None = Field(default=None, gt=0)
    user: str | None = None
    request_id: str | None = None
    timeout: float | None = Field(default=None, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _single(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("input"), str):
            return {**data, "input": [data["input"]]}
        return data


class EmbeddingResponse(_Model):
    """One vector per input text, in input order."""

    model: str
    provider: str
    embeddings: list[list[float]]
    usage: Usage = Field(default_factory=Usage)
    latency_ms: float = Field(default=0.0, ge=0)


class ModelInfo(_Model):
    """A model a provider offers."""

    id: str
    provider: str
    owned_by: str | None = None
    display_name: str | None = None
    created: int | None = None
    context_window: int | None = None


def _now() -> datetime:
    return datetime.now(UTC)


class HealthStatus(_Model):
    """The result of a provider health check."""

    provider: str
    healthy: bool
    latency_ms: float | None = None
    error: str | None = None
    error_type: str | None = None
    checked_at: datetime = Field(default_factory=_now)


# --- protocols -------------------------------------------------------------------------


@runtime_checkable
class ChatModel(Protocol):
    """Anything that answers chat requests: an adapter, a manager, a pipeline, a mock."""

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """Answer ``request`` with one complete response."""
        ...

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        """Answer ``request`` as a stream of chunks; the last one has ``finish_reason``."""
        ...


@runtime_checkable
class Provider(ChatModel, Protocol):
    """A ChatModel that holds resources (connections) and must be closed when done."""

    async def aclose(self) -> None:
        """Release the provider's resources; the provider is not used afterwards."""
        ...


@runtime_checkable
class EmbeddingModel(Protocol):
    """Anything that embeds texts."""

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        """Embed every text in ``request.input``."""
        ...
