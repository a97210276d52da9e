"""Keep secrets out of messages, reprs and logs.

Two nets: every key a provider or a config is built with is registered here and
replaced wherever it appears, and well-known key shapes (OpenAI ``sk-``, Anthropic
``sk-ant-``, bearer tokens) are masked even when nobody registered them.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from typing import Any

REDACTED = "[REDACTED]"
_MIN_SECRET_LENGTH = 8

# A key starts a token: without the lookbehind, "risk-assessment-pipeline" would lose
# its tail. Auth schemes are case-insensitive, so "bearer" counts as "Bearer".
_PATTERN = re.compile(
    r"(?<![A-Za-z0-9])sk-ant-[A-Za-z0-9_\-]{8,}"
    r"|(?<![A-Za-z0-9])sk-[A-Za-z0-9_\-]{16,}"
    r"|(?<=(?i:Bearer) )[A-Za-z0-9._~+/\-]{8,}=*",
)

_lock = threading.Lock()
_secrets: set[str] = set()
_known: re.Pattern[str] | None = None


def register_secret(value: str | None) -> None:
    """Remember ``value`` so that :func:`redact` masks it everywhere from now on."""
    global _known
    if not value or len(value) < _MIN_SECRET_LENGTH or value in _secrets:
        return
    with _lock:
        _secrets.add(value)
        # Longest first, so a key that contains another is masked whole.
        ordered = sorted(_secrets, key=len, reverse=True)
        _known = re.compile("|".join(re.escape(s) for s in ordered))


def redact(text: str) -> str:
    """Return ``text`` with every registered secret and key-shaped token masked."""
    known = _known
    if known is not None:
        text = known.sub(REDACTED, text)
    return _PATTERN.sub(REDACTED, text)



def pseudonym(value: str, length: int = 16) -> str:
    """A short, stable stand-in for an identifier (a user, an API key id) in logs and
    errors: the first ``length`` hex digits of its SHA-256. Unsalted, so a guessable
    value (an e-mail address) can be found again by hashing guesses."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:length]


def redact_value(value: Any) -> Any:
    """``value`` with :func:`redact` applied to every string inside its dicts and lists."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(item) for item in value]
    return value

def mask(value: str | None) -> str:
    """A short, safe rendering of a secret for reprs: ``'sk-...[REDACTED]'`` or ``None``."""
    if not value:
        return "None"
    # A prefix helps tell keys apart; on a short secret it would give too much away.
    return f"{value[:3]}...{REDACTED}" if len(value) >= _MIN_SECRET_LENGTH else REDACTED


_FORMATTER = logging.Formatter()


class RedactingFilter(logging.Filter):
    """A logging filter that redacts secrets from each record's final message.

    chainweave's loggers carry it; add it to your own handlers to cover log lines
    that format chainweave objects.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            # A bad format/args pair must not raise in the caller (logging itself would
            # only report it), nor reach a handler's error report with a key in it.
            message = f"{record.msg!s} (unformattable arguments: {record.args!r})"
            record.msg, record.args = redact(message), None
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text, so the traceback is printed redacted too.
            record.exc_text = redact(_FORMATTER.formatException(record.exc_info))
        return True


def get_logger(name: str) -> logging.Logger:
    """A chainweave logger with the redacting filter attached once."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())
    return logger
