"""The tracer chainweave's spans go through, and whether anyone is listening."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider

__all__ = ["tracer", "tracing_enabled"]

#: Resolves to the application's tracer provider once one is set, even if set later.
tracer = trace.get_tracer("chainweave")

_UNKNOWN = object()


def tracing_enabled() -> bool:
    """Whether an OpenTelemetry SDK (or any real provider) has been configured.

    Without one every span would be a no-op, so callers skip building them and tracing
    costs nothing. ``get_tracer_provider()`` reads the environment on every call while
    no provider is set (0.7 µs), so the global it fills is read directly when present.
    """
    provider = getattr(trace, "_TRACER_PROVIDER", _UNKNOWN)
    if provider is _UNKNOWN:
        provider = trace.get_tracer_provider()
    return provider is not None and not isinstance(
        provider, ProxyTracerProvider | NoOpTracerProvider)
