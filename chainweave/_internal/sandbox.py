"""jinja2's sandbox, with every way a short template can build a huge value closed off.

jinja2's :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment` stops attribute
escapes, but not allocation: ``{{ 'a' * 50000000 }}``, ``{{ 'x'|center(300000000) }}``,
``{{ '%0300000000d' % 1 }}``, doubling a string with ``~`` in a loop, or a tower of
``**`` each build gigabytes or burn minutes of CPU in one step. This environment
estimates the size of every such result *before* computing it and raises
:class:`~jinja2.exceptions.SecurityError` past :data:`MAX_CHARS` characters (or
:data:`MAX_INT_BITS` bits for integers):

* the operators ``*``, ``+``, ``%`` and ``**``, and ``~`` (string concatenation, which
  jinja2 compiles to a join that no sandbox hook sees, so the code generator is
  replaced for it);
* the filters ``center``, ``indent``, ``format``, ``join`` and ``replace``;
* the ``str`` methods ``center``, ``ljust``, ``rjust``, ``zfill``, ``expandtabs``,
  ``replace``, ``join`` and ``format`` (widths in format specs included);
* the ``lipsum`` global is removed.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = ["MAX_CHARS", "MAX_INT_BITS", "Sandbox"]

#: The most characters (or items) one value a template builds may hold.
MAX_CHARS = 4_000_000
#: The largest integer, in bits, arithmetic may produce (about 300,000 digits).
MAX_INT_BITS = 1_000_000

_PERCENT_WIDTH = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_NUMBER = re.compile(r"\d+")
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})


def _refuse(what: str, size: int, unit: str = "characters", limit: int = MAX_CHARS) -> None:
    if size > limit:
        raise SecurityError(f"{what} would build {size:,} {unit}, over the limit of {limit:,}")


def _sized(value: object) -> int | None:
    return len(value) if isinstance(value, str | list | tuple | bytes) else None


def _check_percent(fmt: str) -> None:
    for match in _PERCENT_WIDTH.finditer(fmt):
        for number in match.groups():
            if number == "*":
                raise SecurityError("'*' widths in % formatting are not allowed in templates")
            if number is not None:
                _refuse("a % format width", int(number))


def _check_format_spec(fmt: str) -> None:
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # str.format raises the same error itself
    for _, _, spec, _ in fields:
        for number in _NUMBER.findall(spec or ""):
            _refuse("a format width", int(number))


def _check_join(items: Iterable[Any], separator: str) -> list[Any]:
    values = list(items)
    _refuse("join", sum(len(str(v)) for v in values) + len(separator) * max(0, len(values) - 1))
    return values


def _check_replace(text: str, old: str, new: str, count: int = -1) -> None:
    hits = text.count(old) if old else len(text) + 1
    if count >= 0:
        hits = min(hits, count)
    _refuse("replace", len(text) + hits * (len(new) - len(old)))


def _check_power(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
        _refuse("a power", abs(left).bit_length() * right, "bits", MAX_INT_BITS)


def _check_binop(operator: str, left: Any, right: Any) -> None:
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            size = _sized(seq)
            if size is not None and isinstance(times, int):
                _refuse("repetition", size * times)
        if isinstance(left, int) and isinstance(right, int):
            _refuse("a product", left.bit_length() + right.bit_length(), "bits", MAX_INT_BITS)
    elif operator == "+":
        left_size, right_size = _sized(left), _sized(right)
        if left_size is not None and right_size is not None:
            _refuse("concatenation", left_size + right_size)
    elif operator == "%" and isinstance(left, str):
        _check_percent(left)
    elif operator == "**":
        _check_power(left, right)


def _capped_filter(name: str, check: Callable[..., None],
                   original: Callable[..., Any]) -> Callable[..., Any]:
    def capped(*args: Any, **kwargs: Any) -> Any:
        check(*args, **kwargs)
        return original(*args, **kwargs)

    capped.__name__ = f"capped_{name}"
    return capped


def _width_check(value: Any, width: Any = 80, *args: Any, **kwargs: Any) -> None:
    if isinstance(width, int):
        _refuse("a width", width + len(str(value)))


def _indent_check(value: Any, width: Any = 4, *args: Any, **kwargs: Any) -> None:
    size = width if isinstance(width, int) else len(str(width))
    _refuse("indent", len(str(value)) * (1 + size))


def _format_check(value: Any, *args: Any, **kwargs: Any) -> None:
    if isinstance(value, str):
        _check_percent(value)


def _join_check(env: Any, value: Any, d: str = "", attribute: Any = None) -> None:
    if isinstance(value, Iterable) and not isinstance(value, str | bytes):
        _check_join(value, d)


def _replace_check(env: Any, s: str, old: str, new: str, count: int | None = None) -> None:
    _check_replace(str(s), str(old), str(new), -1 if count is None else count)


class _CappedCodeGenerator(CodeGenerator):
    """Compiles ``~`` to a call the sandbox can check, instead of a bare join."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.capped_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class Sandbox(ImmutableSandboxedEnvironment):
    """jinja2's immutable sandbox with the size checks this module describes."""

    intercepted_binops = frozenset({"*", "+", "%", "**"})
    code_generator_class = _CappedCodeGenerator

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals.pop("lipsum", None)
        for name, check in (("center", _width_check), ("indent", _indent_check),
                            ("format", _format_check), ("join", _join_check),
                            ("replace", _replace_check)):
            original = self.filters[name]
            capped = _capped_filter(name, check, original)
            if hasattr(original, "jinja_pass_arg"):  # jinja2 passes these the eval context
                capped.jinja_pass_arg = original.jinja_pass_arg  # type: ignore[attr-defined]
            self.filters[name] = capped

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """Check the result's size, then compute it."""
        _check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def capped_concat(self, parts: tuple[Any, ...]) -> str:
        """``a ~ b ~ c``, refused when the result would be too large."""
        strings = [str(part) for part in parts]
        _refuse("concatenation", sum(len(s) for s in strings))
        return "".join(strings)

    def call(__self, __context: Context, __obj: Any, *args: Any,
             **kwargs: Any) -> Any:
        """Check the ``str`` methods that build large strings from small arguments."""
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        if isinstance(owner, str):
            if name in _WIDTH_METHODS and args and isinstance(args[0], int):
                _refuse(f"str.{name}", args[0])
            elif name == "expandtabs":
                tab = args[0] if args and isinstance(args[0], int) else 8
                _refuse("str.expandtabs", len(owner) + owner.count("\t") * tab)
            elif name == "replace" and len(args) >= 2:
                _check_replace(owner, str(args[0]), str(args[1]),
                               args[2] if len(args) > 2 and isinstance(args[2], int) else -1)
            elif name == "join" and args:
                args = (_check_join(args[0], owner), *args[1:])
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``str.format`` and ``format_map``, refused when a width is too large."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt = str(value.__self__)

        def checked(*args: Any, **kwargs: Any) -> str:
            _check_format_spec(fmt)
            return wrapped(*args, **kwargs)

        return checked
