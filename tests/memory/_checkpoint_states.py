"""States and a reference model shared by the checkpoint tests.

``state_at(step)`` is the state a run has after ``step``: a known function of the step
that grows a message list, flips fields, adds and drops a key, and now and then cuts
the list short, so stores see appends, edits, removals and replacements.
"""

from __future__ import annotations

from typing import Any

from chainweave.memory.checkpoint import Checkpoint, CheckpointStore

__all__ = ["Model", "message", "state_at"]


def message(index: int) -> dict[str, Any]:
    """The ``index``-th message of a run."""
    role = "user" if index % 2 == 0 else "assistant"
    return {"role": role, "content": f"message {index} " + "x" * (index % 13)}


def state_at(step: int) -> dict[str, Any]:
    """The state after ``step``."""
    messages = [message(index) for index in range(step + 1)]
    state: dict[str, Any] = {"messages": messages if step % 10 != 9 else messages[-5:],
                             "step": step, "flags": {"even": step % 2 == 0}}
    if step % 3 == 0:
        state["checkpointed"] = [step, float(step) / 2]
    return state


def _evolve(state: dict[str, Any], pick: int, size: int) -> dict[str, Any]:
    """A child state of ``state``: appends ``size`` messages and edits by ``pick``."""
    messages = list(state.get("messages", []))
    if pick % 7 == 0:
        messages = messages[: len(messages) // 2]
    messages += [message(len(messages) + index) for index in range(size)]
    child = {**state, "messages": messages, "pick": pick}
    if pick % 5 == 0:
        child.pop("pick")
    return child


class Model:
    """What a thread ``"t"`` should hold after a sequence of operations."""

    def __init__(self) -> None:
        self.items: dict[str, Checkpoint] = {}  # in the order first put

    def newest_first(self) -> list[Checkpoint]:
        """The checkpoints a store's ``list("t")`` should return."""
        return list(self.items.values())[::-1]

    async def apply(self, store: CheckpointStore, kind: str, pick: int, size: int) -> None:
        """Do one operation on ``store`` and on the model.

        ``next`` puts a child of the newest, ``fork`` a child of another one, ``replace``
        puts an existing id again with an edited state, ``prune`` keeps the newest few.
        """
        existing = list(self.items.values())
        if kind == "prune" and existing:
            keep = 1 + pick % len(existing)
            assert await store.prune("t", keep_last=keep) == len(existing) - keep
            self.items = {item.checkpoint_id: item for item in existing[-keep:]}
            return
        if kind == "replace" and existing:
            target = existing[pick % len(existing)]
            checkpoint = target.model_copy(update={
                "state": _evolve(target.state, pick + 1, size),
                "pending_writes": [{"node": "n", "value": pick}]})
        else:
            parent = None
            if existing:
                parent = existing[-1] if kind != "fork" else existing[pick % len(existing)]
            checkpoint = Checkpoint(
                thread_id="t", parent_id=parent and parent.checkpoint_id,
                step=0 if parent is None else parent.step + 1,
                state=_evolve(parent.state if parent else {}, pick, size),
                next=[f"node-{pick % 3}"])
        await store.put(checkpoint)
        self.items[checkpoint.checkpoint_id] = checkpoint
