"""The HTTP client every adapter shares, and the choice of transport under it.

httpx's own pool (httpcore) does work proportional to its open connections on every
request event, which at 200 concurrent calls costs milliseconds of CPU per call. The
``aiohttp`` extra puts aiohttp's connector under the same ``httpx.AsyncClient`` API;
measured on the adapter benchmark it is about 25x cheaper per call. ``auto`` uses it
when installed; ``CHAINWEAVE_HTTP_TRANSPORT=httpx|aiohttp`` forces one.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Literal

import httpx

from chainweave._internal.redact import register_secret
from chainweave.errors import ConfigurationError

__all__ = ["DEFAULT_LIMITS", "DEFAULT_TIMEOUT", "Transport", "as_timeout", "clean_header",
           "clean_secret", "is_timeout", "is_transport_error", "make_client"]

Transport = Literal["auto", "httpx", "aiohttp"]

DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20,
                              keepalive_expiry=5.0)
TRANSPORT_ENV = "CHAINWEAVE_HTTP_TRANSPORT"


def as_timeout(timeout: float | httpx.Timeout | None) -> httpx.Timeout:
    """Seconds or an ``httpx.Timeout`` as an ``httpx.Timeout`` (connect capped at 10 s)."""
    if timeout is None:
        return DEFAULT_TIMEOUT
    if isinstance(timeout, httpx.Timeout):
        return timeout
    return httpx.Timeout(timeout, connect=min(timeout, 10.0))


def _chosen(transport: Transport) -> Literal["httpx", "aiohttp"]:
    choice = transport if transport != "auto" else os.environ.get(TRANSPORT_ENV, "auto")
    if choice == "auto":
        return "aiohttp" if importlib.util.find_spec("httpx_aiohttp") else "httpx"
    if choice not in ("httpx", "aiohttp"):
        raise ConfigurationError(
            f"{TRANSPORT_ENV}={choice!r} is not one of auto, httpx, aiohttp", field=TRANSPORT_ENV)
    if choice == "aiohttp" and not importlib.util.find_spec("httpx_aiohttp"):
        raise ConfigurationError(
            "the aiohttp transport needs the extra: pip install 'chainweave[aiohttp]'",
            field="transport")
    return "aiohttp" if choice == "aiohttp" else "httpx"


def make_client(timeout: float | httpx.Timeout | None = None,
                limits: httpx.Limits | None = None,
                transport: Transport = "auto") -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` tuned for LLM traffic, to share among adapters.

    Long read timeouts suit slow generations; a large keep-alive pool suits many
    concurrent calls to few hosts. Pass it as ``client=`` to every adapter.

    Args:
        timeout: Seconds, or an ``httpx.Timeout``.
        limits: Pool limits; generous defaults.
        transport: ``auto`` (aiohttp when the extra is installed, unless
            ``CHAINWEAVE_HTTP_TRANSPORT`` says otherwise), ``httpx`` or ``aiohttp``.

    Raises:
        ConfigurationError: ``aiohttp`` was asked for without the extra installed, or
            the environment variable names no transport.
    """
    limits = limits or DEFAULT_LIMITS
    if _chosen(transport) == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        return httpx.AsyncClient(timeout=as_timeout(timeout),
                                 transport=AiohttpTransport(limits=limits))
    return httpx.AsyncClient(timeout=as_timeout(timeout), limits=limits)


def is_transport_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a transport failure: httpx's, or aiohttp's left unmapped."""
    return isinstance(exc, httpx.HTTPError) or type(exc).__module__.startswith("aiohttp")


def is_timeout(exc: BaseException) -> bool:
    """Whether a transport error is a timeout.

    httpx-aiohttp maps every aiohttp connection error (a reset, a server that hung up)
    to ``httpx.ConnectTimeout``; the aiohttp error it came from tells the truth.
    """
    if not isinstance(exc, httpx.TimeoutException):
        return isinstance(exc, TimeoutError)
    cause = exc.__cause__
    if cause is not None and type(cause).__module__.startswith("aiohttp"):
        return isinstance(cause, TimeoutError)
    return True


def _bad_characters(value: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in value)


def clean_secret(value: str | None, provider: str, field: str) -> str | None:
    """A key with surrounding whitespace stripped (a secrets file's trailing newline),
    registered for redaction; inner control characters are refused.

    Raises:
        ConfigurationError: the key holds control characters. The value is not shown.
    """
    if value is None:
        return None
    stripped = value.strip()
    if _bad_characters(stripped):
        raise ConfigurationError(
            f"{field} for {provider!r} contains control characters; check how it is loaded",
            provider=provider, field=field)
    register_secret(value)
    register_secret(stripped)
    return stripped or None


def clean_header(value: str, provider: str, name: str) -> str:
    """A header value without control characters, which HTTP forbids.

    Raises:
        ConfigurationError: the value holds control characters (it is not shown).
    """
    if _bad_characters(value):
        raise ConfigurationError(f"header {name!r} for {provider!r} contains control "
                                 "characters", provider=provider, field=name)
    return value
