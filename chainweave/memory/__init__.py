"""Memory and persistence: conversations, graph checkpoints and a key-value store.

Three kinds of store, each behind one interface with the same backends:

* :class:`ConversationMemory` (history per session, for
  :class:`~chainweave.chains.ConversationalChain`): :class:`InMemoryMemory`,
  :class:`SQLiteMemory`, :class:`RedisMemory`.
* :class:`CheckpointStore` (graph checkpoints, stored as deltas with snapshots):
  :class:`MemoryCheckpointer`, :class:`SQLiteCheckpointer`, :class:`RedisCheckpointer`.
* :class:`KeyValueStore` (long-term agent memory: namespace and key to a JSON value):
  :class:`InMemoryStore`, :class:`SQLiteStore`, :class:`RedisStore`.

SQLite is the embedded default (one file, WAL, safe across processes; see
:class:`SQLiteDatabase`); Redis is the shared backend for several processes.
"""

from chainweave.memory.base import ConversationMemory, StoredMessage
from chainweave.memory.checkpoint import (
    Checkpoint,
    CheckpointStore,
    StateMigrations,
    new_checkpoint_id,
)
from chainweave.memory.checkpoint_memory import MemoryCheckpointer
from chainweave.memory.checkpoint_redis import RedisCheckpointer
from chainweave.memory.checkpoint_sqlite import SQLiteCheckpointer
from chainweave.memory.inmemory import InMemoryMemory
from chainweave.memory.kv import Item, KeyValueStore
from chainweave.memory.kv_memory import InMemoryStore
from chainweave.memory.kv_redis import RedisStore
from chainweave.memory.kv_sqlite import SQLiteStore
from chainweave.memory.redis_memory import RedisMemory
from chainweave.memory.sqlite import SQLiteDatabase
from chainweave.memory.sqlite_memory import SQLiteMemory

__all__ = [
    "Checkpoint",
    "CheckpointStore",
    "ConversationMemory",
    "InMemoryMemory",
    "InMemoryStore",
    "Item",
    "KeyValueStore",
    "MemoryCheckpointer",
    "RedisCheckpointer",
    "RedisMemory",
    "RedisStore",
    "SQLiteCheckpointer",
    "SQLiteDatabase",
    "SQLiteMemory",
    "SQLiteStore",
    "StateMigrations",
    "StoredMessage",
    "new_checkpoint_id",
]
