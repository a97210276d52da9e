"""Model prices: prefix lookup, overrides and cost arithmetic."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainweave.errors import InputValidationError
from chainweave.pricing import DEFAULT_PRICES, ModelPrice, cost_usd, price_for

CUSTOM = ModelPrice(1.0, 2.0)


@pytest.mark.parametrize(
    ("model", "key"),
    [
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
        ("gpt-4.1-nano", "gpt-4.1-nano"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
    ],
)
def test_longest_prefix_wins(model: str, key: str) -> None:
    """A dated model name takes the price of the longest table key it starts with."""
    assert price_for(model) is DEFAULT_PRICES[key]


def test_exact_name_matches() -> None:
    """A model named exactly as a table key takes that price."""
    assert price_for("gpt-4o") is DEFAULT_PRICES["gpt-4o"]


@pytest.mark.parametrize(
    ("model", "key"),
    [
        ("openai/gpt-4o-mini", "gpt-4o-mini"),
        ("openai/gpt-4o", "gpt-4o"),
        ("anthropic/claude-sonnet-4", "claude-sonnet-4"),
    ],
)
def test_openrouter_vendor_prefix(model: str, key: str) -> None:
    """An OpenRouter ``vendor/model`` name is priced as the model without its vendor."""
    assert price_for(model) is DEFAULT_PRICES[key]


def test_unknown_model_has_no_price() -> None:
    """A model in no table has no price."""
    assert price_for("glm-4.6") is None


def test_unknown_vendor_model_has_no_price() -> None:
    """An OpenRouter name whose model part is unknown has no price."""
    assert price_for("z-ai/glm-4.6") is None


def test_override_beats_default() -> None:
    """A price passed for a built-in model replaces the built-in one."""
    assert price_for("gpt-4o-mini", {"gpt-4o-mini": CUSTOM}) is CUSTOM


def test_override_adds_a_model() -> None:
    """A price passed for a model the table lacks prices it."""
    assert price_for("glm-4.6", {"glm-4.6": CUSTOM}) is CUSTOM


def test_override_of_a_prefix_does_not_reprice_longer_defaults() -> None:
    """Overriding ``gpt-4o`` leaves ``gpt-4o-mini`` at its own, more specific price."""
    assert price_for("gpt-4o-mini-2024-07-18", {"gpt-4o": CUSTOM}) is DEFAULT_PRICES["gpt-4o-mini"]


def test_more_specific_override_beats_shorter_default() -> None:
    """An override longer than the matching default key wins by the prefix rule."""
    assert price_for("gpt-4o-2024-08-06", {"gpt-4o-2024": CUSTOM}) is CUSTOM


def test_override_with_vendor_prefix() -> None:
    """An override keyed by the full OpenRouter name prices that name."""
    assert price_for("openai/gpt-4o", {"openai/gpt-4o": CUSTOM}) is CUSTOM


def test_override_without_vendor_prefix_prices_vendor_names() -> None:
    """An override keyed by the bare model prices its OpenRouter name too."""
    assert price_for("z-ai/glm-4.6", {"glm-4.6": CUSTOM}) is CUSTOM


def test_cost_arithmetic() -> None:
    """Cost is tokens times the per-million price, input and output apart."""
    cost = cost_usd(ModelPrice(2.50, 10.00), prompt_tokens=1_000, completion_tokens=500)
    assert cost == pytest.approx(0.0025 + 0.005)


def test_cost_of_unknown_price_is_none() -> None:
    """Without a price, the cost is unknown rather than zero."""
    assert cost_usd(None, 1_000, 1_000) is None


def test_cost_of_no_tokens_is_zero() -> None:
    """A call that used no tokens costs nothing."""
    assert cost_usd(CUSTOM, 0, 0) == 0.0


@pytest.mark.parametrize("field", ["input_per_million", "output_per_million"])
def test_negative_price_is_refused(field: str) -> None:
    """A negative price raises InputValidationError naming the field."""
    prices = {"input_per_million": 1.0, "output_per_million": 1.0, field: -0.01}
    with pytest.raises(InputValidationError) as info:
        ModelPrice(**prices)
    assert info.value.field == field


def test_nan_price_is_refused() -> None:
    """A NaN price is refused when made, not when a response is priced with it."""
    with pytest.raises(InputValidationError):
        ModelPrice(math.nan, 1.0)


def test_free_model_is_allowed() -> None:
    """A zero price (a local model) is valid."""
    assert cost_usd(ModelPrice(0, 0), 10, 10) == 0.0


@given(
    st.floats(0, 1_000),
    st.floats(0, 1_000),
    st.integers(0, 10**7),
    st.integers(0, 10**7),
)
def test_cost_is_never_negative(inp: float, out: float, prompt: int, completion: int) -> None:
    """For valid prices and token counts the cost is a non-negative number."""
    cost = cost_usd(ModelPrice(inp, out), prompt, completion)
    assert cost is not None
    assert cost >= 0
