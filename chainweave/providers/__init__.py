"""Wire adapters for LLM vendors, all speaking :class:`~chainweave.types.ChatModel`."""

from chainweave.providers.base import HTTPProvider, make_client, parse_retry_after

__all__ = ["HTTPProvider", "make_client", "parse_retry_after"]
