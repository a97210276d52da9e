"""The default stage list: which stages the settings switch on, and in what order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chainweave.config import Settings
from chainweave.errors import RateLimitError, RequestTooLargeError
from chainweave.pipeline import Pipeline, RedisBackend, ResponseCache, default_stages
from chainweave.testing import MockProvider
from chainweave.types import ChatRequest


def _names(settings: Settings) -> list[str]:
    return [stage.name for stage in default_stages(settings)]


def test_nothing_configured_gives_validation_security_and_idempotency() -> None:
    """The defaults: size limits, security on, idempotency on; the rest off."""
    assert _names(Settings()) == ["validation", "security", "idempotency"]


async def test_everything_on_comes_in_the_documented_order(tmp_path: Path) -> None:
    """audit → validation → security → idempotency → cache → rate_limit → streaming."""
    settings = Settings.model_validate({
        "security": {"audit_enabled": True, "audit_path": str(tmp_path / "a.jsonl")},
        "cache": {"enabled": True}, "streaming": {"enabled": True},
        "rate_limit": {"tokens_per_minute": 1000}})
    async with Pipeline.from_settings(MockProvider(), settings) as pipeline:
        assert [stage.name for stage in pipeline.stages] == [
            "audit", "validation", "security", "idempotency", "cache", "rate_limit",
            "streaming"]


def test_switches_turn_stages_off() -> None:
    """LLM_SECURITY_ENABLED=false and idempotency.enabled=false drop those stages."""
    settings = Settings.from_env({"LLM_SECURITY_ENABLED": "false"}).model_copy(
        update={"idempotency": Settings().idempotency.model_copy(update={"enabled": False})})
    assert _names(settings) == ["validation"]


async def test_the_environment_configures_cache_and_rate_limits() -> None:
    """LLM_CACHE_* and RATE_LIMIT_* from the environment take effect end to end."""
    settings = Settings.from_env({"LLM_CACHE_ENABLED": "true", "LLM_CACHE_TTL": "1m",
                                  "RATE_LIMIT_REQUESTS_PER_MINUTE": "2"})
    model = MockProvider(["one", "two"])
    pipeline = Pipeline.from_settings(model, settings)
    same = ChatRequest.from_prompt("hello", temperature=0)
    first, again = await pipeline.chat(same), await pipeline.chat(same)
    assert (first.cached, again.cached, again.content) == (False, True, first.content)
    await pipeline.chat(ChatRequest.from_prompt("other", temperature=0))
    with pytest.raises(RateLimitError) as caught:
        await pipeline.chat(ChatRequest.from_prompt("third", temperature=0))
    assert caught.value.retry_after is not None
    assert len(model.requests) == 2
    await pipeline.aclose()


async def test_limits_come_from_the_limits_section() -> None:
    """limits.max_messages reaches the validation stage."""
    settings = Settings.model_validate({"limits": {"max_messages": 1}})
    pipeline = Pipeline.from_settings(MockProvider(), settings)
    request = ChatRequest.model_validate({"messages": [
        {"role": "user", "content": "a"}, {"role": "user", "content": "b"}]})
    with pytest.raises(RequestTooLargeError, match="max_messages"):
        await pipeline.chat(request)


async def test_audit_settings_write_the_file_without_content(tmp_path: Path) -> None:
    """LLM_AUDIT_ENABLED with a path writes JSON lines; content stays out by default."""
    path = tmp_path / "audit.jsonl"
    settings = Settings.from_env({"LLM_AUDIT_ENABLED": "true", "LLM_AUDIT_PATH": str(path)})
    async with Pipeline.from_settings(MockProvider(["fine"]), settings) as pipeline:
        await pipeline.chat(ChatRequest.from_prompt("a private note", request_id="r-9"))
    (record,) = [json.loads(line) for line in path.read_text().splitlines()]
    assert (record["request_id"], record["status"]) == ("r-9", "ok")
    assert "a private note" not in path.read_text()


async def test_redis_url_puts_the_cache_on_redis(redis_url: str) -> None:
    """With REDIS_URL, two pipelines (two processes, say) share one cache."""
    settings = Settings.from_env({"LLM_CACHE_ENABLED": "true", "REDIS_URL": redis_url})
    first_model, second_model = MockProvider(["shared"]), MockProvider(["other"])
    first = Pipeline.from_settings(first_model, settings)
    second = Pipeline.from_settings(second_model, settings)
    cache = first.stage("cache")
    assert isinstance(cache, ResponseCache)
    assert isinstance(cache.backend, RedisBackend)
    request = ChatRequest.from_prompt("shared question for redis", temperature=0)
    await first.chat(request)
    answer = await second.chat(request)
    assert (answer.content, answer.cached) == ("shared", True)
    assert second_model.requests == []
    await first.aclose()
    await second.aclose()
