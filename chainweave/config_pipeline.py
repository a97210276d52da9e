"""The request pipeline's settings sections: what :func:`chainweave.pipeline.default_stages`
builds its stage list from.

::

    limits:      {max_messages: 1000, max_request_chars: 2000000}
    security:    {enabled: true, injection: block, pii: redact, secrets: redact,
                  redaction: placeholder, audit_enabled: true, audit_path: audit.jsonl}
    idempotency: {enabled: true, ttl: 24h}
    cache:       {enabled: true, ttl: 1h, max_size: 1000, redis_url: "${REDIS_URL:-}"}
    rate_limit:  {requests_per_minute: 60, tokens_per_minute: 100000, per: user}
    streaming:   {enabled: true, buffer_size: 100, flush_interval: 50ms}

Each section is a frozen model with the same value forms as the rest of the settings
(durations such as ``"1h"``, flags such as ``"yes"``, blank meaning unset).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field

from chainweave._internal.values import duration_seconds, flag
from chainweave.config_routing import _Section

__all__ = [
    "CacheSettings",
    "IdempotencySettings",
    "LimitsSettings",
    "RateLimitSettings",
    "SecurityAction",
    "SecuritySettings",
    "StreamingSettings",
]

SecurityAction = Literal["block", "redact", "flag", "off"]
"""What the security stage does about a category of findings; ``off`` skips it."""


def _blank_is_none(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


def _redis_url(value: str) -> str:
    if not re.match(r"(rediss?|unix)://", value):
        raise ValueError("expected a redis://, rediss:// or unix:// URL")
    return value


_Blank = BeforeValidator(_blank_is_none)
_Flag = Annotated[bool, BeforeValidator(flag)]
_Seconds = Annotated[float, BeforeValidator(duration_seconds)]
_Positive = Annotated[_Seconds, Field(gt=0)]
_Count = Annotated[int, Field(gt=0)]
_MaybeCount = Annotated[_Count | None, _Blank]
_MaybeRate = Annotated[Annotated[float, Field(gt=0, allow_inf_nan=False)] | None, _Blank]
_MaybeText = Annotated[Annotated[str, Field(min_length=1)] | None, _Blank]
_MaybeRedis = Annotated[Annotated[str, AfterValidator(_redis_url)] | None, _Blank]


class CacheSettings(_Section):
    """The response cache: off unless enabled. ``ttl`` is seconds.

    ``redis_url`` (``REDIS_URL``) puts the cache and the idempotency store on Redis, so
    that several processes share them; without it both live in memory.
    """

    enabled: _Flag = False
    ttl: _Positive = 3600.0
    max_size: _Count = 1000
    redis_url: _MaybeRedis = None


class SecuritySettings(_Section):
    """Security checks of the pipeline: on by default; audit logging off.

    ``injection``, ``pii`` and ``secrets`` set the action for each category of findings
    (block, redact, flag or off), on requests and, with ``output_filtering``, on
    responses (where a blocked injection is only flagged: a reply may quote one).
    ``redaction`` is how redacted values are replaced. ``blocklist`` words block a
    response; ``allow`` lists values never reported (a support address, say).
    """

    enabled: _Flag = True
    input_validation: _Flag = True
    output_filtering: _Flag = True
    injection: SecurityAction = "block"
    injection_threshold: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1.0
    pii: SecurityAction = "redact"
    secrets: SecurityAction = "redact"
    redaction: Literal["mask", "hash", "placeholder"] = "placeholder"
    blocklist: tuple[Annotated[str, Field(min_length=1)], ...] = ()
    allow: tuple[Annotated[str, Field(min_length=1)], ...] = ()
    audit_enabled: _Flag = False
    audit_path: _MaybeText = None
    audit_log_content: _Flag = False


class LimitsSettings(_Section):
    """Request size limits checked before anything else; blank or null turns one off."""

    max_messages: _MaybeCount = 1000
    max_message_chars: _MaybeCount = 400_000
    max_request_chars: _MaybeCount = 2_000_000
    max_message_tokens: _MaybeCount = None
    max_request_tokens: _MaybeCount = None


class RateLimitSettings(_Section):
    """Requests and tokens per minute (``RATE_LIMIT_REQUESTS_PER_MINUTE``,
    ``RATE_LIMIT_TOKENS_PER_MINUTE``), counted globally, per user or per API key.

    A request over the limit waits up to ``max_wait`` seconds, then is refused with
    ``RateLimitError``. No limit is set by default.
    """

    requests_per_minute: _MaybeRate = None
    tokens_per_minute: _MaybeRate = None
    per: Literal["global", "user", "api_key"] = "global"
    max_wait: Annotated[_Seconds, Field(ge=0)] = 0.0


class IdempotencySettings(_Section):
    """Idempotency by ``request_id``: on by default; results kept ``ttl`` seconds."""

    enabled: _Flag = True
    ttl: _Positive = 86400.0
    max_size: _Count = 10_000


class StreamingSettings(_Section):
    """The streaming processor, which coalesces deltas: off by default."""

    enabled: _Flag = False
    buffer_size: _Count = 100
    flush_interval: _Positive = 0.05
    max_pending: _Count = 64
