"""The tracer chainweave's spans go through, and whether anyone is listening."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider

__all__ = ["tracer", "tracing_enabled"]

#: Resolves to the application's tracer provider once one is set, even if set later.
tracer = trace.get_tracer("chainweave")


def tracing_enabled() -> bool:
    """Whether an OpenTelemetry SDK (or any real provider) has been configured.

    Without one every span would be a no-op, so callers skip building them and tracing
    costs nothing.
    """
    return not isinstance(trace.get_tracer_provider(), ProxyTracerProvider | NoOpTracerProvider)
