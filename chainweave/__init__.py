"""chainweave: compose LLM work as chains and state graphs over resilient providers."""

from chainweave.errors import *  # noqa: F403
from chainweave.errors import __all__ as _errors_all
from chainweave.types import *  # noqa: F403
from chainweave.types import __all__ as _types_all

__version__ = "0.1.0"
__all__ = sorted([*_errors_all, *_types_all])
