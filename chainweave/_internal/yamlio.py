"""Read YAML that may be hostile: ``safe_load`` semantics, bounded work, known positions.

:func:`load_yaml` gives the same data as ``yaml.safe_load`` for every document it
accepts, and refuses, with a :class:`~chainweave.errors.ConfigurationError` that says
``file:line:col``, any document that

- is larger than :attr:`YamlLimits.max_bytes` (1 MiB by default);
- nests deeper than :attr:`YamlLimits.max_depth` (64 levels), as written or once
  aliases are expanded;
- expands, with every alias replaced by what it names, to more than
  :attr:`YamlLimits.max_nodes` nodes (100,000): a "billion laughs" document fails after
  that many steps instead of eating memory in whatever walks the data next;
- has an alias that refers to one of its own ancestors (a recursive structure);
- repeats a key within one mapping (PyYAML would silently keep the last one).

The loaded :class:`YamlDocument` remembers where each value and each mapping key was
written, by data path (a tuple of mapping keys and sequence indices), so callers can
report a bad value as ``settings.yaml:12:5``.

:func:`interpolate` fills ``${VAR}`` / ``${VAR:-default}`` references in loaded data
(settings files and graph files alike; :mod:`chainweave.config` re-exports it).
"""

from __future__ import annotations

import os
import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.error import Mark, MarkedYAMLError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError

from chainweave.errors import ConfigurationError

__all__ = [
    "DEFAULT_LIMITS",
    "Location",
    "YamlDocument",
    "YamlLimits",
    "YamlPath",
    "format_path",
    "interpolate",
    "load_yaml",
    "load_yaml_file",
]

YamlPath = tuple[Hashable, ...]
"""A path into loaded data: mapping keys and sequence indices, outermost first."""

Location = tuple[int, int]
"""A 1-based ``(line, column)`` in the source text."""

_MERGE_TAG = "tag:yaml.org,2002:merge"

# What PyYAML's scalar constructors let escape on a bad value: the date 2024-13-45
# (ValueError), a 5000-digit int (ValueError), an empty ``!!int`` (IndexError), an
# unknown ``!!bool`` word (KeyError), an empty ``!!timestamp`` (AttributeError).
_SCALAR_ERRORS = (ArithmeticError, AttributeError, LookupError, TypeError, ValueError)


@dataclass(frozen=True, slots=True)
class YamlLimits:
    """Bounds on the work one document may cause.

    Attributes:
        max_bytes: Largest accepted source, in UTF-8 bytes.
        max_depth: Deepest accepted nesting of mappings and sequences (the root is 1).
        max_nodes: Most nodes the document may have once aliases are expanded.
    """

    max_bytes: int = 1024 * 1024
    max_depth: int = 64
    max_nodes: int = 100_000


DEFAULT_LIMITS = YamlLimits()


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """Loaded YAML data and where each piece of it was written.

    Attributes:
        data: What ``yaml.safe_load`` returns for the text (``None`` for an empty one).
        source: The file name (or ``"<string>"``) used in error messages.
        value_locations: Data path to the ``(line, column)`` where its value starts.
        key_locations: Data path to the ``(line, column)`` of the mapping key naming it.
    """

    data: Any
    source: str = "<string>"
    value_locations: Mapping[YamlPath, Location] = field(default_factory=dict, repr=False)
    key_locations: Mapping[YamlPath, Location] = field(default_factory=dict, repr=False)

    def locate(self, path: YamlPath) -> Location | None:
        """The 1-based ``(line, column)`` where the value at ``path`` starts, if known."""
        return self.value_locations.get(path)

    def locate_key(self, path: YamlPath) -> Location | None:
        """Where the mapping key for ``path`` was written; else where its value starts."""
        return self.key_locations.get(path) or self.value_locations.get(path)

    def where(self, path: YamlPath, *, key: bool = False) -> str:
        """``source:line:col`` of ``path``, or of its nearest located ancestor.

        Args:
            path: The data path to describe.
            key: Point at the mapping key rather than the value (for "unknown key").
        """
        for end in range(len(path), -1, -1):
            prefix = path[:end]
            found = self.locate_key(prefix) if key else self.locate(prefix)
            if found is not None:
                return f"{self.source}:{found[0]}:{found[1]}"
        return self.source


def format_path(path: YamlPath) -> str:
    """Render a data path as ``providers.openai.api_key`` or ``nodes[2].name``."""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<root>"


def load_yaml(
    text: str, source: str = "<string>", *, limits: YamlLimits | None = None
) -> YamlDocument:
    """Parse YAML text with ``safe_load`` semantics, within ``limits``.

    Args:
        text: The YAML source.
        source: A name for the text in error messages, usually its file path.
        limits: Size, depth and expansion bounds; :data:`DEFAULT_LIMITS` if omitted.

    Returns:
        The data with the position of every value and key.

    Raises:
        ConfigurationError: the text is too large, too deep, expands too far, repeats a
            key, or is not valid YAML; the message says ``source:line:col``.
    """
    limits = limits or DEFAULT_LIMITS
    _check_size(text, source, limits.max_bytes)
    try:
        return _load(text, source, limits)
    except MarkedYAMLError as exc:
        raise ConfigurationError(_marked_message(exc, source)) from None
    except ReaderError as exc:
        line, column = _position(text, exc.position)
        raise ConfigurationError(
            f"{source}:{line}:{column}: character {exc.character!r} is not allowed in YAML"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{source}: invalid YAML: {exc}") from None
    except _SCALAR_ERRORS as exc:  # located ones are caught earlier
        raise ConfigurationError(f"{source}: invalid YAML value: {exc}") from None


def load_yaml_file(
    path: str | os.PathLike[str], *, limits: YamlLimits | None = None
) -> YamlDocument:
    """Read a UTF-8 YAML file and parse it like :func:`load_yaml`.

    Never reads more than ``limits.max_bytes + 1`` bytes, whatever the file's size.

    Args:
        path: The file to read; its name is the source in error messages.
        limits: Size, depth and expansion bounds; :data:`DEFAULT_LIMITS` if omitted.

    Returns:
        The data with the position of every value and key.

    Raises:
        ConfigurationError: the file is missing, unreadable, not UTF-8, or not accepted
            by :func:`load_yaml`.
    """
    limits = limits or DEFAULT_LIMITS
    source = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(limits.max_bytes + 1)
    except FileNotFoundError:
        raise ConfigurationError(f"{source}: file not found") from None
    except OSError as exc:
        raise ConfigurationError(f"{source}: cannot read file: {exc.strerror}") from None
    if len(raw) > limits.max_bytes:
        raise ConfigurationError(_too_large(source, limits.max_bytes))
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"{source}: not UTF-8 text (bad byte at offset {exc.start})"
                                 ) from None
    return load_yaml(text, source, limits=limits)


# --- interpolation ---------------------------------------------------------------------

_REFERENCE = re.compile(
    r"\$\$\{"  # an escaped, literal "${"
    r"|\$\{(?:(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<default>:-[^}]*)?\})?"
)


def interpolate(
    value: Any,
    env: Mapping[str, str] | None = None,
    *,
    source: str | None = None,
    document: YamlDocument | None = None,
) -> Any:
    """Replace ``${VAR}`` references in every string inside ``value``.

    - ``${VAR}`` is the variable's value; an unset variable is an error.
    - ``${VAR:-default}`` is the default when the variable is unset or empty; the
      default runs to the first ``}`` and is taken literally.
    - ``$${`` is a literal ``${``; a ``$`` before anything else is left alone.

    Dicts and lists are walked recursively (keys are left as written); strings are
    substituted; other values are returned untouched. Substituted text is never scanned
    again and nothing is evaluated by a shell.

    Args:
        value: A string, or nested dicts and lists, as loaded from YAML.
        env: Variables to read; ``os.environ`` when omitted.
        source: Where ``value`` came from (a file name), for error messages.
        document: The YAML document ``value`` was loaded from, to report
            ``file:line:col`` for a bad reference.

    Returns:
        A copy of ``value`` with every reference replaced.

    Raises:
        ConfigurationError: a required variable is unset, or a ``${`` does not start a
            well-formed reference; the message names the variable, the key path and,
            when known, the file position.
    """
    env = os.environ if env is None else env
    where = _Where(source or (document.source if document else None), document)
    return _interpolate(value, env, (), where)


@dataclass(frozen=True, slots=True)
class _Where:
    source: str | None
    document: YamlDocument | None

    def describe(self, path: YamlPath) -> str:
        prefix = self.document.where(path) if self.document is not None else self.source or ""
        dotted = format_path(path) if path else ""
        return ": ".join(part for part in (prefix, dotted) if part)


def _interpolate(value: Any, env: Mapping[str, str], path: YamlPath, where: _Where) -> Any:
    if isinstance(value, str):
        return _substitute(value, env, path, where) if "${" in value else value
    if isinstance(value, dict):
        return {k: _interpolate(v, env, (*path, k), where) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env, (*path, i), where) for i, v in enumerate(value)]
    return value


def _substitute(text: str, env: Mapping[str, str], path: YamlPath, where: _Where) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name = match.group("name")
        if name is None:
            raise _reference_error(text, match.start(), path, where)
        found = env.get(name)
        default = match.group("default")
        if default is not None:
            return found if found else default[2:]
        if found is None:
            raise _missing_error(name, path, where)
        return found

    return _REFERENCE.sub(replace, text)


def _missing_error(name: str, path: YamlPath, where: _Where) -> ConfigurationError:
    place = where.describe(path)
    return ConfigurationError(
        f"{place + ': ' if place else ''}environment variable {name} is not set "
        f"(write ${{{name}:-default}} to give a default)",
        field=format_path(path) if path else None,
        details={"variable": name},
    )


def _reference_error(text: str, start: int, path: YamlPath, where: _Where) -> ConfigurationError:
    place = where.describe(path)
    snippet = text[start:start + 40]
    return ConfigurationError(
        f"{place + ': ' if place else ''}malformed reference {snippet!r}: write ${{NAME}} or "
        f"${{NAME:-default}}, and $${{ for a literal ${{",
        field=format_path(path) if path else None,
    )


# --- loading ---------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """A SafeLoader whose composer refuses documents nested too deeply as written."""

    def __init__(self, text: str, source: str, max_depth: int) -> None:
        super().__init__(text)
        self._source = source
        self._max_depth = max_depth
        self._depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        # The composer recurses once per level; stop before Python's stack does.
        self._depth += 1
        try:
            if self._depth > self._max_depth:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise ConfigurationError(_at(self._source, mark, _too_deep(self._max_depth)))
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _load(text: str, source: str, limits: YamlLimits) -> YamlDocument:
    loader = _Loader(text, source, limits.max_depth)
    try:
        root = loader.get_single_node()
        if root is None:
            return YamlDocument(None, source)
        _Checker(loader, source, limits).visit(root, 1)
        data = _construct(loader, root, source)
        values, keys = _index(loader, root)
        return YamlDocument(data, source, values, keys)
    finally:
        loader.dispose()


def _construct(loader: _Loader, root: Node, source: str) -> Any:
    try:
        return loader.construct_document(root)
    except _SCALAR_ERRORS as exc:
        # Find the scalar at fault so the message can say where it is.
        raise ConfigurationError(_at(source, _bad_scalar(root), f"invalid value: {exc}")
                                 ) from None


def _bad_scalar(root: Node) -> Mark | None:
    constructor = SafeConstructor()
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, ScalarNode):
            try:
                constructor.construct_object(node)
            except _SCALAR_ERRORS:
                return node.start_mark
        elif isinstance(node, MappingNode | SequenceNode):
            stack.extend(_flat_children(node))
    return None


def _flat_children(node: MappingNode | SequenceNode) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    return [child for pair in node.value for child in pair]


class _Checker:
    """Walk the composed graph with aliases expanded, before anything is constructed.

    Counts nodes and depth as a consumer of the data would meet them, refuses
    recursive aliases and repeated keys.
    """

    def __init__(self, loader: _Loader, source: str, limits: YamlLimits) -> None:
        self._loader = loader
        self._source = source
        self._limits = limits
        self._count = 0
        self._active: set[int] = set()
        self._checked: set[int] = set()

    def visit(self, node: Node, depth: int) -> None:
        """Check ``node`` and everything under it, ``depth`` levels from the root."""
        self._count += 1
        if self._count > self._limits.max_nodes:
            raise self._fail(node, f"the document expands to more than "
                                   f"{self._limits.max_nodes} nodes once aliases are "
                                   f"expanded; refusing it (alias bomb?)")
        if depth > self._limits.max_depth:
            raise self._fail(node, _too_deep(self._limits.max_depth) + " once aliases are "
                                                                     "expanded")
        if isinstance(node, ScalarNode):
            return
        if id(node) in self._active:
            raise self._fail(node, "an alias refers to a mapping or sequence that contains "
                                   "it (recursive data is not supported)")
        self._active.add(id(node))
        try:
            for child in self._children(node):
                self.visit(child, depth + 1)
        finally:
            self._active.discard(id(node))

    def _children(self, node: Node) -> list[Node]:
        if isinstance(node, MappingNode) and id(node) not in self._checked:
            self._checked.add(id(node))
            self._check_duplicates(node)
        if isinstance(node, MappingNode | SequenceNode):
            return _flat_children(node)
        return []

    def _check_duplicates(self, node: MappingNode) -> None:
        seen: dict[Any, ScalarNode] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            try:
                key = self._loader.construct_object(key_node)
            except _SCALAR_ERRORS as exc:
                raise self._fail(key_node, f"invalid value: {exc}") from None
            try:
                first = seen.setdefault(key, key_node)
            except TypeError:  # an unhashable key; the constructor reports it
                continue
            if first is not key_node:
                raise self._fail(key_node, f"duplicate key {key!r} (first defined at line "
                                           f"{first.start_mark.line + 1})")

    def _fail(self, node: Node, message: str) -> ConfigurationError:
        return ConfigurationError(_at(self._source, node.start_mark, message))


def _index(loader: _Loader, root: Node) -> tuple[dict[YamlPath, Location],
                                                  dict[YamlPath, Location]]:
    """Map every data path to the positions of its value and key.

    Runs after construction, when merge keys (``<<``) have been flattened into their
    mappings; explicit keys come after merged ones there, and the last one wins.
    """
    values: dict[YamlPath, Location] = {(): _loc(root.start_mark)}
    keys: dict[YamlPath, Location] = {}
    stack: list[tuple[YamlPath, Node]] = [((), root)]
    while stack:
        path, node = stack.pop()
        for key, key_node, child in _entries(loader, node):
            child_path = (*path, key)
            values[child_path] = _loc(child.start_mark)
            if key_node is not None:
                keys[child_path] = _loc(key_node.start_mark)
            stack.append((child_path, child))
    return values, keys


def _entries(loader: _Loader, node: Node) -> list[tuple[Hashable, Node | None, Node]]:
    if isinstance(node, SequenceNode):
        return [(i, None, child) for i, child in enumerate(node.value)]
    if not isinstance(node, MappingNode):
        return []
    entries: dict[Hashable, tuple[Hashable, Node | None, Node]] = {}
    for key_node, child in node.value:
        if isinstance(key_node, ScalarNode):
            key = loader.construct_object(key_node)
            entries[key] = (key, key_node, child)
    return list(entries.values())


# --- messages --------------------------------------------------------------------------


def _loc(mark: Mark) -> Location:
    return mark.line + 1, mark.column + 1


def _at(source: str, mark: Mark | None, message: str) -> str:
    if mark is None:
        return f"{source}: {message}"
    line, column = _loc(mark)
    return f"{source}:{line}:{column}: {message}"


def _marked_message(exc: MarkedYAMLError, source: str) -> str:
    # Built from the parts rather than str(exc), which quotes a snippet of the source.
    problem = exc.problem or exc.context or "invalid YAML"
    message = _at(source, exc.problem_mark or exc.context_mark, problem)
    if exc.problem and exc.context:
        if exc.context_mark is not None:
            line, column = _loc(exc.context_mark)
            message += f" ({exc.context} at line {line}, column {column})"
        else:
            message += f" ({exc.context})"
    return message


def _position(text: str, index: int) -> Location:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _check_size(text: str, source: str, max_bytes: int) -> None:
    # Characters never outnumber UTF-8 bytes, so the cheap test settles most cases.
    if len(text) > max_bytes or (
        len(text) * 4 > max_bytes
        and len(text.encode("utf-8", "surrogatepass")) > max_bytes
    ):
        raise ConfigurationError(_too_large(source, max_bytes))


def _too_large(source: str, max_bytes: int) -> str:
    return f"{source}: larger than the {max_bytes} byte limit for YAML documents"


def _too_deep(max_depth: int) -> str:
    return f"nesting deeper than {max_depth} levels"
