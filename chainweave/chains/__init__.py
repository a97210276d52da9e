"""Chains: compose prompts, model calls, functions, tools and other chains.

Every chain maps a dict of inputs to a dict of outputs and runs the same ways
(``run``, ``invoke``, ``run_sync``, ``stream``, ``batch``); see :class:`Chain`.
"""

from chainweave.chains.agent import AgentChain
from chainweave.chains.base import Chain, ChainRun
from chainweave.chains.conditional import ConditionalChain, LLMRouter, Route
from chainweave.chains.context import RunConfig, RunContext
from chainweave.chains.conversational import ConversationalChain
from chainweave.chains.events import ChainEnd, ChainEvent, ChainStart, ErrorEvent, TokenEvent
from chainweave.chains.parallel import ParallelChain, Quorum, quorum
from chainweave.chains.parsers import JsonParser, OutputParser, PydanticParser, TextParser
from chainweave.chains.prompt import PromptTemplate
from chainweave.chains.sequential import SequentialChain
from chainweave.chains.simple import SimpleChain
from chainweave.chains.tools import FunctionTool, tool
from chainweave.chains.transform import TransformChain, chain
from chainweave.chains.wrappers import FallbackChain, RetryChain, TimeoutChain
from chainweave.providers.retry import RetryPolicy

__all__ = [
    "AgentChain",
    "Chain",
    "ChainEnd",
    "ChainEvent",
    "ChainRun",
    "ChainStart",
    "ConditionalChain",
    "ConversationalChain",
    "ErrorEvent",
    "FallbackChain",
    "FunctionTool",
    "JsonParser",
    "LLMRouter",
    "OutputParser",
    "ParallelChain",
    "PromptTemplate",
    "PydanticParser",
    "Quorum",
    "RetryChain",
    "RetryPolicy",
    "Route",
    "RunConfig",
    "RunContext",
    "SequentialChain",
    "SimpleChain",
    "TextParser",
    "TimeoutChain",
    "TokenEvent",
    "TransformChain",
    "chain",
    "quorum",
    "tool",
]
