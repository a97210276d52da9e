"""Azure OpenAI: OpenAI's wire format behind per-deployment URLs.

A call goes to ``{base_url}/openai/deployments/{deployment}/{operation}`` with the
``api-version`` query parameter and the key in the ``api-key`` header (or a Microsoft
Entra ID token as ``Authorization: Bearer``). The request's model names the
deployment, or is looked up in ``deployments`` when the names differ.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from chainweave._internal.http import clean_secret
from chainweave.errors import ConfigurationError
from chainweave.providers.openai import OpenAIProvider

__all__ = ["DEFAULT_AZURE_API_VERSION", "AzureOpenAIProvider"]

#: The GA version that has tools, JSON schema output and usage in streams.
DEFAULT_AZURE_API_VERSION = "2024-10-21"


class AzureOpenAIProvider(OpenAIProvider):
    """The Azure OpenAI API.

    Args:
        base_url: The resource endpoint, ``https://{resource}.openai.azure.com``.
        api_version: The ``api-version`` query parameter (``AZURE_API_VERSION``).
        deployments: Model name to deployment name, where they differ.
        azure_ad_token: An Entra ID token, sent instead of ``api-key``.
        **kwargs: See :class:`~chainweave.providers.openai.OpenAIProvider`.
    """

    provider_name: ClassVar[str] = "azure"
    default_base_url: ClassVar[str | None] = None
    max_tokens_field = "max_tokens"

    def __init__(self, *, api_version: str = DEFAULT_AZURE_API_VERSION,
                 deployments: Mapping[str, str] | None = None,
                 azure_ad_token: str | None = None, **kwargs: Any) -> None:
        if not kwargs.get("api_key") and not azure_ad_token:
            raise ConfigurationError(
                "AzureOpenAIProvider needs api_key (AZURE_API_KEY) or azure_ad_token",
                provider="azure", field="api_key")
        super().__init__(**kwargs)
        self.base_url = self.base_url.removesuffix("/openai")
        self.api_version = api_version
        self.deployments = dict(deployments or {})
        self._ad_token = clean_secret(azure_ad_token, self.name, "azure_ad_token")

    def _headers(self) -> dict[str, str]:
        headers = dict(self._extra_headers)
        if self._ad_token:
            headers["Authorization"] = f"Bearer {self._ad_token}"
        elif self._api_key:
            headers["api-key"] = self._api_key
        return headers

    def _url(self, operation: str, model: str | None) -> str:
        if model is None:
            return f"{self.base_url}/openai/{operation}"
        deployment = quote(self.deployments.get(model, model), safe="")
        return f"{self.base_url}/openai/deployments/{deployment}/{operation}"

    def _params(self) -> dict[str, str] | None:
        return {"api-version": self.api_version}

    def _body_model(self, model: str) -> dict[str, str]:
        # The deployment in the URL decides the model; Azure ignores a body field.
        return {}
