"""The request pipeline: ordered stages around a ChatModel.

Validation and size limits, input and output security, idempotency, a response cache,
rate limits, a streaming processor and an audit log, each a :class:`Stage` in its own
module. :class:`Pipeline` is itself a :class:`~chainweave.types.ChatModel`.
"""

from chainweave.pipeline.base import Call, NextChat, NextStream, Pipeline, SecurityEvent, Stage
from chainweave.pipeline.findings import Detector, Finding

__all__ = [
    "Call",
    "Detector",
    "Finding",
    "NextChat",
    "NextStream",
    "Pipeline",
    "SecurityEvent",
    "Stage",
]
