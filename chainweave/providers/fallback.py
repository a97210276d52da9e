"""Try models in order until one answers: seed 001's ``LLM_PROVIDER=fallback``.

This is the small, fixed-order form. ``ProviderManager`` adds balancing, breakers and
health on top; this wrapper only walks a list.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass

from chainweave._internal.redact import get_logger
from chainweave.errors import (
    ContentFilteredError,
    InputValidationError,
    InvalidRequestError,
    ProviderError,
)
from chainweave.types import ChatModel, ChatRequest, ChatResponse, StreamChunk

__all__ = ["FallbackProvider", "FallbackTarget"]

logger = get_logger("chainweave.providers.fallback")

# The caller's own mistakes fail the same way on every model: no point moving on.
_FINAL = (InvalidRequestError, ContentFilteredError)


@dataclass(frozen=True, slots=True)
class FallbackTarget:
    """One step of the fallback order: a model on a provider (``None``: the request's)."""

    provider: ChatModel
    model: str | None = None


class FallbackProvider:
    """A ChatModel that tries each target in order and returns the first answer.

    Every provider error moves on to the next target except an invalid request or a
    content-filter refusal, which would fail anywhere. When all targets fail, the last
    error is raised with the others in ``details["attempts"]``. A stream falls back only
    before its first chunk; after that a failure is raised, never silently restarted.
    """

    def __init__(self, targets: Sequence[FallbackTarget], *, name: str = "fallback") -> None:
        if not targets:
            raise InputValidationError("FallbackProvider needs at least one target",
                                       field="targets")
        self.targets = tuple(targets)
        self.name = name

    def __repr__(self) -> str:
        steps = ", ".join(f"{getattr(t.provider, 'name', t.provider)!s}:{t.model}"
                          for t in self.targets)
        return f"FallbackProvider([{steps}])"

    def _request_for(self, target: FallbackTarget, request: ChatRequest) -> ChatRequest:
        if target.model is None or target.model == request.model:
            return request
        return request.model_copy(update={"model": target.model})

    def _give_up(self, errors: list[ProviderError]) -> ProviderError:
        last = errors[-1]
        last.details.setdefault("attempts", [
            {"error_type": e.error_type, "provider": e.provider, "model": e.model,
             "message": e.message} for e in errors])
        return last

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """Ask each target in turn; return the first response, with ``attempts`` counted."""
        errors: list[ProviderError] = []
        for target in self.targets:
            try:
                response = await target.provider.chat(self._request_for(target, request))
            except _FINAL:
                raise
            except ProviderError as exc:
                logger.warning("fallback: %s failed (%s); trying the next target",
                               exc.provider, exc.error_type)
                errors.append(exc)
                continue
            if not errors:
                return response
            return response.model_copy(update={"attempts": response.attempts + len(errors)})
        raise self._give_up(errors)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        """Stream from the first target that starts; fall back only before the first chunk."""
        errors: list[ProviderError] = []
        for target in self.targets:
            started = False
            inner = target.provider.stream(self._request_for(target, request))
            try:
                async with aclosing(inner):  # type: ignore[type-var]
                    async for chunk in inner:
                        started = True
                        yield chunk
                return
            except _FINAL:
                raise
            except ProviderError as exc:
                if started:
                    raise
                errors.append(exc)
        raise self._give_up(errors)

    async def aclose(self) -> None:
        """Close every target provider that can be closed."""
        for target in self.targets:
            close = getattr(target.provider, "aclose", None)
            if close is not None:
                await close()
