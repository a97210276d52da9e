"""jinja2 templates and expressions, always in the sandbox, with a cap on what they build.

Templates come from code and from YAML files alike, so every one of them runs in
:class:`~chainweave._internal.sandbox.Sandbox`: jinja2's immutable sandbox, plus size
checks before any operation that could build a huge value, and rendering stops once
the output passes :data:`MAX_OUTPUT_CHARS`. A variable the template uses but was not
given is a :class:`~chainweave.errors.ChainInputError` naming it, never an empty
string; any other failure while rendering is a :class:`~chainweave.errors.TemplateError`
naming the template's owner.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

import jinja2
import jinja2.meta
from jinja2 import nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError

from chainweave._internal.sandbox import MAX_CHARS, Sandbox
from chainweave.errors import ChainInputError, TemplateError

__all__ = ["MAX_OUTPUT_CHARS", "Expression", "Template", "compile_expression",
           "compile_template"]

#: The most characters one rendering may produce (about a million tokens: more than any
#: model's context window).
MAX_OUTPUT_CHARS = MAX_CHARS


class _UndefinedName(UndefinedError):
    """jinja2's undefined error, carrying the missing name and whether the sandbox hid it."""

    def __init__(self, message: str, name: str | None, unsafe: bool) -> None:
        super().__init__(message)
        self.name = name
        self.unsafe = unsafe


class _StrictUndefined(jinja2.StrictUndefined):
    """Fails on any use, like jinja2's, and says which name was undefined."""

    __slots__ = ()

    def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> NoReturn:
        hint = self._undefined_hint or ""
        raise _UndefinedName(self._undefined_message, self._undefined_name, "unsafe" in hint)


# jinja2 binds its failing function to each operator when the class is made; rebind ours.
for _name in ("__str__", "__iter__", "__len__", "__bool__", "__eq__", "__ne__", "__hash__",
              "__add__", "__radd__", "__mul__", "__rmul__", "__getitem__", "__lt__", "__le__",
              "__gt__", "__ge__", "__int__", "__float__", "__complex__", "__pow__", "__rpow__",
              "__contains__", "__call__", "__getattr__"):
    if getattr(jinja2.StrictUndefined, _name, None) is jinja2.Undefined._fail_with_undefined_error:
        setattr(_StrictUndefined, _name, _StrictUndefined._fail_with_undefined_error)


_ENV = Sandbox(undefined=_StrictUndefined, autoescape=False, keep_trailing_newline=True)


def _syntax_error(kind: str, where: str, exc: TemplateSyntaxError) -> TemplateError:
    return TemplateError(f"{where}: the {kind} does not compile: {exc.message} "
                         f"(line {exc.lineno})", node=where, details={"line": exc.lineno})


#: What evaluating a template over bad values can raise, besides jinja2's own errors.
_RENDER_ERRORS = (UndefinedError, SecurityError, TypeError, ValueError, ArithmeticError,
                  LookupError, RecursionError)


def _render_error(where: str, kind: str, exc: Exception) -> ChainInputError | TemplateError:
    """The chainweave error for a failure while rendering or evaluating."""
    if isinstance(exc, UndefinedError):
        return _undefined(where, exc)
    if isinstance(exc, SecurityError):
        return TemplateError(f"{where}: the {kind} sandbox refused: {exc}", node=where)
    return TemplateError(f"{where}: the {kind} failed: {type(exc).__name__}: {exc}",
                         node=where, details={"error": type(exc).__name__})


def _undefined(where: str, exc: UndefinedError) -> ChainInputError | TemplateError:
    if isinstance(exc, _UndefinedName) and exc.unsafe:
        return TemplateError(f"{where}: the template sandbox refused: {exc.message}",
                             node=where)
    name = exc.name if isinstance(exc, _UndefinedName) else None
    what = f"variable {name!r}" if name else "a variable"
    return ChainInputError(f"{where}: template {what} is undefined ({exc.message})",
                           missing=[name] if name else [], field=name, node=where)


class Template:
    """A compiled template: ``render(variables)`` gives the text.

    Args:
        source: jinja2 template text.
        where: Who owns it (a chain or node name), for error messages.

    Raises:
        TemplateError: The template does not compile; the message has the line.
    """

    __slots__ = ("_parts", "_template", "source", "variables", "where")

    def __init__(self, source: str, *, where: str) -> None:
        if not isinstance(source, str):
            raise TemplateError(f"{where}: a template must be a string, got "
                                f"{type(source).__name__}", node=where)
        self.source = source
        self.where = where
        try:
            tree = _ENV.parse(source)
            self.variables: frozenset[str] = frozenset(
                jinja2.meta.find_undeclared_variables(tree))
            self._template = _ENV.from_string(source)
        except TemplateSyntaxError as exc:
            raise _syntax_error("template", where, exc) from None
        self._parts = _plain_parts(tree)

    def __repr__(self) -> str:
        return f"Template({self.source!r})"

    def render(self, variables: Mapping[str, Any]) -> str:
        """The rendered text.

        Raises:
            ChainInputError: The template uses a variable (or attribute, or key) that
                ``variables`` lacks; ``missing`` and ``field`` name it.
            TemplateError: The sandbox refused an operation, or the output would pass
                :data:`MAX_OUTPUT_CHARS`.
        """
        template = self._template
        try:
            if self._parts is not None:
                text = _render_plain(self._parts, variables)
                if text is not None:
                    return text
            parts: list[str] = []
            size = 0
            for part in template.root_render_func(template.new_context(dict(variables))):
                size += len(part)
                if size > MAX_OUTPUT_CHARS:
                    raise SecurityError(
                        f"the output passed the limit of {MAX_OUTPUT_CHARS:,} characters")
                parts.append(part)
        except _RENDER_ERRORS as exc:
            raise _render_error(self.where, "template", exc) from None
        return "".join(parts)


def _plain_parts(tree: nodes.Template) -> tuple[tuple[bool, str], ...] | None:
    """``(is_name, text)`` pieces when the template is only text and ``{{ name }}``s.

    Such templates (most prompts) render without jinja2's context machinery, 3-4x
    faster, to exactly what jinja2 would produce: ``str()`` of each value.
    """
    parts: list[tuple[bool, str]] = []
    for node in tree.body:
        if not isinstance(node, nodes.Output):
            return None
        for child in node.nodes:
            if isinstance(child, nodes.TemplateData):
                parts.append((False, child.data))
            elif isinstance(child, nodes.Name) and child.ctx == "load":
                parts.append((True, child.name))
            else:
                return None
    return tuple(parts)


def _render_plain(parts: tuple[tuple[bool, str], ...], variables: Mapping[str, Any]) -> str | None:
    """The rendering, or None when a name is missing (jinja2 then explains, or finds a
    global by that name)."""
    pieces: list[str] = []
    for is_name, text in parts:
        if not is_name:
            pieces.append(text)
        elif text in variables:
            value = variables[text]
            if isinstance(value, jinja2.Undefined):
                return None
            pieces.append(value if type(value) is str else str(value))
        else:
            return None
    rendered = "".join(pieces)
    if len(rendered) > MAX_OUTPUT_CHARS:
        raise SecurityError(f"the output passed the limit of {MAX_OUTPUT_CHARS:,} characters")
    return rendered


class Expression:
    """A compiled jinja2 expression such as ``score > 0.7 and not flagged``.

    Args:
        source: The expression, without ``{{ }}``.
        where: Who owns it, for error messages.

    Raises:
        TemplateError: The expression does not compile.
    """

    __slots__ = ("_template", "source", "variables", "where")

    def __init__(self, source: str, *, where: str) -> None:
        if not isinstance(source, str) or not source.strip():
            raise TemplateError(f"{where}: an expression must be a non-empty string, "
                                f"got {source!r}", node=where)
        self.source = source
        self.where = where
        try:
            _ENV.compile_expression(source)  # the strict check: one expression, nothing more
            self.variables: frozenset[str] = frozenset(
                jinja2.meta.find_undeclared_variables(_ENV.parse(f"{{{{ ({source}) }}}}")))
            # What compile_expression builds, evaluated here with the variables as a dict
            # (its keyword-argument call breaks on a variable called ``self``).
            self._template = _ENV.from_string(f"{{% set result = ({source}) %}}")
        except TemplateSyntaxError as exc:
            raise _syntax_error("expression", where, exc) from None

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"

    def __call__(self, variables: Mapping[str, Any]) -> Any:
        """The expression's value over ``variables``.

        Raises:
            ChainInputError: The expression uses a name ``variables`` lacks.
            TemplateError: The sandbox refused an operation, the value is over
                :data:`MAX_OUTPUT_CHARS`, or evaluating failed (a type error, a
                division by zero).
        """
        template = self._template
        try:
            context = template.new_context(dict(variables))
            for _ in template.root_render_func(context):
                pass
            value = context.vars["result"]
            if isinstance(value, jinja2.Undefined):
                value._fail_with_undefined_error()
            if isinstance(value, str | list | tuple | bytes) and len(value) > MAX_OUTPUT_CHARS:
                raise SecurityError(f"the value passed the limit of {MAX_OUTPUT_CHARS:,}")
            return value
        except _RENDER_ERRORS as exc:
            raise _render_error(self.where, "expression", exc) from None


def compile_template(source: str, *, where: str) -> Template:
    """Compile ``source`` as a sandboxed template (see :class:`Template`)."""
    return Template(source, where=where)


def compile_expression(source: str, *, where: str) -> Expression:
    """Compile ``source`` as a sandboxed expression (see :class:`Expression`)."""
    return Expression(source, where=where)
