"""Conversation memory: where a conversational chain keeps its history.

:class:`ConversationMemory` is the interface that
:class:`~chainweave.chains.conversational.ConversationalChain` uses;
:class:`InMemoryMemory` keeps conversations in the process. Each message comes back as
a :class:`StoredMessage` with its metadata, timestamp and per-session ``seq``.
"""

from chainweave.memory.base import ConversationMemory, StoredMessage
from chainweave.memory.inmemory import InMemoryMemory

__all__ = ["ConversationMemory", "InMemoryMemory", "StoredMessage"]
