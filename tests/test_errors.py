"""The one exception tree: shape, structured context, status mapping and redaction."""

from __future__ import annotations

import re

import pytest

import chainweave.errors as errors_module
from chainweave._internal import redact as redact_module
from chainweave._internal.redact import register_secret
from chainweave.errors import (
    AuthenticationError,
    ChainweaveError,
    ConfigurationError,
    ExecutionError,
    InputValidationError,
    InvalidRequestError,
    MalformedResponseError,
    ModelNotFoundError,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    QuotaExceededError,
    RateLimitError,
    RequestTooLargeError,
    SetupError,
    error_for_status,
)

ERROR_CLASSES: list[type[ChainweaveError]] = [
    cls for name in errors_module.__all__
    if isinstance(cls := getattr(errors_module, name), type) and issubclass(cls, ChainweaveError)
]

CONTEXT_FIELDS = ("error_type", "error_code", "status_code", "retryable", "retry_after",
                  "provider", "model", "node", "field")


@pytest.fixture
def fresh_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty secret registry for the test, restored afterwards."""
    monkeypatch.setattr(redact_module, "_secrets", set())
    monkeypatch.setattr(redact_module, "_known", None)


def _drawn_tree() -> list[tuple[str, str]]:
    """(child, parent) pairs as the module docstring draws them, read by indentation."""
    pairs: list[tuple[str, str]] = []
    stack: list[tuple[int, str]] = []
    for line in (errors_module.__doc__ or "").splitlines():
        match = re.match(r"^[ │├└─]*(?P<name>[A-Z]\w*Error)\b", line)
        if match is None:
            continue
        column = match.start("name")
        while stack and stack[-1][0] >= column:
            stack.pop()
        if stack:
            pairs.append((match["name"], stack[-1][1]))
        stack.append((column, match["name"]))
    return pairs


# --- the tree --------------------------------------------------------------------------


def test_docstring_draws_every_exported_error() -> None:
    """Every exported error class appears in the module docstring's tree."""
    drawn = {child for child, _ in _drawn_tree()} | {"ChainweaveError"}
    assert drawn == {cls.__name__ for cls in ERROR_CLASSES}


@pytest.mark.parametrize(("child", "parent"), _drawn_tree())
def test_classes_follow_the_drawn_tree(child: str, parent: str) -> None:
    """Each class is a subclass of the class the docstring draws it under."""
    assert issubclass(getattr(errors_module, child), getattr(errors_module, parent))


@pytest.mark.parametrize(
    ("cls", "parent"),
    [
        (ConfigurationError, ChainweaveError),
        (SetupError, ChainweaveError),
        (InputValidationError, SetupError),
        (ExecutionError, ChainweaveError),
        (ProviderError, ExecutionError),
        (RateLimitError, ProviderError),
        (AuthenticationError, ProviderError),
    ],
)
def test_main_branches(cls: type[ChainweaveError], parent: type[ChainweaveError]) -> None:
    """Configuration, setup and execution errors are the three branches; providers under run."""
    assert issubclass(cls, parent)


def test_branches_are_disjoint() -> None:
    """A setup error is not an execution error, and neither is a configuration error."""
    assert not issubclass(SetupError, ExecutionError)
    assert not issubclass(ExecutionError, SetupError)
    assert not issubclass(ConfigurationError, SetupError | ExecutionError)


def test_input_validation_error_is_a_value_error() -> None:
    """Code that catches ValueError for bad input keeps working."""
    assert issubclass(InputValidationError, ValueError)


def test_error_types_and_codes_are_unique() -> None:
    """No two classes share an error_type or an error_code."""
    assert len({c.error_type for c in ERROR_CLASSES}) == len(ERROR_CLASSES)
    assert len({c.error_code for c in ERROR_CLASSES}) == len(ERROR_CLASSES)


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_error_type_and_code_spelling(cls: type[ChainweaveError]) -> None:
    """error_type is snake case and error_code upper case."""
    assert re.fullmatch(r"[a-z]+(_[a-z]+)*", cls.error_type)
    assert re.fullmatch(r"[A-Z]+(_[A-Z]+)*", cls.error_code)


# --- structured context ----------------------------------------------------------------


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_every_error_carries_context(cls: type[ChainweaveError]) -> None:
    """Every error keeps status, retry, provider, model, node and field as given."""
    err = cls("boom", status_code=499, retryable=True, retry_after=2.5, provider="openai",
              model="gpt-4o", node="classify", field="temperature")
    assert [getattr(err, name) for name in CONTEXT_FIELDS] == [
        cls.error_type, cls.error_code, 499, True, 2.5, "openai", "gpt-4o", "classify",
        "temperature",
    ]


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_context_defaults_to_none(cls: type[ChainweaveError]) -> None:
    """Context not given is None; retryable and status are the class defaults."""
    err = cls("boom")
    assert [getattr(err, name) for name in CONTEXT_FIELDS[2:]] == [
        cls.default_status, cls.default_retryable, None, None, None, None, None
    ]


@pytest.mark.parametrize(
    "cls",
    [RateLimitError, ProviderUnavailableError, ProviderTimeoutError],
    ids=lambda c: c.__name__,
)
def test_transient_errors_are_retryable_by_default(cls: type[ChainweaveError]) -> None:
    """Rate limits, outages and timeouts are retryable unless told otherwise."""
    assert cls("x").retryable is True
    assert cls("x", retryable=False).retryable is False


@pytest.mark.parametrize(
    "cls",
    [AuthenticationError, QuotaExceededError, InvalidRequestError, ModelNotFoundError,
     InputValidationError, ConfigurationError],
    ids=lambda c: c.__name__,
)
def test_permanent_errors_are_not_retryable_by_default(cls: type[ChainweaveError]) -> None:
    """Errors that will recur on a retry are not retryable."""
    assert cls("x").retryable is False


def test_to_dict() -> None:
    """``to_dict`` holds the structured form with every context field."""
    err = RateLimitError("slow down", status_code=429, retry_after=3.0, provider="openai",
                         model="gpt-4o", details={"limit": "rpm"})
    assert err.to_dict() == {
        "error_type": "rate_limit_error",
        "error_code": "RATE_LIMITED",
        "message": "slow down",
        "status_code": 429,
        "retryable": True,
        "retry_after": 3.0,
        "provider": "openai",
        "model": "gpt-4o",
        "node": None,
        "field": None,
        "details": {"limit": "rpm"},
    }


def test_str_includes_context() -> None:
    """``str`` of an error names provider, model, node and status next to the message."""
    err = ModelNotFoundError("no such model", status_code=404, provider="openai",
                             model="gpt-5x", node="answer")
    assert str(err) == "no such model (provider=openai, model=gpt-5x, node=answer, status=404)"


def test_str_without_context_is_the_message() -> None:
    """With no context, ``str`` is just the message."""
    assert str(ConfigurationError("LLM_PROVIDER is not set")) == "LLM_PROVIDER is not set"


def test_repr_names_class_and_code() -> None:
    """``repr`` shows the class, the message and the error code."""
    assert repr(RateLimitError("slow")) == "RateLimitError('slow', error_code='RATE_LIMITED')"


def test_input_validation_error_keeps_errors() -> None:
    """InputValidationError carries the list of problems it was given."""
    problems = [{"field": "a", "message": "bad", "type": "x"}]
    assert InputValidationError("bad", errors=problems, field="a").errors == problems


# --- status mapping --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (400, InvalidRequestError, False),
        (401, AuthenticationError, False),
        (402, QuotaExceededError, False),
        (403, AuthenticationError, False),
        (404, ModelNotFoundError, False),
        (408, ProviderTimeoutError, True),
        (413, RequestTooLargeError, False),
        (422, InvalidRequestError, False),
        (429, RateLimitError, True),
        (500, ProviderUnavailableError, True),
        (502, ProviderUnavailableError, True),
        (503, ProviderUnavailableError, True),
        (529, ProviderUnavailableError, True),
    ],
)
def test_error_for_status(status: int, cls: type[ProviderError], retryable: bool) -> None:
    """Each HTTP status maps to its class, retryable only when a retry may help."""
    err = error_for_status(status, "failed")
    assert (type(err), err.retryable, err.status_code) == (cls, retryable, status)


def test_error_for_other_client_status_is_invalid_request() -> None:
    """An unlisted 4xx status is an invalid request."""
    assert type(error_for_status(418, "teapot")) is InvalidRequestError


def test_error_for_non_error_status_is_malformed() -> None:
    """A status below 400 reaching the error path means the response made no sense."""
    assert type(error_for_status(200, "odd")) is MalformedResponseError


def test_error_for_status_passes_context() -> None:
    """``retry_after`` and provider/model context reach the error."""
    err = error_for_status(429, "slow", retry_after=1.5, provider="anthropic", model="claude")
    assert (err.retry_after, err.provider, err.model) == (1.5, "anthropic", "claude")


# --- redaction -------------------------------------------------------------------------

KEY_SHAPED = [
    "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx0123",
    "sk-ant-api03-AbCdEfGhIjKlMnOp_qrst-0123",
    "Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig",
]


def _surfaces(err: ChainweaveError) -> list[str]:
    """Every text form of an error a user or a log may see."""
    return [str(err), repr(err), str(err.to_dict()), err.message, str(err.args)]


@pytest.mark.parametrize("token", KEY_SHAPED)
def test_key_shaped_token_never_shown(token: str) -> None:
    """A key-shaped token in a message never appears in str, repr, to_dict or args."""
    secret = token.removeprefix("Bearer ")
    err = AuthenticationError(f"rejected {token} for this account", provider="openai")
    assert not [text for text in _surfaces(err) if secret in text]


@pytest.mark.usefixtures("fresh_secrets")
def test_registered_secret_never_shown() -> None:
    """A registered key of no known shape never appears in str, repr, to_dict or args."""
    secret = "azure-0123456789abcdef0123456789ab"
    register_secret(secret)
    err = error_for_status(401, f"Access denied due to invalid key {secret}.", provider="azure")
    assert not [text for text in _surfaces(err) if secret in text]


@pytest.mark.usefixtures("fresh_secrets")
def test_redacted_message_keeps_its_other_words() -> None:
    """Redaction replaces the key and leaves the rest of the message readable."""
    register_secret("0123456789abcdef")
    assert ProviderError("key 0123456789abcdef was rejected").message == (
        "key [REDACTED] was rejected"
    )


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_depth(cls: type[ChainweaveError]) -> None:
    """No error class sits more than three levels below ChainweaveError."""
    assert cls.__mro__.index(ChainweaveError) <= 3


@pytest.mark.parametrize(("child", "parent"), _drawn_tree())
def test_direct_parent(child: str, parent: str) -> None:
    """Each class's direct base is the class the docstring draws it under."""
    assert getattr(errors_module, child).__bases__[0] is getattr(errors_module, parent)
