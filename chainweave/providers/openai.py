"""OpenAI Chat Completions, and every server that speaks it.

:class:`OpenAIProvider` talks to ``api.openai.com``; :class:`OpenAICompatibleProvider`
is the same adapter pointed at vLLM, Ollama, llama.cpp server, LM Studio or any other
server with an OpenAI-shaped ``/chat/completions``. OpenRouter and Azure OpenAI are
subclasses in their own modules: they differ only in URLs, headers and defaults.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any, ClassVar

import httpx

from chainweave._internal.http import as_timeout
from chainweave._internal.redact import get_logger
from chainweave.errors import (
    ContentFilteredError,
    InputValidationError,
    MalformedResponseError,
    ModelNotFoundError,
    ProviderError,
    QuotaExceededError,
    StreamInterruptedError,
    error_for_status,
)
from chainweave.providers.base import HTTPProvider, error_message, parse_retry_after
from chainweave.streaming import StreamAccumulator
from chainweave.types import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    Message,
    ModelInfo,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    Usage,
    normalize_finish_reason,
)

__all__ = ["OpenAICompatibleProvider", "OpenAIProvider"]

logger = get_logger("chainweave.providers.openai")

_QUOTA_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached"})
_NOT_FOUND_CODES = frozenset({"model_not_found", "DeploymentNotFound", "NotFound"})
_FILTER_CODES = frozenset({"content_filter", "content_policy_violation",
                           "ResponsibleAIPolicyViolation"})


class OpenAIProvider(HTTPProvider):
    """The OpenAI Chat Completions API.

    Args:
        organization: Sent as ``OpenAI-Organization`` when given.
        project: Sent as ``OpenAI-Project`` when given.
        stream_usage: Ask for token usage on the last stream chunk
            (``stream_options.include_usage``); turn off for servers that reject it.
        **kwargs: See :class:`~chainweave.providers.base.HTTPProvider`.
    """

    provider_name: ClassVar[str] = "openai"
    default_base_url: ClassVar[str | None] = "https://api.openai.com/v1"
    #: Whether the server accepts ``top_k`` (OpenAI does not; most compatible servers do).
    sends_top_k: ClassVar[bool] = False
    #: Whether a stream must end with ``data: [DONE]``; some compatible servers never
    #: send it, and there a clean end after a finish reason is accepted.
    requires_done_marker: ClassVar[bool] = True
    #: The body field for ``max_tokens``: OpenAI's own API takes
    #: ``max_completion_tokens`` (its reasoning models refuse ``max_tokens``). Set it on
    #: an instance to override, e.g. for an Azure deployment of a reasoning model.
    max_tokens_field: str = "max_completion_tokens"

    def __init__(self, *, organization: str | None = None, project: str | None = None,
                 stream_usage: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.organization = organization
        self.project = project
        self.stream_usage = stream_usage

    def _headers(self) -> dict[str, str]:
        headers = super()._headers()
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        if self.organization:
            headers["OpenAI-Organization"] = self.organization
        if self.project:
            headers["OpenAI-Project"] = self.project
        return headers

    # --- URLs; Azure overrides these ----------------------------------------------------

    def _url(self, operation: str, model: str | None) -> str:
        return f"{self.base_url}/{operation}"

    def _params(self) -> dict[str, str] | None:
        return None

    def _body_model(self, model: str) -> dict[str, str]:
        return {"model": model}

    # --- chat ---------------------------------------------------------------------------

    def build_body(self, request: ChatRequest, model: str, *, stream: bool) -> dict[str, Any]:
        """The JSON body for ``request``; public so callers can inspect what is sent."""
        body: dict[str, Any] = {**self._body_model(model),
                                "messages": [message_to_wire(m) for m in request.messages]}
        for key in ("temperature", "top_p", "frequency_penalty", "presence_penalty", "seed",
                    "user"):
            value = getattr(request, key)
            if value is not None:
                body[key] = value
        if request.max_tokens is not None:
            body[self.max_tokens_field] = request.max_tokens
        if request.top_k is not None:
            if self.sends_top_k:
                body["top_k"] = request.top_k
            else:
                logger.debug("%s does not accept top_k; dropped", self.name)
        if request.stop:
            body["stop"] = request.stop
        if request.tools:
            body["tools"] = [_tool_to_wire(t.name, t.description, t.parameters, t.strict)
                             for t in request.tools]
        if request.tool_choice is not None:
            choice = request.tool_choice
            body["tool_choice"] = (
                {"type": "function", "function": {"name": choice.name}}
                if choice.mode == "tool" else choice.mode
            )
        if request.response_format is not None:
            body["response_format"] = request.response_format.model_dump(
                mode="json", by_alias=True, exclude_none=True)
        if stream:
            body["stream"] = True
            if self.stream_usage:
                body["stream_options"] = {"include_usage": True}
        body.update(request.extra_body)
        return body

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """Send ``request`` and return the whole completion."""
        model = self._model_for(request.model)
        started = time.perf_counter()
        data = await self._request_json(
            "POST", self._url("chat/completions", model), model=model,
            body=self.build_body(request, model, stream=False), params=self._params(),
            timeout=self._timeout_for(request),
        )
        latency_ms = (time.perf_counter() - started) * 1000
        return self._parse_completion(data, model, latency_ms)

    def _parse_completion(self, data: Any, model: str, latency_ms: float) -> ChatResponse:
        if not isinstance(data, dict):
            raise self._malformed("a completion that is not an object", model)
        if "error" in data and not data.get("choices"):
            raise self._error_from_body(data, 200, httpx.Headers(), model)
        try:
            choice = _first_choice(data["choices"])
            message, raw_finish = choice["message"], choice.get("finish_reason")
            refusal = message.get("refusal") or None
            used = str(data.get("model") or model)  # Azure: the model behind the deployment
            return ChatResponse(
                id=str(data.get("id") or ""), model=used, provider=self.name,
                content=message.get("content") or "", refusal=refusal,
                tool_calls=_tool_calls(message),
                finish_reason="content_filter" if refusal else (
                    normalize_finish_reason(raw_finish) or "stop"),
                raw_finish_reason="refusal" if refusal else raw_finish,
                usage=self._wire_usage(data.get("usage"), used), latency_ms=latency_ms,
            )
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
            raise self._malformed(f"a completion missing its parts ({exc!r})", model) from None

    def _wire_usage(self, usage: Any, model: str) -> Usage:
        if not isinstance(usage, dict):
            return Usage()
        cost = usage.get("cost")
        return self._usage(model, int(usage.get("prompt_tokens") or 0),
                           int(usage.get("completion_tokens") or 0),
                           float(cost) if isinstance(cost, int | float) else None)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        """Send ``request`` with ``stream: true`` and yield chunks as they arrive.

        The last chunk has ``finish_reason``, the assembled ``tool_calls`` and usage.

        Raises:
            StreamInterruptedError: when the stream ends before ``data: [DONE]`` (for
                OpenAI-compatible servers: before a finish reason, since some never send
                ``[DONE]``); ``details`` hold ``partial_content`` and ``chunks``.
        """
        model = self._model_for(request.model)
        acc = StreamAccumulator()
        done = False
        events = self._stream_events(
            self._url("chat/completions", model), model=model,
            body=self.build_body(request, model, stream=True), params=self._params(),
            timeout=self._timeout_for(request),
        )
        try:
            async with aclosing(events):
                async for event in events:
                    if event.data == "[DONE]":
                        done = True
                        break
                    chunk = self._parse_chunk(self._decode_json(event.data.encode(), model),
                                              model)
                    acc.add(chunk)
                    if chunk.delta or chunk.tool_call_deltas or chunk.refusal:
                        yield chunk
        except StreamInterruptedError as exc:
            exc.details.update(acc.progress())
            raise
        if not done and (self.requires_done_marker or acc.finish_reason is None):
            raise StreamInterruptedError(
                f"{self.name} stream ended before [DONE] after {len(acc.text)} characters",
                provider=self.name, model=model, details=acc.progress())
        yield self._final_chunk(acc, model)

    def _final_chunk(self, acc: StreamAccumulator, model: str) -> StreamChunk:
        try:
            calls = acc.tool_calls()
        except InputValidationError as exc:  # e.g. fragments that never named their tool
            raise self._malformed(f"tool-call fragments that do not add up ({exc.message})",
                                  model) from None
        refused = acc.refusal is not None
        used = acc.model or model
        return StreamChunk(
            finish_reason="content_filter" if refused else (acc.finish_reason or "stop"),
            raw_finish_reason="refusal" if refused else acc.raw_finish_reason,
            tool_calls=calls, usage=acc.usage, id=acc.id, model=used, provider=self.name,
        )

    def _parse_chunk(self, data: Any, model: str) -> StreamChunk:
        """One ``chat.completion.chunk``; the adapter holds its finish for the last chunk."""
        if not isinstance(data, dict):
            raise self._malformed("a stream chunk that is not an object", model)
        if "error" in data:
            raise self._error_from_body(data, 200, httpx.Headers(), model)
        try:
            used = str(data.get("model") or model)
            usage = self._wire_usage(data["usage"], used) if data.get("usage") else None
            choice = _first_choice(data.get("choices") or [{}])
            delta: dict[str, Any] = choice.get("delta") or {}
            raw_finish = choice.get("finish_reason")
            fragments = [
                ToolCallDelta(index=tc.get("index", i), id=tc.get("id"),
                              name=(tc.get("function") or {}).get("name"),
                              arguments=(tc.get("function") or {}).get("arguments") or "")
                for i, tc in enumerate(delta.get("tool_calls") or ())
            ]
            return StreamChunk(
                delta=delta.get("content") or "", refusal=delta.get("refusal") or None,
                tool_call_deltas=fragments, finish_reason=normalize_finish_reason(raw_finish),
                raw_finish_reason=raw_finish, usage=usage, id=data.get("id"),
                model=data.get("model"), provider=self.name,
            )
        except (AttributeError, TypeError, ValueError) as exc:
            raise self._malformed(f"a stream chunk out of shape ({exc!r})", model) from None

    # --- embeddings and models ------------------------------------------------------------

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        """Embed each text of ``request.input``; vectors come back in input order."""
        model = self._model_for(request.model)
        body: dict[str, Any] = {**self._body_model(model), "input": request.input,
                                "encoding_format": "float"}
        if request.dimensions is not None:
            body["dimensions"] = request.dimensions
        if request.user is not None:
            body["user"] = request.user
        started = time.perf_counter()
        data = await self._request_json(
            "POST", self._url("embeddings", model), model=model, body=body,
            params=self._params(),
            timeout=as_timeout(request.timeout) if request.timeout else None)
        try:
            rows = sorted(data["data"], key=lambda row: row["index"])
            vectors = [[float(x) for x in row["embedding"]] for row in rows]
        except (KeyError, TypeError, ValueError) as exc:
            raise self._malformed(f"an embedding response out of shape ({exc!r})", model) from None
        usage = data.get("usage") or {}
        return EmbeddingResponse(
            model=str(data.get("model") or model), provider=self.name, embeddings=vectors,
            usage=self._usage(model, int(usage.get("prompt_tokens") or 0), 0),
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    async def list_models(self) -> list[ModelInfo]:
        """The models the server lists at ``GET /models``."""
        data = await self._request_json("GET", self._url("models", None), model=None,
                                        params=self._params())
        try:
            return [ModelInfo(id=str(m["id"]), provider=self.name, owned_by=m.get("owned_by"),
                              created=m.get("created")) for m in data["data"]]
        except (KeyError, TypeError) as exc:
            raise self._malformed(f"a model list out of shape ({exc!r})", None) from None

    # --- errors -------------------------------------------------------------------------

    def _malformed(self, what: str, model: str | None) -> MalformedResponseError:
        return MalformedResponseError(f"{self.name} returned {what}", provider=self.name,
                                      model=model)

    def _error_from_response(self, status: int, headers: httpx.Headers, body: bytes,
                             model: str | None) -> ProviderError:
        """Map an OpenAI-style error response (``{"error": {message, type, code}}``)."""
        try:
            data = self._decode_json(body, model)
        except MalformedResponseError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("error"), dict | str):
            return self._error_from_body(data, status, headers, model)
        return error_for_status(status, error_message(body, f"HTTP {status}"),
                                retry_after=parse_retry_after(headers), provider=self.name,
                                model=model)

    def _error_from_body(self, data: Mapping[str, Any], status: int, headers: httpx.Headers,
                         model: str | None) -> ProviderError:
        """The one mapping from an OpenAI-shaped error object to a chainweave error.

        OpenRouter puts the HTTP status in ``error.code`` (also in 200 bodies and stream
        chunks); Azure puts ``content_filter`` or ``DeploymentNotFound`` there.
        """
        err = data["error"] if isinstance(data["error"], dict) else {"message": data["error"]}
        code = err.get("code")
        if isinstance(code, int) and status < 400:
            status = code
        elif status < 400:
            status = 500
        vendor = str(code or err.get("type") or "")
        inner = err.get("innererror")
        inner_code = str(inner.get("code", "")) if isinstance(inner, dict) else ""
        message = f"{self.name}: {err.get('message') or vendor or f'HTTP {status}'}"
        ctx: dict[str, Any] = {
            "status_code": status, "provider": self.name, "model": model,
            "details": {k: v for k, v in (("vendor_code", vendor), ("type", err.get("type")),
                                          ("param", err.get("param"))) if v},
        }
        if vendor in _QUOTA_CODES or err.get("type") in _QUOTA_CODES:
            return QuotaExceededError(message, **ctx)
        if vendor in _NOT_FOUND_CODES:
            return ModelNotFoundError(message, **ctx)
        if vendor in _FILTER_CODES or inner_code in _FILTER_CODES:
            return ContentFilteredError(message, **ctx)
        ctx.pop("status_code")
        return error_for_status(status, message, retry_after=parse_retry_after(headers), **ctx)


class OpenAICompatibleProvider(OpenAIProvider):
    """Any server with an OpenAI-shaped API: vLLM, Ollama, llama.cpp, LM Studio, TGI.

    ``base_url`` is required (for example ``http://localhost:11434/v1`` for Ollama);
    ``api_key`` is optional, since many local servers need none. ``top_k`` is sent.
    """

    provider_name: ClassVar[str] = "openai_compatible"
    default_base_url: ClassVar[str | None] = None
    sends_top_k: ClassVar[bool] = True
    requires_done_marker: ClassVar[bool] = False
    max_tokens_field = "max_tokens"


def _first_choice(choices: list[Any]) -> dict[str, Any]:
    """Choice 0: with ``n`` > 1 the others are ignored, never merged into it."""
    for choice in choices:
        if choice.get("index", 0) == 0:
            return choice  # type: ignore[no-any-return]
    return {}


def _tool_calls(message: dict[str, Any]) -> list[ToolCall]:
    """A message's tool calls (legacy ``function_call`` too); a missing id is made up."""
    calls = [ToolCall.model_validate({**c, "id": c.get("id") or f"call_{i}"})
             for i, c in enumerate(message.get("tool_calls") or ())]
    if not calls and isinstance(message.get("function_call"), dict):
        fn = message["function_call"]
        calls = [ToolCall(id=f"call_{fn.get('name', '')}", name=fn.get("name", ""),
                          arguments=fn.get("arguments") or "{}")]
    return calls


def _tool_to_wire(name: str, description: str, parameters: dict[str, Any],
                  strict: bool | None) -> dict[str, Any]:
    function: dict[str, Any] = {"name": name, "parameters": parameters}
    if description:
        function["description"] = description
    if strict is not None:
        function["strict"] = strict
    return {"type": "function", "function": function}


def message_to_wire(message: Message) -> dict[str, Any]:
    """One message in OpenAI's shape."""
    wire: dict[str, Any] = {"role": message.role}
    content = message.content
    if isinstance(content, list):
        wire["content"] = [part.model_dump(mode="json", exclude_none=True) for part in content]
    else:
        wire["content"] = content
    if message.name is not None and message.role != "tool":
        wire["name"] = message.name
    if message.tool_calls:
        wire["tool_calls"] = [
            {"id": c.id, "type": "function",
             "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        wire["tool_call_id"] = message.tool_call_id
    return wire
