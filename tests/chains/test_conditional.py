"""ConditionalChain: routing by conditions, by expressions and by an LLM router."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainweave.chains.conditional import ConditionalChain, LLMRouter, Route
from chainweave.chains.simple import SimpleChain
from chainweave.chains.transform import TransformChain
from chainweave.errors import ChainInputError, InputValidationError, NoRouteError, TemplateError
from chainweave.testing import MockProvider, MockReply, capture_spans
from chainweave.types import Usage


def leaf(name: str, *extra: str, description: str = "") -> TransformChain:
    """A route chain that answers ``{"handled_by": name}`` plus ``extra`` keys."""
    keys = ["handled_by", *extra]
    return TransformChain(name, lambda _: dict.fromkeys(keys, name), output_keys=keys,
                          description=description)


async def test_sync_callable_condition_picks_its_route() -> None:
    """A sync predicate on the inputs decides which chain runs."""
    router = ConditionalChain("triage", [(lambda i: i["n"] < 0, leaf("negative")),
                                         (lambda i: i["n"] >= 0, leaf("positive"))])
    assert await router.run({"n": -3}) == {"handled_by": "negative"}
    assert await router.run({"n": 5}) == {"handled_by": "positive"}


async def test_async_callable_condition_is_awaited() -> None:
    """An async predicate is awaited, not treated as a truthy coroutine."""

    async def is_vip(inputs: dict[str, Any]) -> bool:
        return bool(inputs["vip"])

    router = ConditionalChain("triage", [(is_vip, leaf("vip")), (lambda _: True, leaf("rest"))])
    assert await router.run({"vip": False}) == {"handled_by": "rest"}
    assert await router.run({"vip": True}) == {"handled_by": "vip"}


async def test_expression_condition_reads_inputs_as_variables() -> None:
    """A string condition is a sandboxed jinja2 expression over the inputs."""
    router = ConditionalChain("grade", [("score > 0.7", leaf("pass"))], default=leaf("fail"))
    assert router.input_keys == ("score",)
    assert await router.run({"score": 0.9}) == {"handled_by": "pass"}
    assert await router.run({"score": 0.2}) == {"handled_by": "fail"}


def test_expression_syntax_error_raises_at_construction() -> None:
    """A condition that does not compile fails when the chain is built, not when run."""
    with pytest.raises(TemplateError, match="does not compile") as info:
        ConditionalChain("grade", [("score >", leaf("pass"))])
    assert any("'pass'" in note for note in info.value.__notes__)


async def test_expression_undefined_variable_is_a_chain_input_error() -> None:
    """A variable the inputs lack raises ChainInputError naming it."""
    router = ConditionalChain("grade", [("score > 0.7", leaf("pass"))], default=leaf("fail"))
    with pytest.raises(ChainInputError, match="score") as info:
        await router.run({"points": 3})
    assert info.value.missing == ["score"]


async def test_expression_undefined_attribute_is_a_chain_input_error() -> None:
    """An attribute missing from an input raises ChainInputError when it is evaluated."""
    router = ConditionalChain("grade", [("user.age > 17", leaf("adult"))], default=leaf("x"))
    with pytest.raises(ChainInputError, match="age") as info:
        await router.run({"user": {"name": "ann"}})
    assert info.value.node == "grade"
    assert any("'adult'" in note for note in info.value.__notes__)


async def test_first_matching_route_wins() -> None:
    """Routes are tried in order; an earlier true condition shadows later ones."""
    router = ConditionalChain("order", [(lambda _: False, leaf("never")),
                                        (lambda _: True, leaf("first")),
                                        (lambda _: True, leaf("second"))])
    run = await router.invoke({})
    assert run.outputs == {"handled_by": "first"}
    assert run.metadata["routes"] == {"order": "first"}


async def test_default_runs_when_nothing_matches() -> None:
    """With no true condition the default chain runs, recorded as route 'default'."""
    router = ConditionalChain("triage", [Route("big", leaf("big"), "n > 100")],
                              default=leaf("fallback"))
    run = await router.invoke({"n": 1})
    assert run.outputs == {"handled_by": "fallback"}
    assert run.metadata["routes"] == {"triage": "default"}


async def test_no_route_without_default_raises() -> None:
    """No match and no default raises NoRouteError naming the chain and its routes."""
    router = ConditionalChain("triage", [Route("big", leaf("b"), "n > 100"),
                                         Route("huge", leaf("h"), "n > 1000")])
    with pytest.raises(NoRouteError, match=r"triage.*\['big', 'huge'\]") as info:
        await router.run({"n": 1})
    assert info.value.node == "triage"


def billing_router(answer: str, *, default: TransformChain | None = None,
                   usage: Usage | None = None) -> tuple[ConditionalChain, MockProvider]:
    """A chain routing between billing and tech by one mock model answer."""
    llm = MockProvider([MockReply(content=answer, usage=usage)])
    routes = {"billing": leaf("billing", description="Invoices and refunds"),
              "tech": leaf("tech", description="Bugs and outages")}
    router = LLMRouter(llm, input_key="question", descriptions={"tech": "Technical help"})
    return ConditionalChain("support", routes, router=router, default=default), llm


async def test_llm_router_sends_constrained_request_and_follows_json_answer() -> None:
    """The router asks once with an enum schema and runs the route the model names."""
    chain, llm = billing_router('{"route": "billing"}')
    run = await chain.invoke({"question": "Why was I charged twice?"})
    assert run.outputs == {"handled_by": "billing"}
    assert run.metadata["routes"] == {"support": "billing"}
    [request] = llm.requests
    assert request.response_format is not None
    assert request.response_format.type == "json_schema"
    assert request.response_format.json_schema is not None
    assert request.response_format.json_schema.schema_ == {
        "type": "object", "properties": {"route": {"type": "string",
                                                   "enum": ["billing", "tech"]}},
        "required": ["route"], "additionalProperties": False}
    system, user = request.messages
    assert system.role == "system"
    assert "- billing: Invoices and refunds" in str(system.content)
    assert "- tech: Technical help" in str(system.content)
    assert user.content == "Why was I charged twice?"


@pytest.mark.parametrize("answer", ["billing", "  Billing\n", '"billing"', "`BILLING`",
                                    '```json\n{"route": "billing"}\n```'])
async def test_llm_router_reads_bare_answers_leniently(answer: str) -> None:
    """A bare, quoted, fenced or differently-cased route name still picks the route."""
    chain, _ = billing_router(answer)
    assert await chain.run({"question": "refund?"}) == {"handled_by": "billing"}


async def test_llm_router_without_input_key_sends_inputs_as_json() -> None:
    """Without input_key the model sees every input as compact JSON."""
    llm = MockProvider(['{"route": "a"}'])
    chain = ConditionalChain("pick", {"a": leaf("a"), "b": leaf("b")}, router=LLMRouter(llm))
    await chain.run({"x": 1, "y": "two"})
    assert json.loads(str(llm.requests[0].messages[1].content)) == {"x": 1, "y": "two"}


async def test_llm_router_unknown_answer_falls_back_to_default() -> None:
    """An answer naming no route runs the default chain."""
    chain, _ = billing_router('{"route": "sales"}', default=leaf("human"))
    run = await chain.invoke({"question": "hi"})
    assert run.outputs == {"handled_by": "human"}
    assert run.metadata["routes"] == {"support": "default"}


async def test_llm_router_unknown_answer_without_default_raises() -> None:
    """An answer naming no route and no default raises NoRouteError quoting the answer."""
    chain, _ = billing_router("I think it's sales")
    with pytest.raises(NoRouteError, match="I think it's sales") as info:
        await chain.run({"question": "hi"})
    assert info.value.details["routes"] == ["billing", "tech"]


async def test_usage_sums_router_and_route_calls() -> None:
    """The router's call and the chosen chain's calls both count in the run's usage."""
    llm = MockProvider([MockReply(content='{"route": "answer"}',
                                  usage=Usage(prompt_tokens=20, completion_tokens=4)),
                        MockReply(content="42", usage=Usage(prompt_tokens=6, completion_tokens=1))])
    answer = SimpleChain("answer", llm, "{{ question }}")
    chain = ConditionalChain("qa", {"answer": answer}, router=LLMRouter(llm, input_key="question"))
    run = await chain.invoke({"question": "meaning of life?"})
    assert run.outputs == {"result": "42"}
    assert (run.usage.prompt_tokens, run.usage.completion_tokens) == (26, 5)
    assert run.llm_calls == 2


def test_output_keys_are_what_every_route_promises() -> None:
    """output_keys is the intersection of every possible chain's outputs, sorted."""
    router = ConditionalChain("c", [("a", leaf("x", "shared", "only_x")),
                                    ("b", leaf("y", "shared", "only_y"))],
                              default=leaf("z", "shared"))
    assert router.output_keys == ("handled_by", "shared")
    assert set(router.input_keys) == {"a", "b"}


async def test_route_is_recorded_on_the_span() -> None:
    """The chosen route is a span attribute, for traces."""
    router = ConditionalChain("traced", [(lambda _: True, leaf("only"))])
    with capture_spans() as spans:
        await router.run({})
    [span] = spans.named("chainweave.chain traced")
    assert span.attributes is not None
    assert span.attributes["chainweave.route"] == "only"


@settings(max_examples=60, deadline=None)
@given(flags=st.lists(st.booleans(), min_size=1, max_size=6), with_default=st.booleans())
def test_chosen_route_is_first_true_condition(flags: list[bool], with_default: bool) -> None:
    """For any list of constant conditions, the first true one runs (else the default)."""
    routes = [(lambda _, flag=flag: flag, leaf(f"r{index}")) for index, flag in enumerate(flags)]
    chain = ConditionalChain("prop", routes, default=leaf("dflt") if with_default else None)
    expected = next((f"r{index}" for index, flag in enumerate(flags) if flag),
                    "dflt" if with_default else None)
    if expected is None:
        with pytest.raises(NoRouteError):
            chain.run_sync({})
    else:
        assert chain.run_sync({}) == {"handled_by": expected}


LEAF = leaf("a")


@pytest.mark.parametrize(("routes", "kwargs", "field", "text"), [
    ([], {}, "routes", "must not be empty"),
    ("a > 1", {}, "routes", "list of routes"),
    ([(lambda _: True, "chain")], {}, "routes", "must be a Chain"),
    ([(3, LEAF)], {}, "routes", "callable or a non-empty expression"),
    ([("  ", LEAF)], {}, "routes", "callable or a non-empty expression"),
    ([(lambda _: True, LEAF), ("x", LEAF)], {}, "routes", "unique"),
    ([Route("a", LEAF)], {}, "routes", "needs a condition"),
    ({"a": LEAF}, {}, "routes", "needs router"),
    ([("x", LEAF)], {"router": LLMRouter(MockProvider())}, "routes", "Route objects"),
    ([Route("a", LEAF, "x")], {"router": LLMRouter(MockProvider())}, "routes",
     "drop route conditions"),
    ({"a": LEAF}, {"router": LLMRouter(MockProvider(), descriptions={"b": "?"})}, "router",
     "unknown routes"),
    ([Route("default", LEAF, "x")], {"default": LEAF}, "routes", "clashes"),
    ([("x", LEAF)], {"default": "nope"}, "default", "must be a Chain"),
    ([("x", LEAF)], {"router": "gpt"}, "router", "LLMRouter"),
])
def test_constructor_rejects_bad_arguments(routes: Any, kwargs: dict[str, Any], field: str,
                                           text: str) -> None:
    """Bad routes or options raise InputValidationError naming the field and the chain."""
    with pytest.raises(InputValidationError, match=text) as info:
        ConditionalChain("triage", routes, **kwargs)
    assert info.value.field == field
    assert info.value.node == "triage"


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"llm": object()}, "llm"),
    ({"descriptions": {"a": 1}}, "descriptions"),
    ({"input_key": ""}, "input_key"),
    ({"model": 3}, "model"),
    ({"instructions": " "}, "instructions"),
])
def test_router_rejects_bad_arguments(kwargs: dict[str, Any], field: str) -> None:
    """LLMRouter validates its arguments with InputValidationError naming the field."""
    arguments: dict[str, Any] = {"llm": MockProvider(), **kwargs}
    llm = arguments.pop("llm")
    with pytest.raises(InputValidationError) as info:
        LLMRouter(llm, **arguments)
    assert info.value.field == field
