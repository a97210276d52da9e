"""OpenRouter: OpenAI's wire format, one key for many vendors' models.

Model names carry the vendor (``anthropic/claude-3.5-sonnet``, ``openai/gpt-4o``). The
optional ``HTTP-Referer`` and ``X-Title`` headers identify the application in
OpenRouter's rankings. OpenRouter reports errors with the HTTP status in
``error.code``, sometimes inside a 200 body or a stream chunk; the OpenAI adapter's
error mapping reads that.
"""

from __future__ import annotations

from typing import Any, ClassVar

from chainweave.providers.openai import OpenAIProvider

__all__ = ["OpenRouterProvider"]


class OpenRouterProvider(OpenAIProvider):
    """The OpenRouter API.

    Args:
        referer: Sent as ``HTTP-Referer`` (``OPENROUTER_HEADERS_REFERER``).
        x_title: Sent as ``X-Title`` (``OPENROUTER_HEADERS_X_TITLE``).
        **kwargs: See :class:`~chainweave.providers.openai.OpenAIProvider`.
    """

    provider_name: ClassVar[str] = "openrouter"
    default_base_url: ClassVar[str | None] = "https://openrouter.ai/api/v1"
    sends_top_k: ClassVar[bool] = True
    max_tokens_field = "max_tokens"

    def __init__(self, *, referer: str | None = None, x_title: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.referer = referer
        self.x_title = x_title

    def _headers(self) -> dict[str, str]:
        headers = super()._headers()
        if self.referer:
            headers["HTTP-Referer"] = self.referer
        if self.x_title:
            headers["X-Title"] = self.x_title
        return headers
