"""The request pipeline: ordered stages around a ChatModel.

Validation and size limits, input and output security, idempotency, a response cache,
rate limits, a streaming processor and an audit log, each a :class:`Stage` in its own
module. :class:`Pipeline` is itself a :class:`~chainweave.types.ChatModel`;
:func:`default_stages` (or :meth:`Pipeline.from_settings`) builds the stage list the
settings ask for.
"""

from chainweave.pipeline.audit import AuditLog
from chainweave.pipeline.backends import MemoryBackend, RedisBackend, StoreBackend
from chainweave.pipeline.base import (
    Call,
    NextChat,
    NextStream,
    Pipeline,
    SecurityEvent,
    Stage,
    closing_stream,
)
from chainweave.pipeline.cache import ResponseCache
from chainweave.pipeline.defaults import default_stages
from chainweave.pipeline.findings import Detector, Finding
from chainweave.pipeline.idempotency import Idempotency
from chainweave.pipeline.keys import request_fingerprint
from chainweave.pipeline.ratelimit import RateLimiter
from chainweave.pipeline.security.injection import InjectionDetector, InjectionRule
from chainweave.pipeline.security.normalize import normalize_text
from chainweave.pipeline.security.pii import CustomPattern, PIIDetector
from chainweave.pipeline.security.redaction import redact_findings
from chainweave.pipeline.security.stream_redact import StreamRedactor
from chainweave.pipeline.security.validator import SecurityValidator
from chainweave.pipeline.singleflight import SingleFlight
from chainweave.pipeline.streaming import StreamingProcessor
from chainweave.pipeline.validation import SizeLimits

__all__ = [
    "AuditLog",
    "Call",
    "CustomPattern",
    "Detector",
    "Finding",
    "Idempotency",
    "InjectionDetector",
    "InjectionRule",
    "MemoryBackend",
    "NextChat",
    "NextStream",
    "PIIDetector",
    "Pipeline",
    "RateLimiter",
    "RedisBackend",
    "ResponseCache",
    "SecurityEvent",
    "SecurityValidator",
    "SingleFlight",
    "SizeLimits",
    "Stage",
    "StoreBackend",
    "StreamRedactor",
    "StreamingProcessor",
    "closing_stream",
    "default_stages",
    "normalize_text",
    "redact_findings",
    "request_fingerprint",
]
