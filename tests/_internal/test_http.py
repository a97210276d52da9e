"""The shared client: transport choice and timeout classification."""

from __future__ import annotations

import aiohttp
import httpx
import pytest
from httpx_aiohttp import AiohttpTransport

from chainweave._internal.http import as_timeout, is_timeout, make_client
from chainweave.errors import ConfigurationError


async def test_auto_uses_aiohttp_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the extra installed and no override, the client runs on aiohttp."""
    monkeypatch.delenv("CHAINWEAVE_HTTP_TRANSPORT", raising=False)
    async with make_client() as client:
        assert isinstance(client._transport, AiohttpTransport)


async def test_environment_forces_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    """CHAINWEAVE_HTTP_TRANSPORT=httpx keeps httpx's own pool."""
    monkeypatch.setenv("CHAINWEAVE_HTTP_TRANSPORT", "httpx")
    async with make_client() as client:
        assert isinstance(client._transport, httpx.AsyncHTTPTransport)


async def test_explicit_argument_beats_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """An explicit transport argument wins over the environment."""
    monkeypatch.setenv("CHAINWEAVE_HTTP_TRANSPORT", "httpx")
    async with make_client(transport="aiohttp") as client:
        assert isinstance(client._transport, AiohttpTransport)


def test_unknown_transport_in_environment_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad CHAINWEAVE_HTTP_TRANSPORT value is a ConfigurationError naming the variable."""
    monkeypatch.setenv("CHAINWEAVE_HTTP_TRANSPORT", "curl")
    with pytest.raises(ConfigurationError, match="CHAINWEAVE_HTTP_TRANSPORT='curl'"):
        make_client()


def test_aiohttp_without_extra_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Asking for aiohttp without the extra names the extra to install."""
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(ConfigurationError, match=r"chainweave\[aiohttp\]"):
        make_client(transport="aiohttp")


def test_timeout_seconds_cap_connect() -> None:
    """A number of seconds sets every timeout, with connect capped at 10 s."""
    timeout = as_timeout(120)
    assert (timeout.read, timeout.connect) == (120, 10)
    assert as_timeout(3).connect == 3


def test_plain_httpx_timeouts_are_timeouts() -> None:
    """httpx's own timeout exceptions classify as timeouts."""
    assert is_timeout(httpx.ReadTimeout("slow"))
    assert not is_timeout(httpx.ReadError("reset"))


def test_aiohttp_disconnect_mapped_to_connect_timeout_is_not_a_timeout() -> None:
    """httpx-aiohttp's ConnectTimeout over a server disconnect is a connection failure."""
    exc = httpx.ConnectTimeout("Server disconnected")
    exc.__cause__ = aiohttp.ServerDisconnectedError()
    assert not is_timeout(exc)


def test_aiohttp_socket_timeout_is_a_timeout() -> None:
    """An aiohttp socket timeout under httpx's exception is still a timeout."""
    exc = httpx.ReadTimeout("timed out")
    exc.__cause__ = aiohttp.SocketTimeoutError()
    assert is_timeout(exc)
