"""Tests for chainweave.tokens: the documented heuristic and the tiktoken path."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainweave import tokens
from chainweave.errors import InputValidationError
from chainweave.tokens import (
    IMAGE_TOKENS,
    MESSAGE_OVERHEAD,
    REPLY_PRIMING,
    estimate_text_tokens,
    estimate_tokens,
)
from chainweave.types import Message, ToolCall


@pytest.fixture(autouse=True)
def no_tiktoken(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts without tiktoken (even if installed) and with empty caches."""
    monkeypatch.setitem(sys.modules, "tiktoken", None)
    tokens._ENCODERS.reset()
    yield
    tokens._ENCODERS.reset()


class FakeEncoding:
    """Counts one token per whitespace-separated word, tagged with its name."""

    def __init__(self, name: str) -> None:
        self.name = name

    def encode_ordinary(self, text: str) -> list[int]:
        return [0] * len(text.split())


def fake_tiktoken(*, known: tuple[str, ...] = ("gpt-4o",), broken: tuple[str, ...] = ()
                  ) -> types.SimpleNamespace:
    """A stand-in tiktoken module that records what was loaded."""
    calls: list[str] = []

    def encoding_for_model(model: str) -> FakeEncoding:
        calls.append(f"model:{model}")
        if model not in known:
            raise KeyError(model)
        return FakeEncoding(f"for:{model}")

    def get_encoding(name: str) -> FakeEncoding:
        calls.append(f"encoding:{name}")
        if name in broken:
            raise OSError("no network")
        return FakeEncoding(name)

    return types.SimpleNamespace(encoding_for_model=encoding_for_model,
                                 get_encoding=get_encoding, calls=calls)


def install(monkeypatch: pytest.MonkeyPatch, module: Any) -> None:
    """Make ``import tiktoken`` return ``module``."""
    monkeypatch.setitem(sys.modules, "tiktoken", module)


# --- the heuristic ---------------------------------------------------------------------


def test_ascii_is_four_characters_per_token() -> None:
    """ASCII text counts ceil(len / 4)."""
    assert estimate_text_tokens("abcd") == 1
    assert estimate_text_tokens("abcde") == 2
    assert estimate_text_tokens("x" * 400) == 100


def test_cjk_characters_are_one_token_each() -> None:
    """Chinese, Japanese and Korean characters count one token each."""
    assert estimate_text_tokens("你好世界") == 4
    assert estimate_text_tokens("こんにちは") == 5
    assert estimate_text_tokens("안녕") == 2


def test_other_non_ascii_is_half_a_token() -> None:
    """Other non-ASCII characters count half a token each, rounded up."""
    assert estimate_text_tokens("éééé") == 2
    assert estimate_text_tokens("ééé") == 2


def test_mixed_text_sums_the_three_rules() -> None:
    """A mix is ceil(ascii/4) + cjk + ceil(other/2)."""
    assert estimate_text_tokens("hello 世界 café") == 3 + 2 + 1


def test_empty_text_is_zero() -> None:
    """No text, no tokens."""
    assert estimate_text_tokens("") == 0


@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_ascii_rule_holds_for_any_ascii(text: str) -> None:
    """For any ASCII text the estimate is exactly ceil(len / 4)."""
    assert estimate_text_tokens(text) == -(-len(text) // 4)


@given(st.text(), st.text())
def test_joined_text_never_costs_more_than_parts(a: str, b: str) -> None:
    """Joining two texts never costs more than counting them apart."""
    assert estimate_text_tokens(a + b) <= estimate_text_tokens(a) + estimate_text_tokens(b)


# --- messages --------------------------------------------------------------------------


def test_each_message_adds_overhead_and_reply_priming() -> None:
    """A conversation is its texts + 4 per message + 3 for the reply."""
    assert (MESSAGE_OVERHEAD, REPLY_PRIMING) == (4, 3)
    assert estimate_tokens(["abcd", "abcdabcd"]) == (1 + 4) + (2 + 4) + 3


def test_no_messages_is_zero() -> None:
    """An empty conversation costs nothing."""
    assert estimate_tokens([]) == 0


def test_single_string_is_one_message() -> None:
    """A bare string is one user message, not a sequence of characters."""
    assert estimate_tokens("abcdabcd") == 2 + 4 + 3


def test_message_dict_and_string_agree() -> None:
    """A Message, its dict form and its text give the same estimate."""
    as_message = estimate_tokens([Message.user("hello there")])
    assert as_message == estimate_tokens([{"role": "user", "content": "hello there"}])
    assert as_message == estimate_tokens(["hello there"])


def test_name_and_tool_calls_are_counted() -> None:
    """A message's name and its tool calls' names and arguments count."""
    call = ToolCall(id="c1", name="lookup", arguments='{"q": "abcd"}')
    message = Message(role="assistant", content=None, name="bot1", tool_calls=[call])
    expected = 1 + 2 + 4 + MESSAGE_OVERHEAD + REPLY_PRIMING  # bot1, lookup, args
    assert estimate_tokens([message]) == expected


def test_dict_tool_calls_in_openai_shape_are_counted() -> None:
    """OpenAI's nested tool-call dicts count like ToolCall objects."""
    message = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function",
         "function": {"name": "lookup", "arguments": '{"q": "abcd"}'}}]}
    assert estimate_tokens([message]) == 2 + 4 + MESSAGE_OVERHEAD + REPLY_PRIMING


def test_image_parts_count_a_fixed_amount() -> None:
    """Each image part counts IMAGE_TOKENS; text parts count their text."""
    parts = [{"type": "text", "text": "abcd"},
             {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]
    expected = 1 + IMAGE_TOKENS + MESSAGE_OVERHEAD + REPLY_PRIMING
    assert estimate_tokens([{"role": "user", "content": parts}]) == expected
    assert estimate_tokens([Message(role="user", content=parts)]) == expected


def test_unsupported_item_is_input_validation_error() -> None:
    """An item that is not a message, dict or string is refused clearly."""
    with pytest.raises(InputValidationError, match="got int"):
        estimate_tokens([42])  # type: ignore[list-item]


# --- tiktoken --------------------------------------------------------------------------


def test_tiktoken_encoding_for_model_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """With tiktoken available, the model's own encoding counts the text."""
    fake = fake_tiktoken()
    install(monkeypatch, fake)
    assert estimate_text_tokens("one two three", model="gpt-4o") == 3
    assert fake.calls == ["model:gpt-4o"]


def test_unknown_model_falls_back_to_o200k(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model tiktoken does not know is counted with o200k_base."""
    fake = fake_tiktoken()
    install(monkeypatch, fake)
    assert estimate_text_tokens("one two", model="my-local-llama") == 2
    assert fake.calls == ["model:my-local-llama", "encoding:o200k_base"]


def test_o200k_failure_falls_back_to_cl100k(monkeypatch: pytest.MonkeyPatch) -> None:
    """If o200k_base will not load, cl100k_base is tried next."""
    fake = fake_tiktoken(broken=("o200k_base",))
    install(monkeypatch, fake)
    assert estimate_text_tokens("one two") == 2
    assert fake.calls == ["encoding:o200k_base", "encoding:cl100k_base"]


def test_encoder_is_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    """Repeated estimates for one model load its encoding once."""
    fake = fake_tiktoken()
    install(monkeypatch, fake)
    for _ in range(5):
        estimate_tokens(["a b c"], model="gpt-4o")
    assert fake.calls == ["model:gpt-4o"]


def test_failed_encoding_load_falls_back_silently(monkeypatch: pytest.MonkeyPatch) -> None:
    """When no encoding loads (offline), the heuristic answers."""
    install(monkeypatch, fake_tiktoken(known=(), broken=("o200k_base", "cl100k_base")))
    assert estimate_text_tokens("one two three four five", model="gpt-4o") == \
        -(-len("one two three four five") // 4)


def test_failed_load_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    """After a failed load, tiktoken is not tried again, even for another model."""
    fake = fake_tiktoken(known=(), broken=("o200k_base", "cl100k_base"))
    install(monkeypatch, fake)
    estimate_text_tokens("x", model="gpt-4o")
    attempts = len(fake.calls)
    estimate_text_tokens("x", model="claude-3-haiku")
    estimate_text_tokens("x")
    assert len(fake.calls) == attempts


def test_missing_tiktoken_uses_heuristic() -> None:
    """Without tiktoken (the autouse fixture blocks it), the heuristic answers."""
    assert estimate_text_tokens("one two three", model="gpt-4o") == 4


def test_encoder_error_at_count_time_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """An encoder that raises while counting does not break the estimate."""

    class Broken:
        def encode_ordinary(self, text: str) -> list[int]:
            raise RuntimeError("boom")

    module = types.SimpleNamespace(encoding_for_model=lambda model: Broken(),
                                   get_encoding=lambda name: Broken())
    install(monkeypatch, module)
    assert estimate_text_tokens("abcdabcd", model="gpt-4o") == 2
