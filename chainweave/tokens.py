"""Estimate how many tokens a prompt will use, before sending it.

Budget checks call this before every LLM call, so it is cheap: tiktoken is imported
once, encoders are cached, and without tiktoken a pure-Python rule stands in.

With ``tiktoken`` installed (``pip install chainweave[tiktoken]``) and its encoding
loadable, text is counted with ``tiktoken.encoding_for_model(model)``, or
``o200k_base`` (then ``cl100k_base``) for a model tiktoken does not know. Loading an
encoding may need a download; if that fails, or tiktoken is missing, the heuristic is
used from then on, silently.

The heuristic, for one text: ``ceil(ascii / 4) + cjk + ceil(other / 2)``, where
``ascii`` counts ASCII characters (about four to a token in English), ``cjk`` counts
Chinese, Japanese and Korean characters (about one token each) and ``other`` counts
every other non-ASCII character (about half a token each).

A conversation adds, like OpenAI's cookbook formula, 4 tokens per message (role and
framing) and 3 for priming the reply, to the tokens of each message's text, its
``name`` and its tool calls' names and arguments. An image part counts 85 tokens (the
low-detail figure). An empty conversation is 0.
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Final, Protocol, cast

from chainweave.errors import InputValidationError
from chainweave.types import ImagePart, Message

__all__ = [
    "IMAGE_TOKENS",
    "MESSAGE_OVERHEAD",
    "REPLY_PRIMING",
    "estimate_text_tokens",
    "estimate_tokens",
]

MESSAGE_OVERHEAD: Final = 4
"""Tokens each message adds beyond its text: role and framing."""

REPLY_PRIMING: Final = 3
"""Tokens every request adds once, priming the assistant's reply."""

IMAGE_TOKENS: Final = 85
"""Tokens counted for one image part (OpenAI's low-detail figure)."""

_FALLBACK_ENCODINGS: Final = ("o200k_base", "cl100k_base")
_MAX_CACHED_MODELS: Final = 256

_CJK = re.compile(
    "["
    "\u1100-\u11ff"  # Hangul Jamo
    "\u2e80-\u2fdf"  # CJK radicals, Kangxi radicals
    "\u3000-\u303f"  # CJK symbols and punctuation
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u3100-\u312f\u3130-\u318f"  # Bopomofo, Hangul compatibility Jamo
    "\u31a0-\u31ff"  # Bopomofo extended, CJK strokes, Katakana extension
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\uac00-\ud7af"  # Hangul syllables
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\uff00-\uffef"  # half- and full-width forms
    "\U00020000-\U0003134f"  # CJK extensions B to G, compatibility supplement
    "]"
)


class _Encoding(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...


class _Encoders:
    """tiktoken, imported at most once, and one encoder per model, cached.

    ``None`` in the cache means "use the heuristic for this model"; once no encoding
    loads at all, tiktoken is given up on for the rest of the process.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget tiktoken and every cached encoder (for tests)."""
        self._module: Any = None
        self._imported = False
        self._usable = True
        self._by_model: dict[str | None, _Encoding | None] = {}

    def get(self, model: str | None) -> _Encoding | None:
        """The encoder for ``model``, or ``None`` to use the heuristic."""
        try:
            return self._by_model[model]
        except KeyError:
            pass
        with self._lock:
            encoder = self._load(model) if self._usable else None
            if len(self._by_model) >= _MAX_CACHED_MODELS:
                self._by_model.clear()
            self._by_model[model] = encoder
            return encoder

    def _load(self, model: str | None) -> _Encoding | None:
        module = self._tiktoken()
        if module is None:
            return None
        if model:
            try:
                return cast(_Encoding, module.encoding_for_model(model))
            except Exception:  # unknown model (KeyError) or a failed download
                pass
        for name in _FALLBACK_ENCODINGS:
            try:
                return cast(_Encoding, module.get_encoding(name))
            except Exception:
                continue
        self._usable = False  # nothing loads (offline?): stop trying
        return None

    def _tiktoken(self) -> Any:
        if not self._imported:
            self._imported = True
            try:
                self._module = importlib.import_module("tiktoken")
            except Exception:
                self._usable = False
        return self._module if self._usable else None


_ENCODERS = _Encoders()


def estimate_text_tokens(text: str, model: str | None = None) -> int:
    """Tokens in ``text`` alone, with tiktoken when usable, else the heuristic.

    Args:
        text: The text to count.
        model: The model it is for; picks tiktoken's encoding.

    Returns:
        The token count (0 for empty text).
    """
    if not text:
        return 0
    encoder = _ENCODERS.get(model)
    if encoder is not None:
        try:
            return len(encoder.encode_ordinary(text))
        except Exception:
            pass  # a broken encoder must not break a budget check
    return _heuristic(text)


def _heuristic(text: str) -> int:
    if text.isascii():
        return (len(text) + 3) // 4
    ascii_chars = len(text.encode("ascii", "ignore"))
    cjk = len(_CJK.findall(text))
    other = len(text) - ascii_chars - cjk
    return (ascii_chars + 3) // 4 + cjk + (other + 1) // 2


def estimate_tokens(
    messages: Sequence[Message | Mapping[str, Any] | str] | str,
    model: str | None = None,
) -> int:
    """Tokens a chat request's messages will use, by the rule in the module docstring.

    Args:
        messages: :class:`~chainweave.types.Message` objects, message dicts in the
            OpenAI shape, or plain strings (counted as user messages). A single string
            is one message.
        model: The model the request is for; picks tiktoken's encoding.

    Returns:
        The estimated prompt tokens: 0 for no messages.

    Raises:
        InputValidationError: an item is not a message, a dict or a string.
    """
    if isinstance(messages, str):
        messages = [messages]
    if not messages:
        return 0
    total = REPLY_PRIMING
    for message in messages:
        total += MESSAGE_OVERHEAD + _message_tokens(message, model)
    return total


def _message_tokens(message: Message | Mapping[str, Any] | str, model: str | None) -> int:
    if isinstance(message, str):
        return estimate_text_tokens(message, model)
    if isinstance(message, Message):
        return _model_message_tokens(message, model)
    if isinstance(message, Mapping):
        return _dict_message_tokens(message, model)
    raise InputValidationError(
        f"estimate_tokens: expected a Message, a dict or a str, got {type(message).__name__}"
    )


def _model_message_tokens(message: Message, model: str | None) -> int:
    total = estimate_text_tokens(message.name or "", model)
    if isinstance(message.content, list):
        for part in message.content:
            total += IMAGE_TOKENS if isinstance(part, ImagePart) else \
                estimate_text_tokens(part.text, model)
    else:
        total += estimate_text_tokens(message.content or "", model)
    for call in message.tool_calls or ():
        total += estimate_text_tokens(call.name, model)
        total += estimate_text_tokens(call.arguments, model)
    return total


def _dict_message_tokens(message: Mapping[str, Any], model: str | None) -> int:
    total = _text_of(message.get("name"), model) + _content_tokens(message.get("content"), model)
    for call in message.get("tool_calls") or ():
        if isinstance(call, Mapping):
            nested = call.get("function")
            fn = nested if isinstance(nested, Mapping) else call
            total += _text_of(fn.get("name"), model) + _text_of(fn.get("arguments"), model)
    call = message.get("function_call")
    if isinstance(call, Mapping):
        total += _text_of(call.get("name"), model) + _text_of(call.get("arguments"), model)
    return total


def _content_tokens(content: Any, model: str | None) -> int:
    if isinstance(content, list):
        total = 0
        for part in content:
            if isinstance(part, Mapping) and part.get("type") == "image_url":
                total += IMAGE_TOKENS
            elif isinstance(part, Mapping):
                total += _text_of(part.get("text"), model)
            else:
                total += _text_of(part, model)
        return total
    return _text_of(content, model)


def _text_of(value: Any, model: str | None) -> int:
    if value is None:
        return 0
    return estimate_text_tokens(value if isinstance(value, str) else str(value), model)
