"""Chains: compose prompts, model calls, functions and other chains.

Every chain maps a dict of inputs to a dict of outputs and runs the same ways
(``run``, ``invoke``, ``run_sync``, ``stream``, ``batch``); see :class:`Chain`.
"""

from chainweave.chains.base import Chain, ChainRun
from chainweave.chains.context import RunConfig, RunContext
from chainweave.chains.events import ChainEnd, ChainEvent, ChainStart, ErrorEvent, TokenEvent
from chainweave.chains.parsers import JsonParser, OutputParser, PydanticParser, TextParser
from chainweave.chains.prompt import PromptTemplate
from chainweave.chains.sequential import SequentialChain
from chainweave.chains.simple import SimpleChain
from chainweave.chains.transform import TransformChain, chain
from chainweave.chains.wrappers import FallbackChain, RetryChain, TimeoutChain
from chainweave.providers.retry import RetryPolicy

__all__ = [
    "Chain",
    "ChainEnd",
    "ChainEvent",
    "ChainRun",
    "ChainStart",
    "ErrorEvent",
    "FallbackChain",
    "JsonParser",
    "OutputParser",
    "PromptTemplate",
    "PydanticParser",
    "RetryChain",
    "RetryPolicy",
    "RunConfig",
    "RunContext",
    "SequentialChain",
    "SimpleChain",
    "TextParser",
    "TimeoutChain",
    "TokenEvent",
    "TransformChain",
    "chain",
]
