"""Model prices, for the cost figure in :class:`~chainweave.types.Usage`.

The built-in table holds list prices in US dollars per million tokens for a few common
models; pass ``prices=`` to a provider to add or override models. A model matches the
longest table key it starts with, so ``gpt-4o-mini-2024-07-18`` uses ``gpt-4o-mini``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from chainweave.errors import InputValidationError

__all__ = ["DEFAULT_PRICES", "ModelPrice", "cost_usd", "price_for"]


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """US dollars per million input (prompt) and output (completion) tokens."""

    input_per_million: float
    output_per_million: float

    def __post_init__(self) -> None:
        # "not >= 0" also refuses NaN, which would only fail later, in Usage, after the
        # call it prices was made and paid for.
        for field in ("input_per_million", "output_per_million"):
            if not getattr(self, field) >= 0:
                raise InputValidationError(
                    f"ModelPrice.{field}: a price per million tokens must be a number >= 0",
                    field=field,
                )


DEFAULT_PRICES: Mapping[str, ModelPrice] = {
    "gpt-4o-mini": ModelPrice(0.15, 0.60),
    "gpt-4o": ModelPrice(2.50, 10.00),
    "gpt-4.1-nano": ModelPrice(0.10, 0.40),
    "gpt-4.1-mini": ModelPrice(0.40, 1.60),
    "gpt-4.1": ModelPrice(2.00, 8.00),
    "gpt-3.5-turbo": ModelPrice(0.50, 1.50),
    "text-embedding-3-small": ModelPrice(0.02, 0.0),
    "text-embedding-3-large": ModelPrice(0.13, 0.0),
    "claude-3-5-haiku": ModelPrice(0.80, 4.00),
    "claude-3-5-sonnet": ModelPrice(3.00, 15.00),
    "claude-3-7-sonnet": ModelPrice(3.00, 15.00),
    "claude-3-haiku": ModelPrice(0.25, 1.25),
    "claude-3-opus": ModelPrice(15.00, 75.00),
    "claude-sonnet-4": ModelPrice(3.00, 15.00),
    "claude-opus-4": ModelPrice(15.00, 75.00),
}


def price_for(model: str, prices: Mapping[str, ModelPrice] | None = None) -> ModelPrice | None:
    """The price of ``model`` from the built-in table with ``prices`` laid over it.

    The longest matching key wins, so overriding ``gpt-4o`` leaves ``gpt-4o-mini`` at its
    own price. An OpenRouter-style vendor prefix (``openai/gpt-4o``) is tried without its
    prefix too.
    """
    table = {**DEFAULT_PRICES, **(prices or {})}
    for name in (model, model.rpartition("/")[2]):
        best = max((k for k in table if name.startswith(k)), key=len, default=None)
        if best is not None:
            return table[best]
    return None


def cost_usd(price: ModelPrice | None, prompt_tokens: int, completion_tokens: int) -> float | None:
    """The cost of a call, or ``None`` when the price is unknown."""
    if price is None:
        return None
    return (prompt_tokens * price.input_per_million
            + completion_tokens * price.output_per_million) / 1_000_000
