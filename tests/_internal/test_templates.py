"""Sandboxed templates and expressions: rendering, undefined names, refusals, the fast path."""

from __future__ import annotations

import tracemalloc

import jinja2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainweave._internal.templates import MAX_OUTPUT_CHARS, Expression, Template
from chainweave.errors import ChainInputError, TemplateError

_REFERENCE = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def test_renders_variables() -> None:
    """The seed's prompt form renders with its variable."""
    template = Template("Complete this: {{ input }}", where="c")
    assert template.render({"input": "The future of AI is"}) == "Complete this: The future of AI is"
    assert template.variables == {"input"}


def test_control_flow_and_filters_render() -> None:
    """Loops, conditions and filters work as in jinja2."""
    template = Template("{% for x in items %}{{ x|upper }}{% if not loop.last %}, {% endif %}"
                        "{% endfor %}", where="c")
    assert template.render({"items": ["a", "b"]}) == "A, B"
    assert template.variables == {"items"}


def test_missing_variable_is_named() -> None:
    """A missing variable raises ChainInputError naming it, never renders empty."""
    with pytest.raises(ChainInputError, match="'topic'") as caught:
        Template("About {{ topic }}", where="chain-a").render({})
    assert caught.value.missing == ["topic"]
    assert caught.value.node == "chain-a"


def test_missing_attribute_is_named() -> None:
    """A missing key or attribute of a given value is named too."""
    with pytest.raises(ChainInputError, match="'name'") as caught:
        Template("Hi {{ user.name }}", where="c").render({"user": {}})
    assert caught.value.field == "name"


def test_default_filter_and_is_defined_still_work() -> None:
    """Strictness does not break the ways templates test for a missing value."""
    assert Template("{{ x | default('none') }}", where="c").render({}) == "none"
    assert Template("{% if x is defined %}yes{% else %}no{% endif %}",
                    where="c").render({}) == "no"


def test_syntax_error_names_owner_and_line() -> None:
    """A template that does not compile is a TemplateError with its line."""
    with pytest.raises(TemplateError, match="line 2") as caught:
        Template("ok\n{{ broken ", where="summarize")
    assert caught.value.details["line"] == 2
    assert "summarize" in str(caught.value)


_RUNAWAY = [
    "{{ 'a' * 50000000 }}",
    "{{ [1] * 50000000 }}",
    "{{ ((10 ** 1000) ** 1000) ** 10 }}",
    "{% for i in range(99999) %}{{ 'abcdefghij' * 50 }}{% endfor %}",
    "{{ '%0300000000d' % 1 }}",
    "{{ 'x' | center(300000000) }}",
    "{{ 'x'.center(300000000) }}",
    "{{ 'x'.rjust(300000000) }}",
    "{{ '{:>300000000}'.format(1) }}",
    "{{ 'x' | indent(300000000) }}",
    "{% set s = 'a' * 3000000 %}{{ s ~ s }}",
    "{% set s = 'a' * 3000000 %}{{ s + s }}",
    "{% set s = ['a' * 3000000] * 2 %}{{ s | join }}",
    "{% set s = ['a' * 3000000] * 2 %}{{ ''.join(s) }}",
    "{% set s = 'a' * 3000000 %}{{ s | replace('a', 'bb') }}",
    "{% set s = 'a' * 3000000 %}{{ s.replace('a', 'bb') }}",
    "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}{{ ns.s | length }}",
    "{{ lipsum(100000) }}",
]


@pytest.mark.parametrize("source", _RUNAWAY)
def test_sandbox_refuses_runaway_output_before_allocating(source: str) -> None:
    """Short templates that would build huge values are refused before they allocate."""
    tracemalloc.start()
    try:
        with pytest.raises((TemplateError, ChainInputError)):
            Template(source, where="c").render({})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 60_000_000


@pytest.mark.parametrize("source", [
    "{{ count + 1 }}", "{{ a / b }}", "{{ items.index(9) }}", "{{ 10 ** 5000 }}",
])
def test_runtime_failures_are_template_errors(source: str) -> None:
    """Type errors, division by zero and the like are TemplateErrors naming the owner."""
    with pytest.raises(TemplateError, match="summarize") as caught:
        Template(source, where="summarize").render({"count": "3", "a": 1, "b": 0,
                                                    "items": [1]})
    assert caught.value.node == "summarize"


def test_sandbox_refuses_unsafe_attributes() -> None:
    """Dunder access, the classic sandbox escape, is refused, not reported as undefined."""
    with pytest.raises(TemplateError, match="unsafe"):
        Template("{{ x.__class__.__mro__ }}", where="c").render({"x": 1})


def test_output_cap_applies_to_plain_templates() -> None:
    """A plain ``{{ name }}`` template honours the same output cap."""
    with pytest.raises(TemplateError, match="limit"):
        Template("{{ a }}{{ a }}", where="c").render({"a": "x" * (MAX_OUTPUT_CHARS // 2 + 1)})


_text = st.text(alphabet=st.characters(blacklist_characters="{}%#"), max_size=20)
_values = st.one_of(st.text(max_size=10), st.integers(), st.floats(allow_nan=False),
                    st.none(), st.booleans(), st.lists(st.integers(), max_size=3))


@given(pieces=st.lists(st.one_of(_text, st.sampled_from(["a", "b", "c"]).map(
    lambda name: "{{ " + name + " }}")), max_size=8),
    values=st.fixed_dictionaries({"a": _values, "b": _values, "c": _values}))
def test_fast_path_renders_exactly_as_jinja2(pieces: list[str], values: dict[str, object]) -> None:
    """Text-and-variables templates render exactly as jinja2 renders them."""
    source = "".join(pieces)
    assert Template(source, where="c").render(values) == _REFERENCE.from_string(source).render(
        values)


def test_globals_resolve_when_not_shadowed() -> None:
    """A jinja2 global such as ``range`` still works in a plain-looking template."""
    assert "range" in Template("{{ range }}", where="c").render({})


def test_expression_evaluates_over_inputs() -> None:
    """A condition string evaluates over the inputs, with its variables known up front."""
    expression = Expression("score > 0.7 and not flagged", where="route")
    assert expression({"score": 0.9, "flagged": False}) is True
    assert expression({"score": 0.1, "flagged": False}) is False
    assert expression.variables == {"score", "flagged"}


def test_expression_missing_name_is_named() -> None:
    """An expression over a missing input names it."""
    with pytest.raises(ChainInputError, match="'score'"):
        Expression("score > 0.7", where="route")({})


@pytest.mark.parametrize("source", ["", "   ", "score >", "1 +* 2"])
def test_bad_expressions_are_refused_up_front(source: str) -> None:
    """An empty or malformed expression is a TemplateError when compiled."""
    with pytest.raises(TemplateError):
        Expression(source, where="route")


def test_expression_sandbox_refuses_unsafe_access() -> None:
    """Expressions run in the same sandbox."""
    with pytest.raises(TemplateError):
        Expression("x.__class__.__subclasses__()", where="route")({"x": 1})


def test_expression_takes_any_variable_name() -> None:
    """Inputs named like Python keywords of the call (``self``) do not break evaluation."""
    assert Expression("flag", where="route")({"self": 1, "flag": True}) is True


def test_expression_results_are_capped() -> None:
    """An expression cannot build a value past the cap either."""
    with pytest.raises(TemplateError):
        Expression("'ab' * 3000000", where="route")({})


def test_expression_runtime_failure_is_a_template_error() -> None:
    """A division by zero in a condition is a TemplateError, not a raw ZeroDivisionError."""
    with pytest.raises(TemplateError, match="ZeroDivisionError"):
        Expression("a / b > 1", where="route")({"a": 1, "b": 0})


def test_ordinary_templates_still_work_in_the_capped_sandbox() -> None:
    """The caps leave normal formatting, joins and concatenation alone."""
    template = Template("{{ '%-5s|' % name }}{{ items | join(', ') }} {{ a ~ '-' ~ b }} "
                        "{{ '{:>4}'.format(n) }} {{ name.center(9, '*') }} {{ 2 ** 10 }}",
                        where="c")
    assert template.render({"name": "ab", "items": [1, 2], "a": "x", "b": "y", "n": 7}) == (
        "ab   |1, 2 x-y    7 ****ab*** 1024")
