"""One of several chains, chosen per run: :class:`ConditionalChain`.

Routes are chosen by conditions tried in order (a Python predicate, sync or async, or
a sandboxed jinja2 expression such as ``"score > 0.7"``), or by one model call through
an :class:`LLMRouter` that classifies the inputs into a route name. Only the chosen
route's chain runs; the choice is recorded in the run's metadata under ``routes`` and
on the chain's span as ``chainweave.route``.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from opentelemetry import trace

from chainweave._internal.templates import Expression
from chainweave.chains.base import Chain
from chainweave.chains.context import RunContext
from chainweave.errors import InputValidationError, NoRouteError, TemplateError
from chainweave.types import ChatModel, ChatRequest, Message, ResponseFormat

__all__ = ["DEFAULT_ROUTE", "Condition", "ConditionalChain", "LLMRouter", "Route"]

#: A route's test: ``fn(inputs) -> bool`` (sync or async), or a jinja2 expression over
#: the inputs such as ``"score > 0.7 and not flagged"``.
Condition: TypeAlias = str | Callable[[dict[str, Any]], Any]

#: The route name recorded when the default chain runs.
DEFAULT_ROUTE = "default"

_INSTRUCTIONS = "Classify the user's message into exactly one of the routes below."
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Route:
    """A named chain, and the condition under which it runs.

    Args:
        name: The route's name, unique within its chain.
        chain: What runs when the route is chosen.
        condition: A :data:`Condition`; left out for routes an :class:`LLMRouter`
            chooses between.

    Raises:
        InputValidationError: A field has the wrong type or is empty.
    """

    name: str
    chain: Chain
    condition: Condition | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise InputValidationError(f"route names must be non-empty strings, got "
                                       f"{self.name!r}", field="routes")
        if not isinstance(self.chain, Chain):
            raise InputValidationError(f"route {self.name!r}: chain must be a Chain, got "
                                       f"{type(self.chain).__name__}", field="routes")
        condition = self.condition
        if condition is not None and not callable(condition) and not (
                isinstance(condition, str) and condition.strip()):
            raise InputValidationError(f"route {self.name!r}: condition must be a callable or "
                                       f"a non-empty expression string, got {condition!r}",
                                       field="routes")


class LLMRouter:
    """Chooses a route with one model call, constrained to the route names.

    The request carries a ``json_schema`` response format whose ``route`` property is
    an enum of the route names, a system message listing each route with its
    description, and the input as the user message. The answer is read leniently: JSON
    ``{"route": name}``, or the bare name in any case, with quotes or code fences.

    Args:
        llm: The :class:`~chainweave.types.ChatModel` to ask.
        descriptions: What each route is for, by route name; a route left out is
            described by its chain's ``description``.
        instructions: What the system message says before the route list.
        input_key: The input whose text is classified; the whole inputs, as compact
            JSON, when left out.
        model: The model to ask; the ``llm``'s default when left out.

    Raises:
        InputValidationError: An argument has the wrong type or is empty.
    """

    def __init__(self, llm: ChatModel, *, descriptions: Mapping[str, str] | None = None,
                 instructions: str | None = None, input_key: str | None = None,
                 model: str | None = None) -> None:
        if not callable(getattr(llm, "chat", None)):
            raise InputValidationError(f"LLMRouter: llm must be a ChatModel, got {llm!r}",
                                       field="llm")
        descriptions = {} if descriptions is None else descriptions
        if not isinstance(descriptions, Mapping) or not all(
                isinstance(key, str) and isinstance(value, str)
                for key, value in descriptions.items()):
            raise InputValidationError("LLMRouter: descriptions must map route names to "
                                       f"strings, got {descriptions!r}", field="descriptions")
        for field, value in (("instructions", instructions), ("input_key", input_key),
                             ("model", model)):
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise InputValidationError(f"LLMRouter: {field} must be a non-empty string, "
                                           f"got {value!r}", field=field)
        self.llm = llm
        self.descriptions = dict(descriptions)
        self.instructions = instructions or _INSTRUCTIONS
        self.input_key = input_key
        self.model = model

    def __repr__(self) -> str:
        return f"LLMRouter(llm={self.llm!r}, input_key={self.input_key!r})"

    def request(self, routes: Mapping[str, str], inputs: Mapping[str, Any], *,
                metadata: Mapping[str, Any] | None = None) -> ChatRequest:
        """The classification request for ``inputs``, given ``{route: description}``."""
        listing = "\n".join(f"- {name}: {text}" if text else f"- {name}"
                            for name, text in routes.items())
        system = (f"{self.instructions}\n\nRoutes:\n{listing}\n\n"
                  'Answer with JSON {"route": "<route name>"} and nothing else.')
        value = inputs[self.input_key] if self.input_key is not None else dict(inputs)
        text = value if isinstance(value, str) else _compact(value)
        schema = {"type": "object",
                  "properties": {"route": {"type": "string", "enum": list(routes)}},
                  "required": ["route"], "additionalProperties": False}
        return ChatRequest(
            model=self.model, messages=[Message.system(system), Message.user(text)],
            response_format=ResponseFormat.model_validate(
                {"type": "json_schema",
                 "json_schema": {"name": "route", "schema": schema, "strict": True}}),
            metadata=dict(metadata or {}))

    def parse(self, answer: str | None, names: Sequence[str]) -> str | None:
        """The route ``answer`` names, or None when it names none of ``names``."""
        text = (answer or "").strip()
        fenced = _FENCE.match(text)
        if fenced:
            text = fenced.group(1)
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = text
        if isinstance(value, dict):
            value = value.get("route")
        if not isinstance(value, str):
            return None
        candidate = value.strip(" \t\r\n\"'`.")
        if candidate in names:
            return candidate
        folded = [name for name in names if name.casefold() == candidate.casefold()]
        return folded[0] if len(folded) == 1 else None

    async def choose(self, routes: Mapping[str, str], inputs: Mapping[str, Any],
                     ctx: RunContext) -> tuple[str | None, str]:
        """Ask the model; return the route it chose (None for no route) and its answer.

        The call goes through ``ctx.chat`` so its usage counts in the run; it is never
        streamed, since the answer is a route name and not text for the user.
        """
        request = self.request(routes, inputs,
                               metadata={"chain": ctx.chain, "run_id": ctx.run_id})
        response = await ctx.chat(self.llm, request, stream=False)
        return self.parse(response.content, list(routes)), response.content


class ConditionalChain(Chain):
    """Run the first route whose condition holds, or the route a model chooses.

    Without a router, routes are tried in order and the first whose condition is
    truthy runs; when none is, the ``default`` chain runs (recorded as route
    ``"default"``). With an :class:`LLMRouter`, one model call picks among named routes;
    an answer naming no route falls back to ``default`` likewise.

    The chain needs the variables its expression conditions use and the router's
    ``input_key``; the chosen chain checks its own inputs when it runs. It promises the
    outputs every possible chain promises.

    Args:
        name: The chain's name.
        routes: ``(condition, chain)`` pairs (a route named after its chain) or
            :class:`Route` objects with conditions; with a ``router``, a mapping of
            route name to chain or :class:`Route` objects without conditions.
        default: What runs when no route is chosen.
        router: Choose routes with a model call instead of conditions.
        description: What the chain does.

    Raises:
        InputValidationError: No routes, a malformed route, duplicate route names,
            conditions given with a router or missing without one, or router
            descriptions for unknown routes.
        TemplateError: An expression condition does not compile.
        NoRouteError: (when run) No route was chosen and there is no default.
    """

    def __init__(self, name: str, routes: Sequence[tuple[Condition, Chain] | Route]
                 | Mapping[str, Chain], *, default: Chain | None = None,
                 router: LLMRouter | None = None, description: str = "") -> None:
        if router is not None and not isinstance(router, LLMRouter):
            raise InputValidationError(f"{name}: router must be an LLMRouter, got {router!r}",
                                       field="router", node=name)
        if default is not None and not isinstance(default, Chain):
            raise InputValidationError(f"{name}: default must be a Chain, got "
                                       f"{type(default).__name__}", field="default", node=name)
        self.routes = _routes(name, routes, router)
        self.default = default
        self.router = router
        self._conditions = [_compile(name, route) for route in self.routes]
        _check_names(name, [route.name for route in self.routes], default, router)
        self._chains = {route.name: route.chain for route in self.routes}
        self._descriptions = {route.name: (router.descriptions.get(route.name)
                                           if router else None) or route.chain.description
                              for route in self.routes}
        needed = {var for condition in self._conditions if isinstance(condition, Expression)
                  for var in condition.variables}
        if router is not None and router.input_key is not None:
            needed.add(router.input_key)
        possible = [route.chain for route in self.routes] + ([default] if default else [])
        promised = set(possible[0].output_keys).intersection(
            *(chain.output_keys for chain in possible[1:]))
        super().__init__(name, description=description, input_keys=sorted(needed),
                         output_keys=sorted(promised))

    async def _call(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        if self.router is not None:
            chosen, answer = await self.router.choose(self._descriptions, inputs, ctx)
        else:
            chosen, answer = await self._first_match(inputs), None
        chain = self._chains[chosen] if chosen is not None else self.default
        if chain is None:
            raise self._no_route(answer)
        route = chosen if chosen is not None else DEFAULT_ROUTE
        ctx.metadata.setdefault("routes", {})[self.name] = route
        if ctx.tracing:
            trace.get_current_span().set_attribute("chainweave.route", route)
        return await chain.call(inputs, ctx)

    async def _first_match(self, inputs: dict[str, Any]) -> str | None:
        for route, condition in zip(self.routes, self._conditions, strict=True):
            try:
                result = condition(inputs)
                if inspect.isawaitable(result):
                    result = await result
                if result:
                    return route.name
            except Exception as exc:
                exc.add_note(f"chainweave: in the condition of route {route.name!r}")
                raise
        return None

    def _no_route(self, answer: str | None) -> NoRouteError:
        names = list(self._chains)
        if answer is None:
            message = f"{self.name}: no route's condition held and there is no default"
        else:
            message = (f"{self.name}: the router answered {answer!r}, which names no route, "
                       "and there is no default")
        return NoRouteError(f"{message}; routes: {names}", node=self.name,
                            details={"routes": names, "answer": answer})


def _routes(owner: str, routes: object, router: LLMRouter | None) -> list[Route]:
    """``routes`` as :class:`Route` objects, checked against whether there is a router."""
    if isinstance(routes, Mapping) and router is None:
        raise InputValidationError(f"{owner}: a mapping of routes needs router=LLMRouter(...); "
                                   "give (condition, chain) pairs to route by condition",
                                   field="routes", node=owner)
    if isinstance(routes, Mapping):
        items: list[object] = [_route(owner, key, value, None) for key, value in routes.items()]
    elif isinstance(routes, str | bytes) or not isinstance(routes, Sequence):
        raise InputValidationError(f"{owner}: routes must be a list of routes or a mapping "
                                   f"of route name to chain, got {routes!r}", field="routes",
                                   node=owner)
    else:
        items = list(routes)
    if not items:
        raise InputValidationError(f"{owner}: routes must not be empty", field="routes",
                                   node=owner)
    checked: list[Route] = []
    for item in items:
        if isinstance(item, tuple) and len(item) == 2 and router is None:
            condition, chain = item
            name = chain.name if isinstance(chain, Chain) else "?"
            item = _route(owner, name, chain, condition)
        if not isinstance(item, Route):
            want = "Route objects without conditions or a mapping" if router else \
                "(condition, chain) pairs or Route objects"
            raise InputValidationError(f"{owner}: routes must be {want}, got {item!r}",
                                       field="routes", node=owner)
        if (item.condition is None) != (router is not None):
            why = ("a router chooses the routes; drop route conditions" if router else
                   "without a router every route needs a condition")
            raise InputValidationError(f"{owner}: route {item.name!r}: {why}",
                                       field="routes", node=owner)
        checked.append(item)
    return checked


def _route(owner: str, name: object, chain: object, condition: object) -> Route:
    try:
        return Route(name, chain, condition)  # type: ignore[arg-type]
    except InputValidationError as exc:
        raise InputValidationError(f"{owner}: {exc.message}", field=exc.field,
                                   node=owner) from None


def _check_names(owner: str, names: Sequence[str], default: Chain | None,
                 router: LLMRouter | None) -> None:
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InputValidationError(f"{owner}: route names must be unique; {duplicates} "
                                   "appear more than once", field="routes", node=owner)
    if default is not None and DEFAULT_ROUTE in names:
        raise InputValidationError(f"{owner}: a route named {DEFAULT_ROUTE!r} clashes with "
                                   "the default chain's route name", field="routes",
                                   node=owner)
    unknown = [key for key in (router.descriptions if router else {}) if key not in names]
    if unknown:
        raise InputValidationError(f"{owner}: router descriptions name unknown routes "
                                   f"{unknown}; routes are {list(names)}", field="router",
                                   node=owner)


def _compile(owner: str, route: Route) -> Callable[[dict[str, Any]], Any]:
    condition = route.condition
    if not isinstance(condition, str):
        if condition is None:
            return lambda _: False  # a router route: never tried by condition
        return condition
    try:
        return Expression(condition, where=owner)
    except TemplateError as exc:
        exc.add_note(f"chainweave: in the condition of route {route.name!r}")
        raise


def _compact(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True,
                      default=str)
