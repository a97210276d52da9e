"""The one exception tree of chainweave.

Every error a user can see comes from here::

    ChainweaveError
    ├── ConfigurationError              settings, environment, config files
    ├── SetupError                      something built wrongly before it ran
    │   ├── InputValidationError        a value given to a public type is malformed
    │   │   └── ChainInputError         a chain run lacks inputs or a template variable
    │   └── TemplateError               a jinja2 template does not compile or is refused
    └── ExecutionError                  something failed while running
        ├── CassetteMissError           a replayed run asked for an unrecorded request
        ├── ChainTimeoutError           a chain, branch or run took longer than its timeout
        ├── OutputParserError           a model's answer did not parse or validate
        ├── NoRouteError                a conditional chain found no route and has no default
        ├── QuorumError                 a parallel chain's quorum can no longer be reached
        ├── MaxIterationsError          a tool-calling agent hit max_iterations
        ├── StoreError                  a memory, checkpoint or key-value store failed
        │   ├── StoreCorruptedError     a database file is corrupt, foreign, or too new
        │   └── SchemaVersionError      a checkpoint's state schema differs, with no migration
        ├── SecurityViolationError      the pipeline blocked a request or response (rule ids)
        ├── IdempotencyConflictError    a request_id reused with a different payload (409)
        └── ProviderError               a model provider failed (HTTP status when it applies)
            ├── AuthenticationError     401/403: bad or missing key, no permission
            ├── RateLimitError          429: too many requests (``retry_after``)
            ├── QuotaExceededError      429/402 insufficient quota or credits (not retryable)
            ├── InvalidRequestError     400/422: the request itself is wrong
            ├── RequestTooLargeError    413 or a local size limit
            ├── ModelNotFoundError      404 or ``model_not_found``
            ├── ContentFilteredError    the vendor refused on content policy
            ├── ProviderUnavailableError  5xx, Anthropic's 529 overloaded
            ├── ProviderTimeoutError    408 and client-side timeouts
            ├── ProviderConnectionError connect/read failures, resets
            ├── MalformedResponseError  a body that is not the vendor's format
            ├── StreamInterruptedError  a stream that ended before its end marker
            └── CircuitOpenError        the deployment's breaker is open

Every error carries structured context: ``error_type`` (snake case, stable),
``error_code`` (upper case, stable), ``status_code`` where HTTP applies, ``retryable``,
``retry_after`` (seconds), and the ``provider``, ``model`` and ``node`` it came from.
Messages pass through :func:`chainweave._internal.redact.redact`, so an API key never
reaches a message, a repr or a log line.
"""

from __future__ import annotations

from typing import Any, ClassVar

from chainweave._internal.redact import redact

__all__ = [
    "AuthenticationError",
    "CassetteMissError",
    "ChainInputError",
    "ChainTimeoutError",
    "ChainweaveError",
    "CircuitOpenError",
    "ConfigurationError",
    "ContentFilteredError",
    "ExecutionError",
    "IdempotencyConflictError",
    "InputValidationError",
    "InvalidRequestError",
    "MalformedResponseError",
    "MaxIterationsError",
    "ModelNotFoundError",
    "NoRouteError",
    "OutputParserError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderTimeoutError",
    "ProviderUnavailableError",
    "QuorumError",
    "QuotaExceededError",
    "RateLimitError",
    "RequestTooLargeError",
    "SecurityViolationError",
    "SchemaVersionError",
    "SetupError",
    "StoreCorruptedError",
    "StoreError",
    "StreamInterruptedError",
    "TemplateError",
    "error_for_status",
]


class ChainweaveError(Exception):
    """Base of every chainweave error.

    Args:
        message: What went wrong and where. Secrets are redacted.
        status_code: The HTTP status, when one applies.
        retryable: Whether trying again may succeed; defaults to the class's value.
        retry_after: Seconds the caller should wait before retrying, when known.
        provider: The provider (adapter or deployment name) the error came from.
        model: The model the request asked for.
        node: The chain step or graph node the error came from.
        field: The input field at fault, for validation errors.
        details: Any further structured context (already free of secrets).
    """

    error_type: ClassVar[str] = "chainweave_error"
    error_code: ClassVar[str] = "CHAINWEAVE_ERROR"
    default_retryable: ClassVar[bool] = False
    default_status: ClassVar[int | None] = None

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        provider: str | None = None,
        model: str | None = None,
        node: str | None = None,
        field: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.message = redact(message)
        super().__init__(self.message)
        self.status_code = self.default_status if status_code is None else status_code
        self.retryable = self.default_retryable if retryable is None else retryable
        self.retry_after = retry_after
        self.provider = provider
        self.model = model
        self.node = node
        self.field = field
        self.details: dict[str, Any] = details or {}

    def __str__(self) -> str:
        context = [
            f"{name}={value}"
            for name, value in (
                ("provider", self.provider),
                ("model", self.model),
                ("node", self.node),
                ("status", self.status_code),
            )
            if value is not None
        ]
        return f"{self.message} ({', '.join(context)})" if context else self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, error_code={self.error_code!r})"

    def to_dict(self) -> dict[str, Any]:
        """The structured form used in API responses and audit logs."""
        return {
            "error_type": self.error_type,
            "error_code": self.error_code,
            "message": self.message,
            "status_code": self.status_code,
            "retryable": self.retryable,
            "retry_after": self.retry_after,
            "provider": self.provider,
            "model": self.model,
            "node": self.node,
            "field": self.field,
            "details": self.details,
        }


class ConfigurationError(ChainweaveError):
    """Settings, environment variables or a config file are missing or wrong."""

    error_type = "configuration_error"
    error_code = "CONFIGURATION_ERROR"


class SetupError(ChainweaveError):
    """Something was built wrongly before it ran (a graph, a chain, a spec)."""

    error_type = "setup_error"
    error_code = "SETUP_ERROR"


class InputValidationError(SetupError, ValueError):
    """A value given to a public type is malformed or out of range.

    ``errors`` lists every problem as ``{"field", "message", "type"}`` (never the input,
    which may be a secret); ``field`` is
    the first one's dotted location, such as ``"messages.0.role"``.
    """

    error_type = "validation_error"
    error_code = "INVALID_INPUT"

    def __init__(self, message: str, *, errors: list[dict[str, Any]] | None = None,
                 **context: Any) -> None:
        super().__init__(message, **context)
        self.errors: list[dict[str, Any]] = errors or []


class ChainInputError(InputValidationError):
    """A chain run is missing inputs, or a template refers to a variable it lacks.

    ``missing`` lists every missing name; ``node`` is the chain that needed them.
    """

    error_type = "chain_input_error"
    error_code = "CHAIN_INPUT_MISSING"

    def __init__(self, message: str, *, missing: list[str] | None = None,
                 **context: Any) -> None:
        super().__init__(message, **context)
        self.missing: list[str] = list(missing or [])


class TemplateError(SetupError):
    """A jinja2 template or expression does not compile, or the sandbox refused it.

    ``details`` holds ``line`` when the template compiler reports one.
    """

    error_type = "template_error"
    error_code = "TEMPLATE_ERROR"


class ExecutionError(ChainweaveError):
    """Something failed while running."""

    error_type = "execution_error"
    error_code = "EXECUTION_ERROR"


class CassetteMissError(ExecutionError):
    """A :class:`~chainweave.testing.ReplayModel` got a request its cassette lacks."""

    error_type = "cassette_miss"
    error_code = "CASSETTE_MISS"


class ChainTimeoutError(ExecutionError):
    """A chain, a parallel branch or a whole run took longer than its timeout."""

    error_type = "chain_timeout"
    error_code = "CHAIN_TIMEOUT"
    default_retryable = True


class OutputParserError(ExecutionError):
    """A model's answer did not parse or validate, even after the repair round.

    ``details`` holds ``errors`` (one message per attempt) and ``attempts``.
    """

    error_type = "output_parser_error"
    error_code = "OUTPUT_PARSE_FAILED"


class NoRouteError(ExecutionError):
    """A conditional chain matched no route and has no default route."""

    error_type = "no_route"
    error_code = "NO_ROUTE"


class QuorumError(ExecutionError):
    """Too many branches of a parallel chain failed for its quorum to be reached.

    ``errors`` maps each failed branch to its exception.
    """

    error_type = "quorum_not_reached"
    error_code = "QUORUM_NOT_REACHED"

    def __init__(self, message: str, *, errors: dict[str, BaseException] | None = None,
                 **context: Any) -> None:
        super().__init__(message, **context)
        self.errors: dict[str, BaseException] = dict(errors or {})


class MaxIterationsError(ExecutionError):
    """A tool-calling agent reached ``max_iterations`` without a final answer."""

    error_type = "max_iterations"
    error_code = "MAX_ITERATIONS"


class StoreError(ExecutionError):
    """A memory, checkpoint or key-value store could not do what was asked.

    ``details`` holds ``store`` (the backend) and, for files, ``path``.
    """

    error_type = "store_error"
    error_code = "STORE_ERROR"


class StoreCorruptedError(StoreError):
    """A database file is corrupt, belongs to another program, or was written by a newer
    chainweave. The file is left exactly as it was: never recreated over the user's data."""

    error_type = "store_corrupted"
    error_code = "STORE_CORRUPTED"


class SchemaVersionError(StoreError):
    """A checkpoint was written under another state-schema version and no registered
    migration leads from it to the one asked for. ``details`` holds both versions."""

    error_type = "schema_version_mismatch"
    error_code = "SCHEMA_VERSION_MISMATCH"


class SecurityViolationError(ExecutionError):
    """The pipeline's security checks blocked a request or a response.

    ``details`` holds ``rule_ids`` and ``categories`` of the findings that blocked it and
    ``direction`` (``input`` or ``output``); never the matched text. For a blocked
    request, no provider call was made.
    """

    error_type = "security_violation"
    error_code = "SECURITY_VIOLATION"
    default_status = 400

    @property
    def rule_ids(self) -> list[str]:
        """The ids of the rules that blocked the call."""
        return list(self.details.get("rule_ids", []))


class IdempotencyConflictError(ExecutionError):
    """A ``request_id`` was used again with a different payload (HTTP 409)."""

    error_type = "idempotency_conflict"
    error_code = "IDEMPOTENCY_CONFLICT"
    default_status = 409


class ProviderError(ExecutionError):
    """A model provider failed. Subclasses say how; ``retryable`` says what to do."""

    error_type = "provider_error"
    error_code = "PROVIDER_ERROR"


class AuthenticationError(ProviderError):
    """The key is missing, invalid, or lacks permission (401/403)."""

    error_type = "authentication_error"
    error_code = "AUTHENTICATION_FAILED"


class RateLimitError(ProviderError):
    """Too many requests (429). ``retry_after`` holds the vendor's wait, when sent."""

    error_type = "rate_limit_error"
    error_code = "RATE_LIMITED"
    default_retryable = True


class QuotaExceededError(ProviderError):
    """The account is out of quota or credits; waiting will not help."""

    error_type = "quota_exceeded"
    error_code = "QUOTA_EXCEEDED"


class InvalidRequestError(ProviderError):
    """The request itself is wrong (400/422); sending it again will fail again."""

    error_type = "invalid_request_error"
    error_code = "INVALID_REQUEST"


class RequestTooLargeError(ProviderError):
    """The request is larger than the vendor or a configured limit allows."""

    error_type = "request_too_large"
    error_code = "REQUEST_TOO_LARGE"


class ModelNotFoundError(ProviderError):
    """The model (or Azure deployment) does not exist or is not available (404)."""

    error_type = "model_not_found"
    error_code = "MODEL_NOT_FOUND"


class ContentFilteredError(ProviderError):
    """The vendor refused the request or response on content policy."""

    error_type = "content_filtered"
    error_code = "CONTENT_FILTERED"


class ProviderUnavailableError(ProviderError):
    """The vendor is down or overloaded (5xx, Anthropic's 529)."""

    error_type = "provider_unavailable"
    error_code = "PROVIDER_UNAVAILABLE"
    default_retryable = True


class ProviderTimeoutError(ProviderError):
    """The call took longer than its timeout (408 or a client-side timeout)."""

    error_type = "timeout_error"
    error_code = "TIMEOUT"
    default_retryable = True


class ProviderConnectionError(ProviderError):
    """The connection failed: refused, reset, or closed mid-response."""

    error_type = "connection_error"
    error_code = "CONNECTION_FAILED"
    default_retryable = True


class MalformedResponseError(ProviderError):
    """The vendor answered with a body that is not its documented format."""

    error_type = "malformed_response"
    error_code = "MALFORMED_RESPONSE"
    default_retryable = True


class StreamInterruptedError(ProviderError):
    """A stream ended before its end marker; what arrived is in ``details``."""

    error_type = "stream_interrupted"
    error_code = "STREAM_INTERRUPTED"
    default_retryable = True


class CircuitOpenError(ProviderError):
    """The deployment's circuit breaker is open; ``retry_after`` is the cooldown left."""

    error_type = "circuit_open"
    error_code = "CIRCUIT_OPEN"
    default_retryable = True


def error_for_status(
    status: int,
    message: str,
    *,
    retry_after: float | None = None,
    **context: Any,
) -> ProviderError:
    """Build the error for an HTTP status when the body says nothing more specific.

    Vendor adapters refine this with their error codes (``model_not_found``,
    ``insufficient_quota``, ``content_filter``); the status decides the rest.
    """
    cls: type[ProviderError]
    if status in (401, 403):
        cls = AuthenticationError
    elif status == 402:
        cls = QuotaExceededError
    elif status == 404:
        cls = ModelNotFoundError
    elif status == 408:
        cls = ProviderTimeoutError
    elif status == 413:
        cls = RequestTooLargeError
    elif status == 429:
        cls = RateLimitError
    elif status >= 500:
        cls = ProviderUnavailableError
    elif 400 <= status < 500:
        cls = InvalidRequestError
    else:
        cls = MalformedResponseError
    return cls(message, status_code=status, retry_after=retry_after, **context)
