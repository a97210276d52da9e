"""What every HTTP wire adapter shares: the client, timeouts, error plumbing, health.

An adapter subclasses :class:`HTTPProvider`, translates requests and responses for its
wire format, and maps its vendor's error bodies in one method,
``_error_from_response``. Transport failures (timeouts, refused or reset connections)
are mapped here, once, for every adapter.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncGenerator, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, ClassVar, Self

import httpx

from chainweave._internal.http import (
    DEFAULT_TIMEOUT,
    as_timeout,
    clean_header,
    clean_secret,
    is_timeout,
    is_transport_error,
    make_client,
)
from chainweave._internal.redact import get_logger, mask, redact
from chainweave._internal.sse import ServerSentEvent, iter_sse
from chainweave._internal.values import duration_seconds
from chainweave.errors import (
    InvalidRequestError,
    MalformedResponseError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    StreamInterruptedError,
)
from chainweave.pricing import ModelPrice, cost_usd, price_for
from chainweave.types import ChatRequest, HealthStatus, ModelInfo, Usage

__all__ = ["DEFAULT_TIMEOUT", "HTTPProvider", "make_client", "parse_retry_after"]

logger = get_logger("chainweave.providers")

_ERROR_SNIPPET = 500

def _parse_duration(value: str) -> float | None:
    """OpenAI's reset headers: ``"1s"``, ``"6m0s"``, ``"20ms"``, ``"1h2m3.5s"``."""
    try:
        return duration_seconds(value) if value else None
    except ValueError:
        return None


def _parse_timestamp(value: str, now: datetime) -> float | None:
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _seconds(value: str | None, divisor: float = 1.0) -> float | None:
    """A finite, non-negative number of seconds, or None for anything else."""
    try:
        seconds = float(value) / divisor if value is not None else math.nan
    except ValueError:
        return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


#: The longest wait ``parse_retry_after`` reports: a date years ahead is not advice.
MAX_RETRY_AFTER = 86_400.0


def parse_retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait before retrying, at most :data:`MAX_RETRY_AFTER`; see _retry_after."""
    wait = _retry_after(headers, now)
    return None if wait is None else min(wait, MAX_RETRY_AFTER)


def _retry_after(headers: Mapping[str, str], now: datetime | None) -> float | None:
    """Seconds to wait before retrying, from whatever the vendor sent.

    In order: ``retry-after-ms``; ``Retry-After`` as seconds or an HTTP-date; then the
    reset time of each exhausted limit (OpenAI's ``x-ratelimit-reset-*`` durations,
    Anthropic's ``anthropic-ratelimit-*-reset`` timestamps), the longest of them.
    """
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    lowered = {k.lower(): v for k, v in headers.items()}
    if (wait := _seconds(lowered.get("retry-after-ms"), 1000)) is not None:
        return wait
    if (value := lowered.get("retry-after")) is not None:
        if (wait := _seconds(value)) is not None:
            return wait
        try:
            return max(0.0, (parsedate_to_datetime(value) - now).total_seconds())
        except (TypeError, ValueError):
            pass
    waits: list[float] = []
    for kind in ("requests", "tokens", "input-tokens", "output-tokens"):
        if lowered.get(f"x-ratelimit-remaining-{kind}") == "0":
            reset = _parse_duration(lowered.get(f"x-ratelimit-reset-{kind}", ""))
            if reset is not None:
                waits.append(reset)
        if lowered.get(f"anthropic-ratelimit-{kind}-remaining") == "0":
            stamp = lowered.get(f"anthropic-ratelimit-{kind}-reset", "")
            reset = _parse_timestamp(stamp, now) if stamp else None
            if reset is not None:
                waits.append(reset)
    return max(waits) if waits else None


class HTTPProvider:
    """Base of the HTTP wire adapters.

    Args:
        api_key: The vendor key. It is registered for redaction and never shown.
        base_url: The API root; the class's ``default_base_url`` when left out.
        default_model: The model used when a request names none.
        client: A shared ``httpx.AsyncClient``; when left out the adapter makes one
            (see :func:`make_client`) and closes it in :meth:`aclose`.
        timeout: Seconds, or an ``httpx.Timeout``; a request's own ``timeout`` wins.
        headers: Extra headers sent with every call.
        prices: Prices per model, added to the built-in table, for ``usage.cost_usd``.
        name: The name this adapter goes by in errors, logs and metrics.
    """

    provider_name: ClassVar[str] = "http"
    default_base_url: ClassVar[str | None] = None

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
    ) -> None:
        url = base_url or self.default_base_url
        if not url:
            raise InvalidRequestError(
                f"{type(self).__name__} needs base_url", provider=name or self.provider_name,
                field="base_url",
            )
        self.name = name or self.provider_name
        self._api_key = clean_secret(api_key, self.name, "api_key")
        self.base_url = url.rstrip("/")
        self.default_model = default_model
        # An injected client keeps its own timeout unless one is given here too.
        self._timeout = as_timeout(timeout) if timeout is not None or client is None else None
        self._extra_headers = {k: clean_header(v, self.name, k)
                               for k, v in (headers or {}).items()}
        self._prices = dict(prices or {})
        self._price_cache: dict[str, ModelPrice | None] = {}
        self._client = client
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._owns_client = client is None

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, base_url={self.base_url!r}, "
                f"default_model={self.default_model!r}, api_key={mask(self._api_key)!r})")

    @property
    def client(self) -> httpx.AsyncClient:
        """The HTTP client, made on first use when none was injected.

        A client's connections belong to the event loop they were opened on; when this
        adapter is used from a new loop (a second ``asyncio.run``), it makes a new client.
        """
        loop = _running_loop()
        if self._client is None or (self._owns_client and loop is not self._client_loop
                                    and loop is not None):
            self._client = make_client(self._timeout)
            self._client_loop = loop
        return self._client

    async def aclose(self) -> None:
        """Close the HTTP client if this adapter made it; an injected one stays open."""
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    # --- hooks for subclasses ---------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        """Headers for every call: auth plus extras. Subclasses add their auth."""
        return dict(self._extra_headers)

    def _error_from_response(self, status: int, headers: httpx.Headers, body: bytes,
                             model: str | None) -> ProviderError:
        """Map one vendor error response to a chainweave error. Every adapter overrides."""
        raise NotImplementedError

    async def list_models(self) -> list[ModelInfo]:
        """The models this provider offers."""
        raise NotImplementedError

    # --- shared plumbing ----------------------------------------------------------------

    def _model_for(self, request_model: str | None) -> str:
        model = request_model or self.default_model
        if not model:
            raise InvalidRequestError(
                f"no model: the request names none and {self.name!r} has no default_model",
                provider=self.name, field="model",
            )
        return model

    def _usage(self, model: str, prompt: int, completion: int,
               reported_cost: float | None = None) -> Usage:
        cost = reported_cost
        if cost is None:
            if model not in self._price_cache:  # the lookup scans the table; once per model
                self._price_cache[model] = price_for(model, self._prices)
            cost = cost_usd(self._price_cache[model], prompt, completion)
        return Usage(prompt_tokens=prompt, completion_tokens=completion,
                     total_tokens=prompt + completion, cost_usd=cost)

    def _timeout_for(self, request: ChatRequest | None) -> httpx.Timeout | None:
        if request is not None and request.timeout is not None:
            return as_timeout(request.timeout)
        return self._timeout

    def _call_options(self, params: Mapping[str, str] | None,
                      timeout: httpx.Timeout | None) -> dict[str, Any]:
        """Only what differs from the client's defaults: httpx merges each option it is
        given, which costs several microseconds a call even when nothing changes."""
        options: dict[str, Any] = {}
        if params:
            options["params"] = params
        timeout = timeout or self._timeout
        if timeout is not None and timeout != self.client.timeout:
            options["timeout"] = timeout
        return options

    def _transport_error(self, exc: Exception, model: str | None,
                         *, streaming: bool = False) -> ProviderError:
        """Map a transport failure; mid-stream breaks are stream interruptions."""
        detail = redact(str(exc)) or type(exc).__name__
        ctx: dict[str, Any] = {"provider": self.name, "model": model}
        if is_timeout(exc):
            return ProviderTimeoutError(f"{self.name} timed out: {detail}", **ctx)
        if streaming:
            return StreamInterruptedError(
                f"{self.name} stream broke before its end: {detail}", **ctx)
        return ProviderConnectionError(f"{self.name} connection failed: {detail}", **ctx)

    def _decode_json(self, body: bytes, model: str | None) -> Any:
        try:
            return json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise MalformedResponseError(
                f"{self.name} returned a body that is not JSON: {_snippet(body)!r}",
                provider=self.name, model=model,
            ) from None

    async def _request_json(self, method: str, url: str, *, model: str | None,
                            body: Any = None, params: Mapping[str, str] | None = None,
                            timeout: httpx.Timeout | None = None) -> Any:
        """Send one call and return its decoded JSON body, or raise the mapped error."""
        started = time.perf_counter()
        failure: ProviderError | None = None
        try:
            response = await self.client.request(
                method, url, json=body, headers=self._headers(),
                **self._call_options(params, timeout),
            )
        except Exception as exc:
            if not is_transport_error(exc):
                raise
            failure = self._transport_error(exc, model)
        if failure is not None:
            # Raised outside the handler so that no __context__ keeps the httpx request,
            # whose headers hold the key.
            raise failure
        if logger.isEnabledFor(10):
            logger.debug("%s %s %s -> %d in %.1f ms", self.name, method, url,
                         response.status_code, (time.perf_counter() - started) * 1000)
        if response.status_code >= 400:
            raise self._error_from_response(response.status_code, response.headers,
                                            response.content, model)
        return self._decode_json(response.content, model)

    async def _stream_events(self, url: str, *, model: str, body: Any,
                             params: Mapping[str, str] | None = None,
                             timeout: httpx.Timeout | None = None,
                             ) -> AsyncGenerator[ServerSentEvent, None]:
        """POST ``body`` and yield the server-sent events of the response.

        The caller decides what the end marker is; this only maps failures. A failure
        before the response starts is a connection error; one after it, an interruption.
        """
        started = False
        failure: ProviderError | None = None
        try:
            async with self.client.stream(
                "POST", url, json=body, headers=self._headers(),
                **self._call_options(params, timeout),
            ) as response:
                if response.status_code >= 400:
                    content = await response.aread()
                    raise self._error_from_response(response.status_code, response.headers,
                                                    content, model)
                started = True
                async for event in iter_sse(response.aiter_lines()):
                    yield event
        except Exception as exc:
            if not is_transport_error(exc):
                raise
            failure = self._transport_error(exc, model, streaming=started)
        if failure is not None:
            raise failure  # outside the handler: see _request_json

    async def health(self) -> HealthStatus:
        """Check the provider with a cheap call (listing models); never raises."""
        started = time.perf_counter()
        try:
            await self.list_models()
        except ProviderError as exc:
            return HealthStatus(provider=self.name, healthy=False,
                                latency_ms=(time.perf_counter() - started) * 1000,
                                error=exc.message, error_type=exc.error_type)
        return HealthStatus(provider=self.name, healthy=True,
                            latency_ms=(time.perf_counter() - started) * 1000)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _snippet(body: bytes) -> str:
    return redact(body[:_ERROR_SNIPPET].decode("utf-8", "replace"))


def error_message(body: bytes, fallback: str) -> str:
    """A redacted, bounded text of an error body that has no message field."""
    text = _snippet(body).strip()
    return text or fallback
