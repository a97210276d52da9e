"""SQLite checkpoints survive a writer killed at any moment, and concurrent writer processes.

The writers are forked by one launcher process (``tests/memory/_checkpoint_child.py``),
which has chainweave imported already, so each starts in about a millisecond.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chainweave.memory.checkpoint import Checkpoint
from chainweave.memory.checkpoint_sqlite import SQLiteCheckpointer
from tests.memory._checkpoint_child import THREAD, expected

KILLS = 100
#: Kills that share one database file: later writers resume from what the kills left.
KILLS_PER_FILE = 5
_ROOT = Path(__file__).resolve().parents[2]


class Launcher:
    """The launcher process: sends it a job, waits for its answer."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.memory._checkpoint_child"], cwd=_ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def run(self, **job: Any) -> dict[str, Any]:
        """Run one job (see the launcher's docstring) and return its answer."""
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._process.stdin.write(json.dumps(job) + "\n")
        self._process.stdin.flush()
        answer = self._process.stdout.readline()
        assert answer, f"the launcher died (exit code {self._process.wait()})"
        result: dict[str, Any] = json.loads(answer)
        return result

    def close(self) -> None:
        """Stop the launcher and reap it."""
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._process.stdin.close()
        self._process.wait(timeout=30)
        self._process.stdout.close()


@pytest.fixture(scope="module")
def launcher() -> Iterator[Launcher]:
    """One launcher for the module's tests."""
    started = Launcher()
    try:
        yield started
    finally:
        started.close()


def _reports(lines: list[str]) -> dict[str, tuple[int, str | None]]:
    """checkpoint id -> (step, parent id) for every checkpoint a writer reported."""
    found = {}
    for line in lines:
        if line != "ready":
            checkpoint_id, step, parent = line.split(" ")
            found[checkpoint_id] = (int(step), None if parent == "-" else parent)
    return found


def _intact(checkpoint: Checkpoint) -> bool:
    """Whether the checkpoint holds exactly what its writer put for its step."""
    fields = checkpoint.model_dump(exclude={"thread_id", "checkpoint_id", "parent_id",
                                            "created_at"})
    return checkpoint.thread_id == THREAD and fields == expected(checkpoint.step)


async def _problems(path: Path, known: dict[str, tuple[int, str | None]]) -> list[str]:
    """What is wrong with the file, given the checkpoints known to be committed; the
    committed checkpoints found but never reported are added to ``known``."""
    problems = []
    with sqlite3.connect(path) as conn:
        check = conn.execute("PRAGMA integrity_check").fetchone()[0]
    conn.close()
    if check != "ok":
        problems.append(f"integrity_check: {check}")
    store = SQLiteCheckpointer(path)
    try:
        present = {item.checkpoint_id: item for item in await store.list(THREAD)}
        for checkpoint_id, (step, parent) in known.items():
            got = present.get(checkpoint_id)
            if got is None or got.step != step or got.parent_id != parent or not _intact(got):
                problems.append(f"committed checkpoint {checkpoint_id} (step {step}) is "
                                f"missing or damaged: {got!r:.200}")
        unreported = [item for item in present.values() if item.checkpoint_id not in known]
        if len(unreported) > 1:
            problems.append(f"{len(unreported)} checkpoints nobody reported committing")
        problems += [f"torn checkpoint {item.checkpoint_id}" for item in present.values()
                     if not _intact(item)]
        known.update({item.checkpoint_id: (item.step, item.parent_id) for item in unreported})
        problems += await _broken_chain(store)
    finally:
        await store.aclose()
    return problems


async def _broken_chain(store: SQLiteCheckpointer) -> list[str]:
    """Walk from the newest checkpoint back to the first, reading each one alone."""
    current = await store.get(THREAD)
    while current is not None and current.parent_id is not None:
        parent = await store.get(THREAD, current.parent_id)
        if parent is None or not _intact(parent) or parent.step != current.step - 1:
            return [f"the chain breaks after {current.checkpoint_id}: {parent!r:.200}"]
        current = parent
    if current is not None and current.step != 0:
        return [f"the chain ends at step {current.step}, not 0"]
    return []


def test_sigkill_at_random_moments_never_loses_or_tears_a_checkpoint(
        launcher: Launcher, tmp_path: Path) -> None:
    """100 writers killed with SIGKILL at random moments: after each kill, every committed
    checkpoint is intact and readable, and no partial one is visible (100 out of 100)."""
    rng = random.Random(6_100)
    intact_runs, failures, written = 0, [], 0
    known: dict[str, tuple[int, str | None]] = {}
    for kill in range(KILLS):
        if kill % KILLS_PER_FILE == 0:
            known = {}
        path = tmp_path / f"run-{kill // KILLS_PER_FILE}.db"
        wait_ready = rng.random() > 0.15  # else any moment, opening the file included
        answer = launcher.run(job="kill", path=str(path), seed=kill, wait_ready=wait_ready,
                              delay=rng.uniform(0.0, 0.03))
        assert answer["status"] == signal.SIGKILL, answer["status"]
        reported = _reports(answer["lines"])
        written += len(reported)
        known.update(reported)
        problems = asyncio.run(_problems(path, known)) if path.exists() else [
            f"{len(reported)} reported checkpoints but no file"] if reported else []
        if problems:
            failures.append(f"kill {kill}: {problems[:3]}")
        else:
            intact_runs += 1
    assert failures == []
    assert intact_runs == KILLS
    assert written > KILLS  # the kills did land while checkpoints were being written


def test_two_processes_writing_one_thread_lose_nothing(launcher: Launcher,
                                                       tmp_path: Path) -> None:
    """Two processes putting checkpoints on one thread at once: all of them land intact."""
    path = tmp_path / "race.db"
    answer = launcher.run(job="race", path=str(path), seed=1, count=40, writers=2)
    assert answer["status"] == 0
    reported = _reports(answer["lines"])
    assert len(reported) == 80
    assert asyncio.run(_problems(path, dict(reported))) == []
