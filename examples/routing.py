"""ProviderManager offline: three deployments, one of them failing, behind one model.

Runs on MockProvider deployments, so it needs no key; swap in OpenAIProvider,
AnthropicProvider or AzureOpenAIProvider to route over real vendors the same way.
"""

from __future__ import annotations

import asyncio
import json
import sys

import chainweave as cw
from chainweave.providers import BreakerPolicy, MockProvider, ProviderManager
from chainweave.testing import MockFailure


async def main() -> None:
    """Send ten requests; watch the failing deployment's breaker open and traffic move."""
    print("chainweave: routing over the offline mock provider", file=sys.stderr)
    pm = ProviderManager(default_model="gpt-4o-mini",
                         breaker=BreakerPolicy(failure_threshold=2, cooldown=30))
    pm.register("east", MockProvider(["answered by east"]), ["gpt-4o-mini"])
    pm.register("west", MockProvider([MockFailure(status=503)]), ["gpt-4o-mini"])
    pm.register("north", MockProvider(["answered by north"]), ["gpt-4o-mini"])
    async with pm:
        for i in range(10):
            resp = await pm.chat(cw.ChatRequest.from_prompt(f"request {i}"))
            print(f"{i}: {resp.content} (deployment={resp.metadata['deployment']}, "
                  f"attempts={resp.attempts})")
        status = {name: {k: s[k] for k in ("breaker", "successes", "failures")}
                  for name, s in pm.status().items()}
    print(json.dumps(status, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
