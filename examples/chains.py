"""Chains offline: simple, sequential, parallel, conditional, conversational, tools, streaming.

Runs on the offline mock provider; hand the same chains an adapter, a ProviderManager
or a Pipeline and nothing else changes.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Literal

from pydantic import BaseModel

from chainweave.chains import (
    AgentChain,
    ConditionalChain,
    ConversationalChain,
    ParallelChain,
    RunConfig,
    SimpleChain,
    TokenEvent,
    chain,
    tool,
)
from chainweave.testing import MockProvider, MockReply


class Verdict(BaseModel):
    """A sentiment verdict."""

    label: Literal["positive", "negative"]
    score: float


@chain
def word_count(result: str) -> int:
    """Count the words of the completion."""
    return len(result.split())


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first addend.
        b: The second addend.
    """
    return a + b


async def main() -> None:
    """Run one of each chain type against scripted offline models."""
    print("chainweave: chains over the offline mock provider", file=sys.stderr)
    llm = MockProvider()  # answers are derived from the prompt
    completion = SimpleChain("completion", llm, "Complete this: {{ input }}")
    print("simple:", await completion.run({"input": "The future of AI is"}))

    counted = await (completion | word_count).invoke({"input": "Tell me a story"})
    print("sequential:", counted.outputs, "tokens:", counted.usage.total_tokens)

    judge = SimpleChain("judge", MockProvider(['{"label": "positive", "score": 0.93}']),
                        "Judge: {{ input }}", parser=Verdict)
    both = ParallelChain("both", {"completion": completion, "judge": judge})
    print("parallel:", await both.run({"input": "What a lovely day"}))

    route = ConditionalChain("route", [("'?' in input", completion)], default=judge)
    routed = await route.invoke({"input": "Great product!"})
    print("conditional:", routed.metadata["routes"], routed.outputs)

    chat = ConversationalChain("chat", MockProvider(["Hi Ada!", "You are Ada."]),
                               system_prompt="You are friendly.", max_turns=5)
    session = RunConfig(session_id="ada")
    await chat.run({"input": "Hello, I am Ada."}, session)
    print("conversational:", await chat.run({"input": "Who am I?"}, session))

    agent = AgentChain("calculator", MockProvider([
        MockReply(tool_calls=[{"id": "c1", "name": "add", "arguments": '{"a": 2, "b": 40}'}]),
        "2 + 40 = 42"]), tools=[add])
    print("agent:", await agent.run({"input": "What is 2 + 40?"}))

    tokens = [event.text async for event in completion.stream({"input": "Streaming is"})
              if isinstance(event, TokenEvent)]
    print("streamed:", tokens)


if __name__ == "__main__":
    asyncio.run(main())
