"""AgentChain: the tool-calling loop, concurrency, errors fed back, limits, streaming."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from chainweave.chains.agent import AgentChain
from chainweave.chains.context import RunConfig
from chainweave.chains.events import ChainEnd, TokenEvent
from chainweave.chains.tools import FunctionTool, tool
from chainweave.errors import ChainInputError, InputValidationError, MaxIterationsError
from chainweave.testing import MockProvider, MockReply
from chainweave.types import Message, ToolCall, Usage


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def call(ident: str, name: str, arguments: str) -> dict[str, str]:
    """One scripted tool call."""
    return {"id": ident, "name": name, "arguments": arguments}


def calls(*items: dict[str, str], usage: Usage | None = None) -> MockReply:
    """A scripted reply that makes these tool calls."""
    return MockReply(tool_calls=[ToolCall.model_validate(item) for item in items], usage=usage)


ADD_1_2 = call("c1", "add", '{"a": 1, "b": 2}')


def tool_messages(llm: MockProvider, request: int = -1) -> list[Message]:
    """The tool messages at the end of one recorded request."""
    return [m for m in llm.requests[request].messages if m.role == "tool"]


# --- the loop ------------------------------------------------------------------------


async def test_runs_tool_and_returns_final_answer() -> None:
    """The model's tool call runs, its result goes back, and the next text is the answer."""
    llm = MockProvider([calls(ADD_1_2), "The sum is 3."])
    agent = AgentChain("agent", llm, [add])
    assert await agent.run("What is 1 + 2?") == {"output": "The sum is 3."}
    sent = llm.requests[1].messages
    assert [m.role for m in sent] == ["user", "assistant", "tool"]
    assert sent[1].tool_calls is not None
    assert sent[1].tool_calls[0].id == "c1"
    assert (sent[2].tool_call_id, sent[2].name, sent[2].content) == ("c1", "add", "3")


async def test_sends_tool_specs_and_params() -> None:
    """Every request carries every tool's schema and the chain's request parameters."""
    multiply = FunctionTool.from_function(lambda a, b: a * b, name="mul")
    llm = MockProvider([calls(ADD_1_2), "done"])
    agent = AgentChain("agent", llm, [add, multiply], temperature=0.2, model="m1")
    await agent.run("hi")
    for request in llm.requests:
        assert [t.name for t in request.tools or ()] == ["add", "mul"]
        assert request.tools is not None
        assert request.tools[0].parameters["required"] == ["a", "b"]
        assert (request.temperature, request.model) == (0.2, "m1")


async def test_system_prompt_template_over_inputs() -> None:
    """The system prompt renders from the inputs, whose variables become required inputs."""
    llm = MockProvider(["hello"])
    agent = AgentChain("agent", llm, [add], system_prompt="You help {{ user }}.")
    assert set(agent.input_keys) == {"input", "user"}
    await agent.run({"input": "hi", "user": "Ada"})
    first = llm.requests[0].messages[0]
    assert (first.role, first.content) == ("system", "You help Ada.")
    with pytest.raises(ChainInputError):
        await agent.run({"input": "hi"})


async def test_tool_call_count_in_metadata() -> None:
    """The run's metadata counts the tool calls made, over every round."""
    llm = MockProvider([calls(ADD_1_2, call("c2", "add", '{"a": 2, "b": 2}')),
                        calls(call("c3", "add", '{"a": 3, "b": 3}')), "done"])
    run = await AgentChain("agent", llm, [add]).invoke("hi")
    assert run.metadata["tool_calls"] == {"agent": 3}
    direct = await AgentChain("direct", MockProvider(["ok"]), [add]).invoke("hi")
    assert direct.metadata["tool_calls"] == {"direct": 0}


async def test_usage_summed_over_iterations() -> None:
    """invoke().usage adds up every model call the loop made."""
    usage = Usage(prompt_tokens=10, completion_tokens=5)
    llm = MockProvider([calls(ADD_1_2, usage=usage), MockReply("ok", usage=usage)])
    run = await AgentChain("agent", llm, [add]).invoke("hi")
    assert (run.usage.prompt_tokens, run.usage.completion_tokens) == (20, 10)
    assert run.llm_calls == 2


async def test_return_messages_transcript() -> None:
    """return_messages gives the whole conversation, final answer included."""
    llm = MockProvider([calls(ADD_1_2), "It is 3."])
    agent = AgentChain("agent", llm, [add], system_prompt="Be brief.", return_messages=True)
    outputs = await agent.run("1+2?")
    transcript = outputs["messages"]
    assert [m.role for m in transcript] == ["system", "user", "assistant", "tool", "assistant"]
    assert transcript[-1].content == outputs["output"] == "It is 3."


async def test_non_text_input_sent_as_json() -> None:
    """An input that is not text reaches the model as JSON."""
    llm = MockProvider(["ok"])
    await AgentChain("agent", llm, [add]).run({"input": {"a": 1}})
    assert llm.requests[0].messages[0].content == '{"a": 1}'


# --- running tools -------------------------------------------------------------------


async def test_parallel_tool_calls_run_concurrently() -> None:
    """The calls of one reply run at the same time: each tool waits for the other."""
    ping_started, pong_started = asyncio.Event(), asyncio.Event()

    @tool
    async def ping() -> str:
        ping_started.set()
        await asyncio.wait_for(pong_started.wait(), 1)
        return "ping ok"

    @tool
    async def pong() -> str:
        pong_started.set()
        await asyncio.wait_for(ping_started.wait(), 1)
        return "pong ok"

    llm = MockProvider([calls(call("c1", "ping", "{}"), call("c2", "pong", "{}")), "done"])
    await AgentChain("agent", llm, [ping, pong]).run("go")
    assert [m.content for m in tool_messages(llm)] == ["ping ok", "pong ok"]


async def test_results_keep_call_order() -> None:
    """Tool messages follow the model's call order, not the order the tools finished."""
    @tool
    async def wait(ms: int) -> int:
        await asyncio.sleep(ms / 1000)
        return ms

    llm = MockProvider([calls(call("slow", "wait", '{"ms": 30}'),
                              call("fast", "wait", '{"ms": 0}')), "done"])
    await AgentChain("agent", llm, [wait]).run("go")
    assert [(m.tool_call_id, m.content) for m in tool_messages(llm)] == [
        ("slow", "30"), ("fast", "0")]


@pytest.mark.parametrize(("own", "config"), [(1, None), (None, RunConfig(max_concurrency=1))])
async def test_max_concurrency_limits_tool_calls(own: int | None,
                                                 config: RunConfig | None) -> None:
    """max_concurrency (the chain's, else the run's) caps the tools running at once."""
    active: list[int] = [0, 0]  # now, highest

    @tool
    async def work() -> str:
        active[0] += 1
        active[1] = max(active)
        await asyncio.sleep(0.01)
        active[0] -= 1
        return "ok"

    llm = MockProvider([calls(*(call(f"c{i}", "work", "{}") for i in range(3))), "done"])
    await AgentChain("agent", llm, [work], max_concurrency=own).run("go", config)
    assert active[1] == 1
    assert len(tool_messages(llm)) == 3


async def test_sync_and_blocking_tools() -> None:
    """Sync tools, inline or blocking (in a thread), answer like async ones."""
    @tool(blocking=True)
    def shout(text: str) -> str:
        return text.upper()

    llm = MockProvider([calls(ADD_1_2, call("c2", "shout", '{"text": "hi"}')), "done"])
    await AgentChain("agent", llm, [add, shout]).run("go")
    assert [m.content for m in tool_messages(llm)] == ["3", "HI"]


async def test_tool_exception_goes_back_to_the_model() -> None:
    """A tool that raises does not fail the run: the model reads the error and goes on."""
    def explode() -> str:
        raise ValueError("boom")

    llm = MockProvider([calls(call("c1", "explode", "{}")), "Sorry, it failed."])
    outputs = await AgentChain("agent", llm, [explode]).run("go")
    assert outputs == {"output": "Sorry, it failed."}
    assert tool_messages(llm)[0].content == "Error: ValueError: boom"


async def test_tool_errors_sent_to_the_model_are_redacted() -> None:
    """A key in a tool's error message never reaches the model vendor."""
    key = "sk-proj-A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6"

    def leaky() -> str:
        raise RuntimeError(f"GET https://api.example.com?api_key={key} -> 401")

    llm = MockProvider([calls(call("c1", "leaky", "{}")), "ok"])
    await AgentChain("agent", llm, [leaky]).run("go")
    content = str(tool_messages(llm)[0].content)
    assert content.startswith("Error: RuntimeError")
    assert key not in content


async def test_unknown_tool_goes_back_as_error() -> None:
    """A call to a tool that does not exist is answered with an error naming the tools."""
    llm = MockProvider([calls(call("c1", "nope", "{}")), "ok"])
    await AgentChain("agent", llm, [add]).run("go")
    content = tool_messages(llm)[0].content
    assert isinstance(content, str)
    assert content.startswith("Error: InputValidationError: unknown tool 'nope'")
    assert "add" in content


async def test_bad_arguments_go_back_as_error() -> None:
    """Arguments that do not validate are reported to the model, naming the argument."""
    llm = MockProvider([calls(call("c1", "add", '{"a": "x"}')), "ok"])
    await AgentChain("agent", llm, [add]).run("go")
    content = tool_messages(llm)[0].content
    assert isinstance(content, str)
    assert content.startswith("Error: InputValidationError: tool 'add': invalid arguments")
    assert "a: Input should be a valid integer" in content
    assert "b: Field required" in content


async def test_tool_timeout_goes_back_as_error() -> None:
    """A tool past tool_timeout is abandoned and the model told it timed out."""
    @tool
    async def hang() -> str:
        await asyncio.sleep(5)
        return "never"

    llm = MockProvider([calls(call("c1", "hang", "{}")), "gave up"])
    started = time.perf_counter()
    outputs = await AgentChain("agent", llm, [hang], tool_timeout=0.05).run("go")
    assert time.perf_counter() - started < 1
    assert outputs["output"] == "gave up"
    assert tool_messages(llm)[0].content == (
        "Error: ChainTimeoutError: tool 'hang' timed out after 0.05s")


async def test_max_iterations_raises() -> None:
    """A model that never stops calling tools hits max_iterations with a clear error."""
    ran: list[int] = []

    def count() -> int:
        ran.append(1)
        return len(ran)

    llm = MockProvider([calls(call("c1", "count", "{}"))])  # repeated forever
    agent = AgentChain("looper", llm, [count], max_iterations=3)
    with pytest.raises(MaxIterationsError, match="3") as info:
        await agent.run("go")
    assert info.value.node == "looper"
    assert "count" in info.value.message
    assert len(llm.requests) == 3
    assert len(ran) == 2  # the last round's calls are not run: no model would read them


# --- streaming -----------------------------------------------------------------------


async def test_stream_yields_final_answer_tokens_and_end() -> None:
    """Streaming the agent yields the final answer's tokens, then its ChainEnd."""
    llm = MockProvider([calls(ADD_1_2), "The sum is 3."])
    events = [event async for event in AgentChain("agent", llm, [add]).stream("1+2?")]
    tokens = "".join(e.text for e in events if isinstance(e, TokenEvent))
    assert tokens == "The sum is 3."
    last = events[-1]
    assert isinstance(last, ChainEnd)
    assert last.outputs == {"output": "The sum is 3."}
    assert tool_messages(llm)[0].content == "3"


# --- construction --------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"tools": []}, "tools"),
    ({"tools": "add"}, "tools"),
    ({"tools": [add, 3]}, "tools.1"),
    ({"tools": [add, tool(add)]}, "tools.1"),
    ({"max_iterations": 0}, "max_iterations"),
    ({"max_concurrency": 0}, "max_concurrency"),
    ({"tool_timeout": -1}, "tool_timeout"),
    ({"temperature": 5}, "temperature"),
    ({"messages": []}, "messages"),
    ({"input_key": ""}, "input_key"),
])
def test_bad_arguments_rejected(kwargs: dict[str, Any], field: str) -> None:
    """Bad constructor arguments raise InputValidationError naming the field and chain."""
    arguments: dict[str, Any] = {"tools": [add], **kwargs}
    tools = arguments.pop("tools")
    with pytest.raises(InputValidationError) as info:
        AgentChain("agent", MockProvider(), tools, **arguments)
    assert info.value.field == field
    assert info.value.node == "agent"
