"""The quick start: one chat call and one streamed call through the configured provider.

With no API key in the environment this runs on the offline ``mock`` provider and says
so on stderr. Set, for example, ``OPENAI_API_KEY`` (or ``ANTHROPIC_API_KEY``,
``OPENROUTER_API_KEY``, ``LLM_API_BASE`` for a local server) to talk to a real model.
"""

from __future__ import annotations

import asyncio
import sys

import chainweave as cw
from chainweave.providers import MockProvider, from_env


async def main() -> None:
    """Ask one question, then stream an answer token by token."""
    llm = from_env()
    if isinstance(llm, MockProvider):
        print("chainweave: no API key or base URL set; using the offline mock provider",
              file=sys.stderr)
    request = cw.ChatRequest(messages=[
        cw.Message.system("You are a concise assistant."),
        cw.Message.user("Complete this: The future of AI is"),
    ], max_tokens=100)
    print(f"estimated prompt tokens: {cw.estimate_tokens(request.messages)}")

    resp = await llm.chat(request)
    print(f"[{resp.provider}/{resp.model}] {resp.content}")
    print(f"finish={resp.finish_reason} tokens={resp.usage.total_tokens} "
          f"latency={resp.latency_ms:.1f}ms")

    print("streaming: ", end="", flush=True)
    async for chunk in llm.stream(request):
        print(chunk.delta, end="", flush=True)
        if chunk.finish_reason is not None:
            print(f"\n(finish={chunk.finish_reason})")
    await llm.aclose()


if __name__ == "__main__":
    asyncio.run(main())
