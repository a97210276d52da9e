"""The Anthropic Messages API adapter (``POST /v1/messages``, ``GET /v1/models``).

Requests in chainweave's shape are translated to Anthropic's: system messages become
the top-level ``system`` field, tool calls and tool results become ``tool_use`` and
``tool_result`` content blocks, and consecutive messages of one role are merged because
the API wants user and assistant turns to alternate. Anthropic has no embeddings
endpoint, so this adapter has no ``embed``.

Structured output has no native switch in this API version, so it is emulated:

* ``json_schema``: a tool named after the schema, with the schema as its
  ``input_schema``, is added and forced with ``tool_choice``; the tool's input is
  returned as JSON text in ``content`` with ``finish_reason="stop"``. The schema's top
  level must be an object (tool inputs always are).
* ``json_object``: one sentence asking for a single JSON object is added to ``system``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import aclosing, contextmanager
from datetime import datetime
from typing import Any, ClassVar

import httpx

from chainweave._internal.redact import get_logger
from chainweave._internal.sse import ServerSentEvent
from chainweave.errors import (
    AuthenticationError,
    ConfigurationError,
    InputValidationError,
    InvalidRequestError,
    MalformedResponseError,
    ModelNotFoundError,
    ProviderError,
    ProviderUnavailableError,
    QuotaExceededError,
    RateLimitError,
    RequestTooLargeError,
    StreamInterruptedError,
    error_for_status,
)
from chainweave.pricing import ModelPrice
from chainweave.providers.base import HTTPProvider, error_message, parse_retry_after
from chainweave.streaming import StreamAccumulator
from chainweave.types import (
    ChatRequest,
    ChatResponse,
    ImagePart,
    Message,
    ModelInfo,
    StreamChunk,
    TextPart,
    ToolCall,
    ToolCallDelta,
    Usage,
    normalize_finish_reason,
)

__all__ = ["AnthropicProvider"]

logger = get_logger("chainweave.providers.anthropic")

JSON_OBJECT_INSTRUCTION = "Respond with a single JSON object and no other text."

_ERRORS_BY_TYPE: Mapping[str, type[ProviderError]] = {
    "invalid_request_error": InvalidRequestError,
    "authentication_error": AuthenticationError,
    "permission_error": AuthenticationError,
    "billing_error": QuotaExceededError,
    "not_found_error": ModelNotFoundError,
    "request_too_large": RequestTooLargeError,
    "rate_limit_error": RateLimitError,
    "api_error": ProviderUnavailableError,
    "overloaded_error": ProviderUnavailableError,
}
_SPEND_LIMIT = "enforced_spend_limit_reached"
_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+);base64,(.*)", re.DOTALL)
_TOOL_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_UNSUPPORTED = ("frequency_penalty", "presence_penalty", "seed")
_CACHE_FIELDS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


class AnthropicProvider(HTTPProvider):
    """Chat with Claude models over the Anthropic Messages API.

    Args:
        api_key: The Anthropic key, sent as ``x-api-key``. Redacted everywhere.
        base_url: The API root; ``https://api.anthropic.com`` by default. A root
            ending in ``/v1`` is accepted too.
        default_model: The model used when a request names none.
        client: A shared ``httpx.AsyncClient``; one is made (and closed) when left out.
        timeout: Seconds, or an ``httpx.Timeout``; a request's own ``timeout`` wins.
        headers: Extra headers sent with every call.
        prices: Prices per model, added to the built-in table, for ``usage.cost_usd``.
        name: The name this adapter goes by in errors, logs and metrics.
        anthropic_version: The ``anthropic-version`` header.
        default_max_tokens: ``max_tokens`` for requests that set none; Anthropic
            requires the field.
        beta: Beta feature names, sent comma-joined as the ``anthropic-beta`` header.

    Raises:
        ConfigurationError: when ``default_max_tokens`` is not positive.
    """

    provider_name: ClassVar[str] = "anthropic"
    default_base_url: ClassVar[str | None] = "https://api.anthropic.com"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        default_model: str | None = None,
        client: httpx.AsyncClient | None = None,
        timeout: float | httpx.Timeout | None = None,
        headers: Mapping[str, str] | None = None,
        prices: Mapping[str, ModelPrice] | None = None,
        name: str | None = None,
        anthropic_version: str = "2023-06-01",
        default_max_tokens: int = 4096,
        beta: list[str] | None = None,
    ) -> None:
        super().__init__(api_key=api_key, base_url=base_url, default_model=default_model,
                         client=client, timeout=timeout, headers=headers, prices=prices,
                         name=name)
        if default_max_tokens < 1:
            raise ConfigurationError(
                f"default_max_tokens must be at least 1, got {default_max_tokens}",
                provider=self.name, field="default_max_tokens")
        self.anthropic_version = anthropic_version
        self.default_max_tokens = default_max_tokens
        self.beta = list(beta or [])
        root = self.base_url.removesuffix("/v1")
        self._messages_url = f"{root}/v1/messages"
        self._models_url = f"{root}/v1/models"

    def _headers(self) -> dict[str, str]:
        headers = {"anthropic-version": self.anthropic_version,
                   "content-type": "application/json"}
        if self.beta:
            headers["anthropic-beta"] = ",".join(self.beta)
        headers.update(super()._headers())
        if self._api_key:
            headers["x-api-key"] = self._api_key
        return headers

    # --- chat ---------------------------------------------------------------------------

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """Answer ``request`` with one complete response.

        Raises:
            ProviderError: the subclass matching what failed (see ``chainweave.errors``).
        """
        model = self._model_for(request.model)
        body = self._build_body(request, model, stream=False)
        started = time.perf_counter()
        payload = await self._request_json("POST", self._messages_url, model=model,
                                           body=body, timeout=self._timeout_for(request))
        latency_ms = (time.perf_counter() - started) * 1000
        with self._readable("message", model):
            return self._parse_message(payload, model, _forced_tool(request), latency_ms)

    @contextmanager
    def _readable(self, what: str, model: str) -> Iterator[None]:
        """Turn a reply that is JSON but not Anthropic's shape into MalformedResponseError."""
        try:
            yield
        except (TypeError, ValueError, AttributeError) as exc:  # InputValidationError too
            detail = exc.message if isinstance(exc, InputValidationError) else type(exc).__name__
            raise MalformedResponseError(
                f"{self.name} sent a {what} chainweave cannot read: {detail}",
                provider=self.name, model=model) from None

    def _parse_message(self, payload: Any, model: str, forced: str | None,
                       latency_ms: float) -> ChatResponse:
        blocks = payload.get("content") if isinstance(payload, dict) else None
        if not isinstance(blocks, list):
            raise MalformedResponseError(f"{self.name} returned a message without content",
                                         provider=self.name, model=model)
        blocks = [b for b in blocks if isinstance(b, dict)]
        texts = [b.get("text", "") for b in blocks if b.get("type") == "text"]
        calls = [ToolCall(id=b.get("id", ""), name=b.get("name", ""),
                          arguments=json.dumps(b.get("input") or {}))
                 for b in blocks if b.get("type") == "tool_use"]
        raw_reason = payload.get("stop_reason")
        raw_reason = raw_reason if isinstance(raw_reason, str) else None
        finish = normalize_finish_reason(raw_reason) or "stop"
        structured = [c for c in calls if c.name == forced]
        if structured:
            texts, calls = [structured[0].arguments], [c for c in calls if c.name != forced]
            finish = "stop" if finish == "tool_calls" else finish
        used = payload.get("model") or model
        return ChatResponse(
            id=payload.get("id") or "", model=used, provider=self.name,
            content="".join(texts), tool_calls=calls, finish_reason=finish,
            raw_finish_reason=raw_reason,
            usage=self._usage_from(used, payload.get("usage") or {}), latency_ms=latency_ms,
        )

    def _usage_from(self, model: str, raw: Mapping[str, Any]) -> Usage:
        """Anthropic counts cached prompt tokens apart from ``input_tokens``; add them."""
        prompt = sum(int(raw.get(field) or 0) for field in _CACHE_FIELDS)
        return self._usage(model, prompt, int(raw.get("output_tokens") or 0))

    # --- request body -------------------------------------------------------------------

    def _build_body(self, request: ChatRequest, model: str, *, stream: bool) -> dict[str, Any]:
        try:
            system, messages = _convert_messages(request.messages)
            body: dict[str, Any] = {
                "model": model, "messages": messages,
                "max_tokens": request.max_tokens or self.default_max_tokens,
            }
            _add_sampling(body, request)
            _add_tools(body, request)
            _add_response_format(body, system, request)
        except InvalidRequestError as exc:
            raise InvalidRequestError(exc.message, field=exc.field, provider=self.name,
                                      model=model) from None
        if system:
            body["system"] = "\n\n".join(system)
        if request.user:
            body["metadata"] = {"user_id": request.user}
        if stream:
            body["stream"] = True
        dropped = [p for p in _UNSUPPORTED if getattr(request, p) is not None]
        if dropped:
            logger.debug("%s: Anthropic does not support %s; dropped for %s",
                         self.name, ", ".join(dropped), model)
        body.update(request.extra_body)
        return body

    # --- streaming ----------------------------------------------------------------------

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        """Answer ``request`` as chunks; the last carries finish reason, tool calls, usage.

        Tool-call deltas are numbered by tool call (0, 1, ...), not by content block.

        Raises:
            StreamInterruptedError: when the stream ends before ``message_stop``;
                ``details`` say how much had arrived (``partial_content``, ``chunks``).
            ProviderError: the subclass matching any other failure, including an
                ``error`` event sent mid-stream, whose ``details`` carry the same progress.
        """
        model = self._model_for(request.model)
        body = self._build_body(request, model, stream=True)
        state = _StreamState(self.name, model, _forced_tool(request))
        events = self._stream_events(self._messages_url, model=model, body=body,
                                     timeout=self._timeout_for(request))
        try:
            async with aclosing(events):
                async for event in events:
                    chunk = self._on_event(event, state)
                    if chunk is not None:
                        state.acc.add(chunk)
                        yield chunk
                    if state.stopped:
                        break  # message_stop ends it; what the socket does next is moot
        except StreamInterruptedError as exc:
            exc.details.update(state.progress())
            raise
        if not state.stopped:
            raise StreamInterruptedError(
                f"{self.name} stream ended without message_stop",
                provider=self.name, model=model, details=state.progress())

    def _on_event(self, event: ServerSentEvent, state: _StreamState) -> StreamChunk | None:
        data = self._decode_json(event.data.encode(), state.model)
        if not isinstance(data, dict):
            raise MalformedResponseError(f"{self.name} sent a stream event that is not an "
                                         "object", provider=self.name, model=state.model)
        kind = data.get("type") or event.event
        if kind == "error":
            error = self._error_from_response(200, httpx.Headers(), event.data.encode(),
                                              state.model)
            error.details.update(state.progress())
            raise error
        with self._readable(f"{kind} event", state.model):
            if kind == "message_stop":
                state.stopped = True
                return self._final_chunk(state)
            return state.feed(kind, data)

    def _final_chunk(self, state: _StreamState) -> StreamChunk:
        finish = normalize_finish_reason(state.stop_reason) or "stop"
        if state.forced is not None and finish == "tool_calls":
            finish = "stop"
        model = state.response_model or state.model
        return StreamChunk(
            finish_reason=finish, raw_finish_reason=state.stop_reason,
            tool_calls=state.acc.tool_calls(), usage=self._usage_from(model, state.usage),
            id=state.id, model=model, provider=self.name,
        )

    # --- models -------------------------------------------------------------------------

    async def list_models(self) -> list[ModelInfo]:
        """Every model the key can use, following ``has_more``/``after_id`` pagination.

        Raises:
            ProviderError: the subclass matching what failed.
        """
        models: list[ModelInfo] = []
        params = {"limit": "1000"}
        while True:
            page = await self._request_json("GET", self._models_url, model=None,
                                            params=params)
            data = page.get("data") if isinstance(page, dict) else None
            if not isinstance(data, list):
                raise MalformedResponseError(f"{self.name} returned a model list without "
                                             "data", provider=self.name)
            data = [item for item in data if isinstance(item, dict)]
            models.extend(self._model_info(item) for item in data)
            cursor = page.get("last_id") or (data[-1].get("id") if data else None)
            if not page.get("has_more") or not cursor or cursor == params.get("after_id"):
                return models
            params = {"limit": "1000", "after_id": cursor}

    def _model_info(self, item: Mapping[str, Any]) -> ModelInfo:
        return ModelInfo(id=item.get("id", ""), provider=self.name, owned_by="anthropic",
                         display_name=item.get("display_name"),
                         created=_epoch(item.get("created_at")))

    # --- errors -------------------------------------------------------------------------

    def _error_from_response(self, status: int, headers: httpx.Headers, body: bytes,
                             model: str | None) -> ProviderError:
        """Map an Anthropic error body (``{"type": "error", "error": {...}}``) to an error.

        Also maps the ``error`` event of a stream, which arrives with status 200: the
        error type alone decides, ``status_code`` stays unset, and an unknown type is
        taken for a server-side failure.
        """
        error = _error_object(body)
        kind = str(error.get("type") or "")
        message = str(error.get("message") or error_message(body, f"HTTP {status}"))
        text = f"{self.name}: {kind}: {message}" if kind else f"{self.name}: {message}"
        http_status = status if status >= 400 else None
        context: dict[str, Any] = {
            "retry_after": parse_retry_after(headers), "provider": self.name, "model": model,
            "details": {"error_type": kind or None, "request_id": headers.get("request-id")},
        }
        details = error.get("details")
        code = details.get("error_code") if isinstance(details, dict) else None
        cls = _error_class(http_status, kind, code)
        if cls is not None:
            return cls(text, status_code=http_status, **context)
        if http_status is None:
            return ProviderUnavailableError(text, **context)
        return error_for_status(http_status, text, **context)


def _error_object(body: bytes) -> dict[str, Any]:
    """The ``error`` object of an Anthropic error body, or ``{}`` for any other body."""
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return {}
    return error if isinstance(error, dict) else {}


def _error_class(status: int | None, kind: str, code: str | None) -> type[ProviderError] | None:
    """The class for an error type and status; ``None`` to fall back on the status.

    A 529 (overloaded) needs no rule of its own: its ``overloaded_error`` type, or the
    5xx fallback for a body without one, makes it ProviderUnavailableError.
    """
    if status == 404 and kind in ("", "invalid_request_error", "not_found_error"):
        return ModelNotFoundError
    if kind == "rate_limit_error" and code == _SPEND_LIMIT:
        return QuotaExceededError
    return _ERRORS_BY_TYPE.get(kind)


# --- request translation (pure) --------------------------------------------------------


def _convert_messages(messages: Sequence[Message]) -> tuple[list[str], list[dict[str, Any]]]:
    """Split out system texts; turn the rest into alternating Anthropic turns."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            if message.text:
                system.append(message.text)
            continue
        role = "user" if message.role == "tool" else message.role
        blocks = _blocks(message)
        if not blocks:
            continue  # e.g. an empty reply: a turn without blocks is refused
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns


def _blocks(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        content = message.content
        return [{"type": "tool_result", "tool_use_id": message.tool_call_id,
                 "content": content if isinstance(content, str) else _content_blocks(content)}]
    blocks = _content_blocks(message.content)
    blocks.extend(_tool_use_block(call) for call in message.tool_calls or ())
    return blocks


def _content_blocks(content: str | Sequence[TextPart | ImagePart] | None,
                    ) -> list[dict[str, Any]]:
    """Text and image blocks; empty text is left out, as Anthropic refuses it."""
    if not content:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [_image_block(part) if isinstance(part, ImagePart)
            else {"type": "text", "text": part.text}
            for part in content if isinstance(part, ImagePart) or part.text]


def _image_block(part: ImagePart) -> dict[str, Any]:
    url = part.image_url.url
    if not url.startswith("data:"):
        return {"type": "image", "source": {"type": "url", "url": url}}
    match = _DATA_URL.fullmatch(url)
    if match is None:
        raise InvalidRequestError("an image data URL must look like "
                                  "'data:image/png;base64,...'", field="messages")
    return {"type": "image", "source": {"type": "base64", "media_type": match[1],
                                        "data": match[2]}}


def _tool_use_block(call: ToolCall) -> dict[str, Any]:
    try:
        arguments = call.parsed_arguments()
    except InputValidationError as exc:
        raise InvalidRequestError(exc.message, field="messages") from None
    return {"type": "tool_use", "id": call.id, "name": call.name, "input": arguments}


def _add_sampling(body: dict[str, Any], request: ChatRequest) -> None:
    if request.temperature is not None and request.temperature > 1:
        raise InvalidRequestError(f"Anthropic accepts a temperature from 0 to 1, got "
                                  f"{request.temperature}", field="temperature")
    for field in ("temperature", "top_p", "top_k"):
        value = getattr(request, field)
        if value is not None:
            body[field] = value
    if request.stop:
        body["stop_sequences"] = list(request.stop)


def _add_tools(body: dict[str, Any], request: ChatRequest) -> None:
    if request.tools:
        body["tools"] = [{"name": t.name, "description": t.description,
                          "input_schema": t.parameters} for t in request.tools]
    choice = request.tool_choice
    if choice is not None:
        kind = {"required": "any"}.get(choice.mode, choice.mode)
        body["tool_choice"] = ({"type": "tool", "name": choice.name} if kind == "tool"
                               else {"type": kind})


def _forced_tool(request: ChatRequest) -> str | None:
    """The name of the tool that carries a ``json_schema`` answer, if one is asked for."""
    fmt = request.response_format
    if fmt is None or fmt.json_schema is None:
        return None
    return _TOOL_NAME_UNSAFE.sub("_", fmt.json_schema.name)[:64]


def _add_response_format(body: dict[str, Any], system: list[str],
                         request: ChatRequest) -> None:
    fmt = request.response_format
    if fmt is not None and fmt.type == "json_object":
        system.append(JSON_OBJECT_INSTRUCTION)
    name = _forced_tool(request)
    if fmt is None or fmt.json_schema is None or name is None:
        return
    if any(t.name == name for t in request.tools or ()):
        raise InvalidRequestError(f"response_format schema name {name!r} is also a tool "
                                  "name; rename one", field="response_format")
    description = fmt.json_schema.description or "Give the answer in this structure."
    body.setdefault("tools", []).append(
        {"name": name, "description": description, "input_schema": fmt.json_schema.schema_})
    body["tool_choice"] = {"type": "tool", "name": name}


def _epoch(stamp: Any) -> int | None:
    if not isinstance(stamp, str):
        return None
    try:
        return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


# --- stream state ----------------------------------------------------------------------


class _StreamState:
    """What one stream has said so far, and the chunk each event turns into."""

    def __init__(self, provider: str, model: str, forced: str | None) -> None:
        self.provider = provider
        self.model = model
        self.forced = forced
        self.acc = StreamAccumulator()
        self.blocks: dict[int, str] = {}  # block index -> "text" | "tool" | "json"
        self.tools: dict[int, int] = {}  # block index -> tool-call number (0, 1, ...)
        self.usage: dict[str, Any] = {}
        self.stop_reason: str | None = None
        self.stopped = False
        self.id: str | None = None
        self.response_model: str | None = None

    def progress(self) -> dict[str, Any]:
        """How much arrived, for the ``details`` of an error that ends the stream.

        ``partial_content`` and ``chunks`` are the keys every adapter sends.
        """
        return {**self.acc.progress(), "text_chars": len(self.acc.text),
                "tool_calls": len(self.acc.tool_calls()), "stop_reason": self.stop_reason}

    def feed(self, kind: str, data: dict[str, Any]) -> StreamChunk | None:
        """Fold one event in; return the chunk to yield, if the event carries one."""
        if kind == "message_start":
            message = data.get("message") or {}
            self.id, self.response_model = message.get("id"), message.get("model")
            self.usage.update(message.get("usage") or {})
        elif kind == "message_delta":
            reason = (data.get("delta") or {}).get("stop_reason")
            self.stop_reason = reason if isinstance(reason, str) else self.stop_reason
            self.usage.update(data.get("usage") or {})  # counts here are cumulative
        elif kind == "content_block_start":
            return self._block_start(int(data.get("index", 0)), data.get("content_block") or {})
        elif kind == "content_block_delta":
            return self._block_delta(int(data.get("index", 0)), data.get("delta") or {})
        return None  # ping, content_block_stop, and event types added later

    def _block_start(self, index: int, block: dict[str, Any]) -> StreamChunk | None:
        kind = block.get("type")
        if kind == "tool_use" and block.get("name") == self.forced:
            self.blocks[index] = "json"
        elif kind == "tool_use":
            self.blocks[index] = "tool"
            number = self.tools.setdefault(index, len(self.tools))
            return self._chunk(tool_call_deltas=[ToolCallDelta(
                index=number, id=block.get("id"), name=block.get("name"))])
        elif kind == "text":
            self.blocks[index] = "text"
            if block.get("text"):
                return self._chunk(delta=block["text"])
        return None

    def _block_delta(self, index: int, delta: dict[str, Any]) -> StreamChunk | None:
        kind, block = delta.get("type"), self.blocks.get(index)
        if kind == "text_delta" and block == "text" and delta.get("text"):
            return self._chunk(delta=delta["text"])
        if kind == "input_json_delta" and delta.get("partial_json"):
            if block == "json":
                return self._chunk(delta=delta["partial_json"])
            if block == "tool":
                return self._chunk(tool_call_deltas=[ToolCallDelta(
                    index=self.tools[index], arguments=delta["partial_json"])])
        return None  # thinking and signature deltas are not part of the answer

    def _chunk(self, **fields: Any) -> StreamChunk:
        return StreamChunk(id=self.id, model=self.response_model or self.model,
                           provider=self.provider, **fields)
