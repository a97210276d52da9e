"""The pipeline core: stage order, the shared Call, short-circuits, streams and closing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from chainweave.errors import InputValidationError
from chainweave.pipeline import Call, NextChat, NextStream, Pipeline, Stage
from chainweave.pipeline.base import closing_stream
from chainweave.testing import MockProvider
from chainweave.types import ChatModel, ChatRequest, ChatResponse, StreamChunk


def _request(text: str = "hi", **fields: object) -> ChatRequest:
    return ChatRequest.from_prompt(text, **fields)  # type: ignore[arg-type]


class Tag(Stage):
    """Records its name on the way in and out, and tags the prompt."""

    name = "tag"

    def __init__(self, label: str, log: list[str]) -> None:
        self.label, self.log = label, log

    async def chat(self, request: ChatRequest, call: Call, call_next: NextChat) -> ChatResponse:
        self.log.append(f"in:{self.label}")
        call.annotations.setdefault("seen", []).append(self.label)
        tagged = request.messages[-1].model_copy(
            update={"content": f"{request.messages[-1].text}+{self.label}"})
        response = await call_next(request.model_copy(update={"messages": [tagged]}))
        self.log.append(f"out:{self.label}")
        return response

    async def stream(self, request: ChatRequest, call: Call,
                     call_next: NextStream) -> AsyncIterator[StreamChunk]:
        self.log.append(f"in:{self.label}")
        async with closing_stream(call_next(request)) as chunks:
            async for chunk in chunks:
                yield chunk.model_copy(update={"delta": chunk.delta.upper()})
        self.log.append(f"out:{self.label}")


class Answer(Stage):
    """Answers by itself, never calling on."""

    name = "answer"

    async def chat(self, request: ChatRequest, call: Call, call_next: NextChat) -> ChatResponse:
        return ChatResponse(id="x", model="m", provider="stage", content="from stage")


async def test_the_pipeline_is_a_chat_model() -> None:
    """Chains take any ChatModel; a Pipeline is one."""
    assert isinstance(Pipeline(MockProvider()), ChatModel)


async def test_stages_run_outermost_first_and_see_each_others_changes() -> None:
    """The first stage sees the request first and the response last."""
    log: list[str] = []
    model = MockProvider(["ok"])
    pipeline = Pipeline(model, [Tag("a", log), Tag("b", log)])
    response = await pipeline.chat(_request("hi"))
    assert response.content == "ok"
    assert log == ["in:a", "in:b", "out:b", "out:a"]
    assert model.requests[0].messages[-1].text == "hi+a+b"


async def test_every_stage_of_one_request_shares_one_call() -> None:
    """A Call is made per request and handed to every stage."""
    seen: list[Call] = []

    class Grab(Stage):
        async def chat(self, request: ChatRequest, call: Call,
                       call_next: NextChat) -> ChatResponse:
            seen.append(call)
            return await call_next(request)

    pipeline = Pipeline(MockProvider(), [Grab(), Grab()])
    await pipeline.chat(_request(request_id="r-1"))
    await pipeline.chat(_request())
    assert seen[0] is seen[1]
    assert seen[2] is seen[3]
    assert seen[0] is not seen[2]
    assert seen[0].request_id == "r-1"
    assert seen[2].request_id
    assert seen[2].request_id != "r-1"


async def test_a_stage_can_answer_without_the_model() -> None:
    """A short-circuit (a cache hit, say) never reaches the model or later stages."""
    log: list[str] = []
    model = MockProvider()
    pipeline = Pipeline(model, [Answer(), Tag("late", log)])
    assert (await pipeline.chat(_request())).content == "from stage"
    assert model.requests == []
    assert log == []


async def test_streams_pass_through_each_stage() -> None:
    """Stream chunks flow back out through the stages."""
    log: list[str] = []
    pipeline = Pipeline(MockProvider(["hello there"]), [Tag("a", log)])
    text = "".join([c.delta async for c in pipeline.stream(_request())])
    assert text == "HELLO THERE"
    assert log == ["in:a", "out:a"]


async def test_an_abandoned_stream_is_closed_all_the_way_down() -> None:
    """Breaking off a stream closes every stage's iterator and the model's."""
    closed: list[bool] = []

    class Upstream(MockProvider):
        async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
            try:
                for word in ("a", "b", "c"):
                    yield StreamChunk(delta=word)
            finally:
                closed.append(True)

    log: list[str] = []
    chunks = Pipeline(Upstream(), [Tag("a", log)]).stream(_request())
    async for _ in chunks:
        break
    await chunks.aclose()  # type: ignore[attr-defined]
    assert closed == [True]


async def test_without_stages_the_model_answers_directly() -> None:
    """An empty pipeline adds nothing."""
    model = MockProvider(["plain"])
    assert (await Pipeline(model).chat(_request())).content == "plain"


async def test_stages_must_be_stages() -> None:
    """A non-stage is refused at build time, naming its position."""
    with pytest.raises(InputValidationError, match=r"stages\[1\]"):
        Pipeline(MockProvider(), [Stage(), object()])  # type: ignore[list-item]


async def test_closing_closes_stages_and_the_model() -> None:
    """aclose releases every stage and the wrapped model."""
    closed: list[str] = []

    class Holder(Stage):
        async def aclose(self) -> None:
            closed.append("stage")

    model = MockProvider()
    async with Pipeline(model, [Holder()]) as pipeline:
        assert pipeline.stage("stage") is not None
    assert closed == ["stage"]
    assert model.closed


async def test_a_pipeline_can_wrap_a_pipeline() -> None:
    """Pipelines nest, since each is a ChatModel."""
    log: list[str] = []
    inner = Pipeline(MockProvider(["x"]), [Tag("inner", log)])
    outer = Pipeline(inner, [Tag("outer", log)])
    await outer.chat(_request())
    assert log == ["in:outer", "in:inner", "out:inner", "out:outer"]
