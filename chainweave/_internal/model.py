"""The frozen pydantic base whose validation errors become chainweave errors."""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from chainweave.errors import ChainweaveError


class StrictModel(BaseModel):
    """Frozen, refuses unknown fields, and raises a chainweave error on bad input.

    Subclasses decide which error with :meth:`_error_from`; ``error_context`` lets a
    caller pass what the error needs to say where the input came from.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise self._error_from(exc, None) from None

    # Tell pydantic this __init__ only converts errors. Nested models are then built by
    # pydantic-core directly, not through a Python-level __init__, so they cost nothing
    # extra and their errors join the outer model's list instead of escaping one by one.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Self:
        """Validate ``obj`` into this model, raising a chainweave error on bad input."""
        return cls._validated(obj, None, **kwargs)

    @classmethod
    def _validated(cls, obj: Any, error_context: Any, **kwargs: Any) -> Self:
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as exc:
            raise cls._error_from(exc, error_context) from None

    @classmethod
    def _error_from(cls, exc: ValidationError, error_context: Any) -> ChainweaveError:
        """The chainweave error for pydantic's ``exc``."""
        raise NotImplementedError
