"""Tests for chainweave._internal.yamlio: bounded safe loading with positions."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainweave._internal.yamlio import (
    YamlLimits,
    YamlPath,
    format_path,
    load_yaml,
    load_yaml_file,
)
from chainweave.errors import ConfigurationError

SAMPLE = """\
name: demo
nodes:
  - id: a
    next: [b, c]
  - id: b
limits:
  depth: 3
"""


def billion_laughs(levels: int = 9, width: int = 10) -> str:
    """The classic alias bomb: width ** levels strings from a few hundred bytes."""
    lines = ['a0: &a0 ["lol"' + ', "lol"' * (width - 1) + "]"]
    for i in range(1, levels):
        refs = ", ".join([f"*a{i - 1}"] * width)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\n"


# --- loading and locating ---------------------------------------------------------------


def test_data_matches_safe_load() -> None:
    """The loaded data is what yaml.safe_load gives."""
    assert load_yaml(SAMPLE).data == yaml.safe_load(SAMPLE)


def test_empty_text_is_none() -> None:
    """An empty document loads as None, like safe_load."""
    assert load_yaml("").data is None


def test_locate_nested_value() -> None:
    """locate gives the 1-based line and column where a nested value starts."""
    doc = load_yaml(SAMPLE)
    assert doc.locate(("nodes", 0, "next", 1)) == (4, 15)


def test_locate_mapping_value_and_key() -> None:
    """locate points at a value, locate_key at the key that names it."""
    doc = load_yaml(SAMPLE)
    assert doc.locate(("limits", "depth")) == (7, 10)
    assert doc.locate_key(("limits", "depth")) == (7, 3)


def test_locate_unknown_path_is_none() -> None:
    """A path that is not in the data has no location."""
    assert load_yaml(SAMPLE).locate(("nodes", 5)) is None


def test_where_falls_back_to_nearest_ancestor() -> None:
    """where() describes a missing path by its nearest located ancestor."""
    doc = load_yaml(SAMPLE, "graph.yaml")
    assert doc.where(("limits", "missing")) == "graph.yaml:7:3"


def test_format_path_renders_keys_and_indices() -> None:
    """format_path joins keys with dots and shows indices in brackets."""
    assert format_path(("nodes", 2, "name")) == "nodes[2].name"
    assert format_path(()) == "<root>"


def test_merge_key_values_locate_to_the_override() -> None:
    """An explicit key after a merge wins, and is located where it was written."""
    doc = load_yaml("base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  y: 3\n")
    assert doc.data["d"] == {"x": 1, "y": 3}
    assert doc.locate(("d", "y")) == (4, 6)


def test_shared_anchor_within_limits_loads() -> None:
    """Aliases that stay within the limits load like safe_load."""
    text = "a: &x [1, 2]\nb: *x\nc: *x\n"
    assert load_yaml(text).data == {"a": [1, 2], "b": [1, 2], "c": [1, 2]}


# --- errors ----------------------------------------------------------------------------


def test_syntax_error_names_file_line_and_column() -> None:
    """A syntax error says source:line:col."""
    with pytest.raises(ConfigurationError, match=r"^bad\.yaml:2:2: "):
        load_yaml("a: [1, 2\nb: 3\n", "bad.yaml")


def test_duplicate_key_names_key_and_lines() -> None:
    """A repeated key is an error naming the key and both lines."""
    with pytest.raises(ConfigurationError, match=r"c\.yaml:3:1: duplicate key 'a' .*line 1"):
        load_yaml("a: 1\nb: 2\na: 3\n", "c.yaml")


def test_duplicate_key_in_nested_mapping() -> None:
    """Duplicate detection covers nested mappings too."""
    with pytest.raises(ConfigurationError, match=r":3:3: duplicate key 'x'"):
        load_yaml("top:\n  x: 1\n  x: 2\n")


def test_merge_key_is_not_a_duplicate() -> None:
    """Overriding a merged key is allowed."""
    assert load_yaml("b: &b {x: 1}\nd: {<<: *b, x: 2}\n").data["d"] == {"x": 2}


def test_unsafe_tag_is_refused() -> None:
    """Python object tags are refused, as safe_load does."""
    with pytest.raises(ConfigurationError, match="could not determine a constructor"):
        load_yaml("a: !!python/object/apply:os.system ['echo hi']\n")


def test_invalid_scalar_value_is_located() -> None:
    """A scalar PyYAML cannot construct (an impossible date) is reported with its place."""
    with pytest.raises(ConfigurationError, match=r"^d\.yaml:2:6: invalid value"):
        load_yaml("ok: 1\nday: 2024-13-45\n", "d.yaml")


@pytest.mark.parametrize("text", ["a: !!int ''\n", "a: !!timestamp ''\n", "a: !!bool maybe\n"])
def test_bad_explicitly_tagged_scalar_is_a_configuration_error(text: str) -> None:
    """Tagged scalars that crash PyYAML's constructors become located ConfigurationErrors."""
    with pytest.raises(ConfigurationError, match=r"^<string>:1:4: invalid value"):
        load_yaml(text)


def test_non_printable_character_is_located() -> None:
    """A control character is a ConfigurationError with line and column."""
    with pytest.raises(ConfigurationError, match=r"^<string>:2:4: character"):
        load_yaml("a: 1\nb: \x00\n")


def test_multiple_documents_are_refused() -> None:
    """A stream of several documents is not one settings document."""
    with pytest.raises(ConfigurationError, match="single document"):
        load_yaml("a: 1\n---\nb: 2\n")


def test_undefined_alias_is_refused() -> None:
    """An alias to an unknown anchor names the anchor."""
    with pytest.raises(ConfigurationError, match="undefined alias 'nope'"):
        load_yaml("a: *nope\n")


# --- limits ----------------------------------------------------------------------------


def test_billion_laughs_fails_fast() -> None:
    """An alias bomb is refused after a bounded walk, in well under a second."""
    started = time.perf_counter()
    with pytest.raises(ConfigurationError, match="once aliases are expanded"):
        load_yaml(billion_laughs())
    assert time.perf_counter() - started < 2.0


def test_alias_expansion_limit_is_configurable() -> None:
    """max_nodes bounds the expanded document, aliases counted each time used."""
    text = "a: &a [1, 2, 3, 4]\nb: [*a, *a, *a]\n"
    assert load_yaml(text, limits=YamlLimits(max_nodes=40)).data["b"][2] == [1, 2, 3, 4]
    with pytest.raises(ConfigurationError, match="more than 20 nodes"):
        load_yaml(text, limits=YamlLimits(max_nodes=20))


def test_deep_flow_nesting_fails_fast() -> None:
    """Thousands of nested brackets are refused at the depth limit, not by recursion."""
    text = "[" * 50_000 + "]" * 50_000
    with pytest.raises(ConfigurationError, match=r"^<string>:1:65: nesting deeper than 64"):
        load_yaml(text)


def test_deep_block_nesting_fails() -> None:
    """Deep indentation hits the same depth limit."""
    text = "".join(" " * i + "k:\n" for i in range(100))
    with pytest.raises(ConfigurationError, match="nesting deeper than 64"):
        load_yaml(text)


def test_depth_through_aliases_is_bounded() -> None:
    """Aliases cannot build nesting deeper than the limit allows as written."""
    text = "a: &a [[[1]]]\nb: &b [[[*a]]]\nc: [[[*b]]]\n"
    assert load_yaml(text, limits=YamlLimits(max_depth=12)).data["c"]
    with pytest.raises(ConfigurationError, match="deeper than 8 levels once aliases"):
        load_yaml(text, limits=YamlLimits(max_depth=8))


def test_recursive_alias_is_refused() -> None:
    """An anchor whose content aliases itself is refused instead of looping."""
    with pytest.raises(ConfigurationError, match="recursive"):
        load_yaml("a: &a [1, *a]\n")


def test_recursive_merge_is_refused() -> None:
    """A mapping that merges itself is refused instead of recursing forever."""
    with pytest.raises(ConfigurationError, match="recursive"):
        load_yaml("a: &a {x: 1, <<: *a}\n")


def test_text_over_size_limit_is_refused() -> None:
    """Text above max_bytes is refused before parsing."""
    with pytest.raises(ConfigurationError, match="larger than the 100 byte limit"):
        load_yaml("a: " + "x" * 100, limits=YamlLimits(max_bytes=100))


def test_size_limit_counts_utf8_bytes() -> None:
    """The size limit is in UTF-8 bytes, not characters."""
    text = "a: " + "é" * 40  # 43 characters, 83 bytes
    with pytest.raises(ConfigurationError, match="byte limit"):
        load_yaml(text, limits=YamlLimits(max_bytes=60))


def test_default_size_limit_is_one_mebibyte() -> None:
    """Without limits, anything over 1 MiB is refused."""
    with pytest.raises(ConfigurationError, match="1048576 byte limit"):
        load_yaml("#" * (1024 * 1024 + 1))


# --- files -----------------------------------------------------------------------------


def test_load_file_names_the_file(tmp_path: Path) -> None:
    """A file's errors carry its path as the source."""
    path = tmp_path / "s.yaml"
    path.write_text("a: 1\na: 2\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=rf"^{re.escape(str(path))}:2:1: duplicate key"):
        load_yaml_file(path)


def test_load_file_strips_bom(tmp_path: Path) -> None:
    """A UTF-8 byte order mark is accepted."""
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfa: 1\n")
    assert load_yaml_file(path).data == {"a": 1}


def test_load_file_over_limit_is_refused(tmp_path: Path) -> None:
    """A file over max_bytes is refused without reading all of it."""
    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * 5000)
    with pytest.raises(ConfigurationError, match="larger than the 1000 byte limit"):
        load_yaml_file(path, limits=YamlLimits(max_bytes=1000))


def test_missing_file_is_a_configuration_error(tmp_path: Path) -> None:
    """A missing file is a ConfigurationError naming it."""
    with pytest.raises(ConfigurationError, match=r"nope\.yaml: file not found"):
        load_yaml_file(tmp_path / "nope.yaml")


def test_non_utf8_file_is_refused(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 are a ConfigurationError, not a UnicodeDecodeError."""
    path = tmp_path / "latin.yaml"
    path.write_bytes(b"a: caf\xe9\n")
    with pytest.raises(ConfigurationError, match="not UTF-8"):
        load_yaml_file(path)


# --- properties ------------------------------------------------------------------------

_yaml_alphabet = st.sampled_from(
    [*"ab:-[]{},&*!|>'\"#%@` \n\t?\\.01", "\x00", "é", "<<", "!!int ", "!!timestamp ",
     "!!bool ", "&x ", "*x", "2024-1-1", "---\n"]
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=200), st.lists(_yaml_alphabet, max_size=80).map("".join)))
def test_arbitrary_text_raises_only_configuration_error(text: str) -> None:
    """Whatever the text, loading either succeeds or raises ConfigurationError."""
    with contextlib.suppress(ConfigurationError):
        load_yaml(text)


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False),
    st.text(max_size=20),
)
_documents = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=8), inner, max_size=4),
    ),
    max_leaves=25,
)


def _paths(data: Any, prefix: YamlPath = ()) -> Iterator[YamlPath]:
    yield prefix
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _paths(value, (*prefix, index))


@settings(max_examples=200)
@given(_documents)
def test_dumped_data_loads_back_and_every_path_locates(data: Any) -> None:
    """safe_dump output loads back equal, and every value in it has a position."""
    text = yaml.safe_dump(data)
    doc = load_yaml(text)
    assert doc.data == data
    line_count = text.count("\n") + 1
    for path in _paths(data):
        found = doc.locate(path)
        assert found is not None, path
        assert 1 <= found[0] <= line_count
