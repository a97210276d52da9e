"""The default stage list, built from settings.

In order, outermost first (each wraps the ones after it)::

    audit → validation → security → idempotency → cache → rate_limit → streaming → model

- ``audit`` (``LLM_AUDIT_ENABLED``; ``security.audit_path`` or the
  ``chainweave.audit`` logger) is outermost so it records refused and cached calls too;
- ``validation`` applies ``limits:`` and is always present;
- ``security`` (``LLM_SECURITY_ENABLED``, on by default) checks requests
  (``security.input_validation``) and responses (``security.output_filtering``);
- ``idempotency`` (on by default) answers a repeated ``request_id`` from its store;
- ``cache`` (``LLM_CACHE_ENABLED``, ``LLM_CACHE_TTL``, ``LLM_CACHE_SIZE``);
- ``rate_limit`` when ``RATE_LIMIT_REQUESTS_PER_MINUTE`` or
  ``RATE_LIMIT_TOKENS_PER_MINUTE`` is set;
- ``streaming`` when ``streaming.enabled``.

With ``REDIS_URL`` (``cache.redis_url``) the cache and the idempotency store live on
Redis, falling back to memory while Redis is down.
"""

from __future__ import annotations

from chainweave.config import Settings
from chainweave.pipeline.audit import AuditLog
from chainweave.pipeline.backends import MemoryBackend, RedisBackend, StoreBackend
from chainweave.pipeline.base import Stage
from chainweave.pipeline.cache import ResponseCache
from chainweave.pipeline.idempotency import Idempotency
from chainweave.pipeline.ratelimit import RateLimiter
from chainweave.pipeline.security.validator import SecurityValidator
from chainweave.pipeline.streaming import StreamingProcessor
from chainweave.pipeline.validation import SizeLimits

__all__ = ["default_stages"]


def _security(settings: Settings) -> SecurityValidator | None:
    section = settings.security
    if not section.enabled or not (section.input_validation or section.output_filtering):
        return None
    return SecurityValidator(
        injection=section.injection, pii=section.pii, secrets=section.secrets,
        redaction=section.redaction, injection_threshold=section.injection_threshold,
        allow=section.allow, blocklist=section.blocklist,
        check_input=section.input_validation, check_output=section.output_filtering)


def _audit(settings: Settings, security: SecurityValidator | None) -> AuditLog | None:
    section = settings.security
    if not section.audit_enabled:
        return None
    content_filter = security.redact if security is not None else None
    return AuditLog(section.audit_path, log_content=section.audit_log_content,
                    content_filter=content_filter)


def _backend(settings: Settings, prefix: str, max_size: int, ttl: float) -> StoreBackend:
    memory = MemoryBackend(max_size=max_size, ttl=ttl)
    url = settings.cache.redis_url
    if url is None:
        return memory
    return RedisBackend(url, prefix=f"chainweave:{prefix}:", fallback=memory)


def default_stages(settings: Settings | None = None) -> list[Stage]:
    """The stages ``settings`` ask for (``Settings.from_env()`` when omitted), in order."""
    settings = settings or Settings.from_env()
    security = _security(settings)
    stages: list[Stage | None] = [
        _audit(settings, security),
        SizeLimits(**settings.limits.model_dump()),
        security,
    ]
    idempotency, cache = settings.idempotency, settings.cache
    if idempotency.enabled:
        backend = _backend(settings, "idem", idempotency.max_size, idempotency.ttl)
        stages.append(Idempotency(backend, ttl=idempotency.ttl))
    if cache.enabled:
        stages.append(ResponseCache(_backend(settings, "cache", cache.max_size, cache.ttl),
                                    ttl=cache.ttl))
    limits = settings.rate_limit
    if limits.requests_per_minute is not None or limits.tokens_per_minute is not None:
        stages.append(RateLimiter(limits.requests_per_minute, limits.tokens_per_minute,
                                  key=limits.per, max_wait=limits.max_wait))
    streaming = settings.streaming
    if streaming.enabled:
        stages.append(StreamingProcessor(streaming.buffer_size, streaming.flush_interval,
                                         max_pending=streaming.max_pending))
    return [stage for stage in stages if stage is not None]
