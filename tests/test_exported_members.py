"""The public surface: each package's ``__all__`` is sorted and matches what it exports."""

from __future__ import annotations

import importlib
import types

import pytest

PACKAGES = ["chainweave", "chainweave.chains", "chainweave.memory", "chainweave.pipeline",
            "chainweave.providers", "chainweave.testing"]


def _public(module: types.ModuleType) -> set[str]:
    """Public chainweave names a module has: all of them for a package ``__init__``,
    only those defined in the module itself otherwise."""
    is_package = hasattr(module, "__path__")
    names = set()
    for member, value in vars(module).items():
        if member.startswith("_") or isinstance(value, types.ModuleType):
            continue
        origin = getattr(value, "__module__", None) or ""
        if origin == module.__name__ or (is_package and origin.startswith("chainweave")):
            names.add(member)
    return names


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_complete(name: str) -> None:
    """``__all__`` is sorted, names only real members, and misses no public member."""
    module = importlib.import_module(name)
    exported = module.__all__
    assert exported == sorted(exported)
    assert all(hasattr(module, member) for member in exported)
    assert _public(module) <= set(exported)


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("chainweave", ["ChatRequest", "ChatResponse", "ChatModel", "Message", "StreamChunk",
                        "Usage", "ToolCall", "Settings", "estimate_tokens"]),
        ("chainweave.providers", ["OpenAIProvider", "AnthropicProvider", "AzureOpenAIProvider",
                                  "OpenRouterProvider", "OpenAICompatibleProvider", "from_env"]),
        ("chainweave.chains", ["SimpleChain", "SequentialChain", "ParallelChain",
                               "ConditionalChain", "ConversationalChain", "TransformChain",
                               "RunConfig", "RetryPolicy", "AgentChain", "chain", "tool"]),
        ("chainweave.memory", ["InMemoryMemory", "SQLiteMemory", "RedisMemory",
                               "MemoryCheckpointer", "SQLiteCheckpointer", "RedisCheckpointer",
                               "InMemoryStore", "SQLiteStore", "RedisStore",
                               "ConversationMemory", "CheckpointStore", "KeyValueStore"]),
        ("chainweave.testing", ["MockProvider", "FunctionProvider", "RecordingModel",
                                "ReplayModel", "capture_spans"]),
    ],
)
def test_contract_names_are_exported(module: str, names: list[str]) -> None:
    """The names ARCHITECTURE.md and the issue promise are exported where they say."""
    assert set(names) <= set(importlib.import_module(module).__all__)
