"""Tests for chainweave.config: interpolation, env and YAML settings, precedence, secrets."""

from __future__ import annotations

import operator
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from chainweave import config
from chainweave._internal.redact import redact
from chainweave.config import (
    Settings,
    interpolate,
    load_settings,
    parse_bool,
    parse_duration,
)
from chainweave.errors import ConfigurationError

OPENAI_KEY = "test-openai-key-0123456789"
ANTHROPIC_KEY = "test-anthropic-key-0123456789"
AZURE_KEY = "test-azure-key-0123456789"
OPENROUTER_KEY = "test-openrouter-key-0123456789"
GENERIC_KEY = "test-generic-key-0123456789"
ALL_KEYS = (OPENAI_KEY, ANTHROPIC_KEY, AZURE_KEY, OPENROUTER_KEY, GENERIC_KEY)

SEED_002_YAML = """\
orchestrator:
  max_concurrent_chains: 10
  max_concurrent_graphs: 5
  default_timeout: 30s
  enable_metrics: true
  enable_tracing: true

providers:
  openai:
    api_key: ${OPENAI_API_KEY}
    model: gpt-3.5-turbo
    max_tokens: 4096

  anthropic:
    api_key: ${ANTHROPIC_API_KEY}
    model: claude-3-sonnet
    max_tokens: 4096

cache:
  enabled: true
  ttl: 1h
  max_size: 1000

security:
  enabled: true
  audit_enabled: true
  input_validation: true
  output_filtering: true
"""

KEYS_ENV = {"OPENAI_API_KEY": OPENAI_KEY, "ANTHROPIC_API_KEY": ANTHROPIC_KEY}


def _plain(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """os.environ without any variable chainweave reads."""
    for name in [*config._ENV_PATHS, config._MODEL_ALIAS]:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


# --- interpolation ---------------------------------------------------------------------


def test_interpolate_replaces_variable() -> None:
    """${VAR} is replaced by the variable's value."""
    assert interpolate("key=${A}!", {"A": "1"}) == "key=1!"


def test_interpolate_walks_dicts_and_lists() -> None:
    """Strings nested in dicts and lists are interpolated; keys are left alone."""
    data = {"${A}": ["x${A}", {"y": "${A}"}]}
    assert interpolate(data, {"A": "1"}) == {"${A}": ["x1", {"y": "1"}]}


def test_interpolate_leaves_non_strings() -> None:
    """Numbers, booleans and None pass through untouched."""
    assert interpolate([1, 2.5, True, None], {}) == [1, 2.5, True, None]


def test_missing_variable_names_it() -> None:
    """An unset ${VAR} is a ConfigurationError naming VAR."""
    with pytest.raises(ConfigurationError, match="environment variable SECRET_TOKEN is not set"):
        interpolate("${SECRET_TOKEN}", {})


def test_missing_variable_names_key_path_and_source() -> None:
    """The error names the source and the key path when they are known."""
    with pytest.raises(ConfigurationError, match=r"^app\.yaml: db\.url: environment variable DB"):
        interpolate({"db": {"url": "${DB}"}}, {}, source="app.yaml")


def test_default_used_when_unset_or_empty() -> None:
    """${VAR:-d} gives d when VAR is unset or empty, and VAR's value otherwise."""
    assert interpolate("${A:-d}", {}) == "d"
    assert interpolate("${A:-d}", {"A": ""}) == "d"
    assert interpolate("${A:-d}", {"A": "v"}) == "v"


def test_set_but_empty_required_variable_is_empty() -> None:
    """${VAR} with VAR set to "" is "" (only unset is an error)."""
    assert interpolate("<${A}>", {"A": ""}) == "<>"


def test_double_dollar_escapes_reference() -> None:
    """$${ is a literal ${, and the name after it is not looked up."""
    assert interpolate("$${HOME} costs $5", {}) == "${HOME} costs $5"


def test_substituted_values_are_not_expanded_again() -> None:
    """A value containing ${OTHER} is inserted literally (no nested expansion)."""
    assert interpolate("${A}", {"A": "${B}", "B": "no"}) == "${B}"


def test_malformed_reference_is_an_error() -> None:
    """A ${ that does not start ${NAME} or ${NAME:-default} is refused."""
    with pytest.raises(ConfigurationError, match="malformed reference"):
        interpolate("${A-b}", {"A": "x"})


def test_interpolate_defaults_to_os_environ(clean_environ: pytest.MonkeyPatch) -> None:
    """Without env, os.environ is read."""
    clean_environ.setenv("CW_TEST_VAR", "from-env")
    assert interpolate("${CW_TEST_VAR}") == "from-env"


_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True)


@given(st.text(alphabet=st.characters(blacklist_characters="$")))
def test_strings_without_dollar_are_unchanged(text: str) -> None:
    """Text with no $ comes back as it was."""
    assert interpolate(text, {}) == text


@given(_names, st.text(alphabet=st.characters(blacklist_characters="}")))
def test_default_of_unset_variable_is_literal(name: str, default: str) -> None:
    """${VAR:-d} with VAR unset is exactly d, even if d contains $ or ${."""
    assert interpolate(f"${{{name}:-{default}}}", {}) == default


@given(st.text())
def test_escaping_round_trips(text: str) -> None:
    """Escaping every ${ as $${ and interpolating gives back the original text."""
    assert interpolate(text.replace("${", "$${"), {}) == text


# --- durations and booleans ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(30, 30.0), (1.5, 1.5), ("30", 30.0), ("30s", 30.0), ("1h", 3600.0), ("1m30s", 90.0),
     ("250ms", 0.25), (" 2M ", 120.0), ("1h30m", 5400.0), ("0.5s", 0.5)],
)
def test_parse_duration_accepts(value: object, seconds: float) -> None:
    """Durations are numbers of seconds or number-unit strings."""
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["abc", "", "-1", "1x", "s", "1 h", True, None, -3,
                                   float("nan"), float("inf"), 10**400, "1e3", [1]])
def test_parse_duration_refuses(value: object) -> None:
    """Anything else is a ConfigurationError."""
    with pytest.raises(ConfigurationError, match="invalid duration"):
        parse_duration(value)


@given(st.integers(0, 100), st.integers(0, 59), st.integers(0, 59), st.integers(0, 999))
def test_duration_units_add_up(hours: int, minutes: int, secs: int, millis: int) -> None:
    """'XhYmZsWms' is the sum of its parts in seconds."""
    text = f"{hours}h{minutes}m{secs}s{millis}ms"
    expected = hours * 3600 + minutes * 60 + secs + millis / 1000
    assert parse_duration(text) == pytest.approx(expected)


@given(st.one_of(st.integers(0, 10**9), st.floats(0, 1e9)))
def test_duration_number_is_seconds(value: float) -> None:
    """A non-negative number is that many seconds, as a number or as digits."""
    assert parse_duration(value) == value
    if isinstance(value, int):
        assert parse_duration(str(value)) == value


_TRUE_WORDS = ["true", "1", "yes", "on"]
_FALSE_WORDS = ["false", "0", "no", "off"]


@given(st.sampled_from([(w, True) for w in _TRUE_WORDS] + [(w, False) for w in _FALSE_WORDS]),
       st.randoms(use_true_random=False))
def test_parse_bool_words_in_any_case(pair: tuple[str, bool], rnd: Any) -> None:
    """Boolean words are read in any mix of case, with surrounding spaces."""
    word, expected = pair
    mixed = "".join(c.upper() if rnd.random() < 0.5 else c for c in word)
    assert parse_bool(f" {mixed} ") is expected


@pytest.mark.parametrize(("value", "expected"), [(True, True), (False, False), (1, True),
                                                 (0, False)])
def test_parse_bool_accepts_bools_and_zero_one(value: object, expected: bool) -> None:
    """Real booleans and the integers 0 and 1 are flags too."""
    assert parse_bool(value) is expected


@pytest.mark.parametrize("value", ["maybe", "", "2", 2, None, "tru"])
def test_parse_bool_refuses(value: object) -> None:
    """Anything else is a ConfigurationError naming the value."""
    with pytest.raises(ConfigurationError, match="invalid boolean"):
        parse_bool(value)


# --- environment -----------------------------------------------------------------------

ENV_CASES: list[tuple[str, str, str, Any]] = [
    ("LLM_PROVIDER", "anthropic", "provider", "anthropic"),
    ("PRIMARY_MODEL", "gpt-4o", "primary_model", "gpt-4o"),
    ("SECONDARY_MODEL", "gpt-4o-mini", "secondary_model", "gpt-4o-mini"),
    ("LLM_API_KEY", GENERIC_KEY, "api_key", GENERIC_KEY),
    ("LLM_API_BASE", "http://localhost:8000/v1", "api_base", "http://localhost:8000/v1"),
    ("LLM_CONCURRENT_NUMBER", "7", "concurrent_number", 7),
    ("OPENAI_API_KEY", OPENAI_KEY, "openai.api_key", OPENAI_KEY),
    ("OPENAI_API_BASE", "https://proxy.test/v1", "openai.api_base", "https://proxy.test/v1"),
    ("ANTHROPIC_API_KEY", ANTHROPIC_KEY, "anthropic.api_key", ANTHROPIC_KEY),
    ("ANTHROPIC_API_BASE", "https://claude.test", "anthropic.api_base", "https://claude.test"),
    ("AZURE_API_KEY", AZURE_KEY, "azure.api_key", AZURE_KEY),
    ("AZURE_API_BASE", "https://res.openai.azure.com", "azure.api_base",
     "https://res.openai.azure.com"),
    ("AZURE_API_VERSION", "2024-06-01", "azure.api_version", "2024-06-01"),
    ("OPENROUTER_API_KEY", OPENROUTER_KEY, "openrouter.api_key", OPENROUTER_KEY),
    ("OPENROUTER_BASE_URL", "https://or.test/api/v1", "openrouter.base_url",
     "https://or.test/api/v1"),
    ("OPENROUTER_HEADERS_X_TITLE", "AI-HR", "openrouter.x_title", "AI-HR"),
    ("OPENROUTER_HEADERS_REFERER", "http://localhost:5173", "openrouter.referer",
     "http://localhost:5173"),
    ("LLM_MODEL", "anthropic/claude-3.5-sonnet:beta", "primary_model",
     "anthropic/claude-3.5-sonnet:beta"),
    ("LLM_MAX_CONCURRENT_CHAINS", "20", "orchestrator.max_concurrent_chains", 20),
    ("LLM_DEFAULT_TIMEOUT", "45s", "orchestrator.default_timeout", 45.0),
    ("LLM_ENABLE_METRICS", "no", "orchestrator.enable_metrics", False),
    ("LLM_ENABLE_TRACING", "off", "orchestrator.enable_tracing", False),
    ("LLM_CACHE_ENABLED", "true", "cache.enabled", True),
    ("LLM_CACHE_TTL", "2h", "cache.ttl", 7200.0),
    ("LLM_CACHE_SIZE", "500", "cache.max_size", 500),
    ("LLM_SECURITY_ENABLED", "false", "security.enabled", False),
    ("LLM_AUDIT_ENABLED", "TRUE", "security.audit_enabled", True),
    ("LLM_AUDIT_PATH", "logs/audit.jsonl", "security.audit_path", "logs/audit.jsonl"),
    ("REDIS_URL", "redis://cache:6379/0", "cache.redis_url", "redis://cache:6379/0"),
    ("RATE_LIMIT_REQUESTS_PER_MINUTE", "60", "rate_limit.requests_per_minute", 60.0),
    ("RATE_LIMIT_TOKENS_PER_MINUTE", "100000", "rate_limit.tokens_per_minute", 100000.0),
]


@pytest.mark.parametrize(("name", "value", "attr", "expected"), ENV_CASES,
                         ids=[case[0] for case in ENV_CASES])
def test_env_variable_sets_its_field(name: str, value: str, attr: str, expected: Any) -> None:
    """Each documented variable sets the field it names, parsed to the field's type."""
    settings = Settings.from_env({name: value})
    assert _plain(operator.attrgetter(attr)(settings)) == expected


def test_env_table_covers_every_variable() -> None:
    """The test table above lists every variable the loader reads."""
    assert {case[0] for case in ENV_CASES} == {*config._ENV_PATHS, config._MODEL_ALIAS}


def test_primary_model_wins_over_llm_model() -> None:
    """LLM_MODEL is only an alias: PRIMARY_MODEL takes precedence when both are set."""
    settings = Settings.from_env({"PRIMARY_MODEL": "a", "LLM_MODEL": "b"})
    assert settings.primary_model == "a"


def test_empty_variable_counts_as_unset() -> None:
    """A variable set to whitespace leaves the default in place."""
    assert Settings.from_env({"LLM_CACHE_TTL": "  ", "OPENAI_API_KEY": ""}).cache.ttl == 3600


def test_from_env_reads_os_environ(clean_environ: pytest.MonkeyPatch) -> None:
    """Without a mapping, from_env reads os.environ."""
    clean_environ.setenv("LLM_CACHE_SIZE", "42")
    assert Settings.from_env().cache.max_size == 42


def test_provider_name_is_normalised() -> None:
    """LLM_PROVIDER is case-insensitive and accepts a hyphen for the underscore."""
    assert Settings.from_env({"LLM_PROVIDER": " OpenAI-Compatible"}).provider == \
        "openai_compatible"


def test_bad_duration_names_variable_and_value() -> None:
    """LLM_CACHE_TTL=abc names the variable and the bad value."""
    with pytest.raises(ConfigurationError, match=r"LLM_CACHE_TTL='abc': expected seconds"):
        Settings.from_env({"LLM_CACHE_TTL": "abc"})


def test_bad_provider_names_variable_value_and_choices() -> None:
    """LLM_PROVIDER=bogus names the variable, the value and the accepted names."""
    with pytest.raises(ConfigurationError, match=r"LLM_PROVIDER='bogus': .*'openrouter'"):
        Settings.from_env({"LLM_PROVIDER": "bogus"})


def test_bad_integer_names_variable() -> None:
    """A non-positive or non-numeric count is refused, naming the variable."""
    with pytest.raises(ConfigurationError, match=r"LLM_CACHE_SIZE='0'"):
        Settings.from_env({"LLM_CACHE_SIZE": "0"})


def test_bad_url_names_variable() -> None:
    """A base URL without http(s):// is refused."""
    with pytest.raises(ConfigurationError, match=r"LLM_API_BASE='localhost:8000'.*http"):
        Settings.from_env({"LLM_API_BASE": "localhost:8000"})


def test_every_bad_variable_is_reported_at_once() -> None:
    """All malformed variables appear in one error."""
    with pytest.raises(ConfigurationError, match="2 problems") as info:
        Settings.from_env({"LLM_CACHE_TTL": "abc", "LLM_ENABLE_TRACING": "perhaps"})
    assert "LLM_CACHE_TTL" in str(info.value)
    assert "LLM_ENABLE_TRACING" in str(info.value)


# --- YAML ------------------------------------------------------------------------------


def test_seed_yaml_shape_loads() -> None:
    """The seed's orchestrator/providers/cache/security file loads with interpolation."""
    settings = Settings.from_yaml(SEED_002_YAML, "seed.yaml", env=KEYS_ENV)
    assert settings.openai.model == "gpt-3.5-turbo"
    assert _plain(settings.anthropic.api_key) == ANTHROPIC_KEY
    assert settings.orchestrator.default_timeout == 30.0
    assert settings.cache.ttl == 3600.0
    assert settings.security.audit_enabled is True


def test_top_level_keys_load_from_yaml() -> None:
    """provider, models, api_key, api_base and concurrent_number load from the top level."""
    text = ("provider: openai_compatible\nprimary_model: llama3\nsecondary_model: phi3\n"
            "api_key: ${K}\napi_base: http://127.0.0.1:11434/v1\nconcurrent_number: 4\n")
    settings = Settings.from_yaml(text, env={"K": GENERIC_KEY})
    assert (settings.provider, settings.primary_model, settings.secondary_model) == (
        "openai_compatible", "llama3", "phi3")
    assert (settings.api_base, settings.concurrent_number) == ("http://127.0.0.1:11434/v1", 4)
    assert _plain(settings.api_key) == GENERIC_KEY


def test_empty_yaml_gives_defaults() -> None:
    """An empty file is all defaults."""
    assert Settings.from_yaml("") == Settings()


def test_yaml_string_values_are_parsed() -> None:
    """Interpolated strings become numbers, durations and flags."""
    text = "cache:\n  enabled: ${ON:-yes}\n  ttl: ${TTL:-90}\n  max_size: ${N:-12}\n"
    assert Settings.from_yaml(text, env={}).cache.model_dump() == {
        "enabled": True, "ttl": 90.0, "max_size": 12, "redis_url": None}


def test_pipeline_sections_read_from_yaml() -> None:
    """The pipeline's sections take the same value forms as the rest of the file."""
    text = ("security: {injection: flag, redaction: hash, blocklist: [darn]}\n"
            "limits: {max_messages: 3, max_request_chars: ''}\n"
            "rate_limit: {requests_per_minute: 60, per: user, max_wait: 250ms}\n"
            "idempotency: {ttl: 1h}\n"
            "streaming: {enabled: yes, flush_interval: 20ms}\n"
            "cache: {redis_url: 'redis://localhost:6379/1'}\n")
    settings = Settings.from_yaml(text, env={})
    assert (settings.security.injection, settings.security.redaction) == ("flag", "hash")
    assert settings.security.blocklist == ("darn",)
    assert (settings.limits.max_messages, settings.limits.max_request_chars) == (3, None)
    assert (settings.rate_limit.per, settings.rate_limit.max_wait) == ("user", 0.25)
    assert settings.idempotency.ttl == 3600.0
    assert (settings.streaming.enabled, settings.streaming.flush_interval) == (True, 0.02)
    assert settings.cache.redis_url == "redis://localhost:6379/1"


@pytest.mark.parametrize(("text", "where"), [
    ("security: {injection: shout}\n", "security.injection"),
    ("rate_limit: {requests_per_minute: -1}\n", "rate_limit.requests_per_minute"),
    ("cache: {redis_url: 'http://x'}\n", "cache.redis_url"),
    ("streaming: {buffer_size: 0}\n", "streaming.buffer_size"),
])
def test_pipeline_section_mistakes_name_their_key(text: str, where: str) -> None:
    """A bad pipeline setting is a ConfigurationError naming its key path."""
    with pytest.raises(ConfigurationError, match=re.escape(where)):
        Settings.from_yaml(text, env={})


def test_blank_file_values_mean_unset() -> None:
    """An optional value interpolated to blank (${VAR:-}) is None, like an empty variable."""
    text = ("provider: ${P:-}\nprimary_model: ${M:-}\nproviders:\n  openai:\n"
            "    api_key: ${K:-}\n    max_tokens: ${T:-}\n")
    settings = Settings.from_yaml(text, env={})
    assert (settings.provider, settings.primary_model) == (None, None)
    assert (settings.openai.api_key, settings.openai.max_tokens) == (None, None)
    assert settings.resolved_provider() == "mock"


def test_empty_section_means_defaults(tmp_path: Path) -> None:
    """A section with every key commented out (null) gives defaults; env still applies."""
    path = tmp_path / "c.yaml"
    path.write_text("cache:\n  # ttl: 1h\nproviders:\n  openai:\n", encoding="utf-8")
    settings = load_settings(path, env={"LLM_CACHE_SIZE": "3"})
    assert (settings.cache.max_size, settings.cache.ttl) == (3, 3600.0)
    assert settings.openai == Settings().openai


def test_unknown_key_names_key_line_and_suggestion() -> None:
    """A typo is an error naming the key, file:line:col, and the closest field."""
    text = "cache:\n  enabled: true\n  ttll: 1h\n"
    with pytest.raises(ConfigurationError,
                       match=r"^c\.yaml:3:3: unknown key 'ttll' in cache \(did you mean 'ttl'"):
        Settings.from_yaml(text, "c.yaml")


def test_unknown_provider_section_is_an_error() -> None:
    """A vendor chainweave does not configure under providers: is refused with its line."""
    with pytest.raises(ConfigurationError, match=r":2:3: unknown key 'gemini' in providers"):
        Settings.from_yaml("providers:\n  gemini:\n    api_key: x\n")


def test_unknown_top_level_key_is_an_error() -> None:
    """A misspelt section is refused rather than ignored."""
    with pytest.raises(ConfigurationError, match=r":1:1: unknown key 'orchestrater'"):
        Settings.from_yaml("orchestrater:\n  max_concurrent_chains: 3\n")


def test_bad_yaml_value_has_file_line_column() -> None:
    """A malformed value is reported at its file:line:col with its key path."""
    with pytest.raises(ConfigurationError,
                       match=r"^s\.yaml:3:20: orchestrator\.default_timeout='soon'"):
        Settings.from_yaml("cache: {}\norchestrator:\n  default_timeout: soon\n", "s.yaml")


def test_missing_variable_in_yaml_names_variable_file_and_line() -> None:
    """An unset ${VAR} names VAR, the file, the line and the key path."""
    with pytest.raises(ConfigurationError,
                       match=r"^seed\.yaml:10:14: providers\.openai\.api_key: "
                             r"environment variable OPENAI_API_KEY is not set"):
        Settings.from_yaml(SEED_002_YAML, "seed.yaml", env={})


def test_non_mapping_yaml_is_refused() -> None:
    """A file whose top level is not a mapping is a ConfigurationError."""
    with pytest.raises(ConfigurationError, match="must be a mapping"):
        Settings.from_yaml("- a\n- b\n")


def test_from_file_reads_path(tmp_path: Path) -> None:
    """from_file loads a YAML file and names it in errors."""
    path = tmp_path / "chainweave.yaml"
    path.write_text(SEED_002_YAML, encoding="utf-8")
    assert Settings.from_file(path, env=KEYS_ENV).anthropic.model == "claude-3-sonnet"


def test_from_file_does_not_apply_env_overrides(tmp_path: Path) -> None:
    """from_file uses env only for ${VAR}; the environment does not override the file."""
    path = tmp_path / "c.yaml"
    path.write_text("cache:\n  max_size: 5\n", encoding="utf-8")
    assert Settings.from_file(path, env={"LLM_CACHE_SIZE": "9"}).cache.max_size == 5


def test_from_file_missing_is_configuration_error(tmp_path: Path) -> None:
    """A missing settings file is a ConfigurationError."""
    with pytest.raises(ConfigurationError, match="file not found"):
        Settings.from_file(tmp_path / "absent.yaml", env={})


# --- precedence ------------------------------------------------------------------------


def test_env_overrides_file(tmp_path: Path) -> None:
    """load_settings: an environment variable wins over the file's value."""
    path = tmp_path / "c.yaml"
    path.write_text("primary_model: from-file\ncache:\n  ttl: 1h\n", encoding="utf-8")
    settings = load_settings(path, env={"LLM_CACHE_TTL": "5m"})
    assert settings.cache.ttl == 300.0
    assert settings.primary_model == "from-file"


def test_env_overrides_file_inside_new_section(tmp_path: Path) -> None:
    """An override reaches a section the file does not mention."""
    path = tmp_path / "c.yaml"
    path.write_text("cache: {enabled: true}\n", encoding="utf-8")
    settings = load_settings(path, env={"OPENROUTER_HEADERS_X_TITLE": "AI-HR"})
    assert (settings.cache.enabled, settings.openrouter.x_title) == (True, "AI-HR")


def test_load_settings_without_path_reads_env(clean_environ: pytest.MonkeyPatch) -> None:
    """With no file, load_settings is the environment over the defaults."""
    clean_environ.setenv("LLM_SECURITY_ENABLED", "off")
    assert load_settings().security.enabled is False


def test_load_settings_errors_name_their_origin(tmp_path: Path) -> None:
    """A bad env value names the variable; a bad file value names the file position."""
    path = tmp_path / "c.yaml"
    path.write_text("cache:\n  ttl: nope\n", encoding="utf-8")
    with pytest.raises(ConfigurationError) as info:
        load_settings(path, env={"LLM_CACHE_SIZE": "many"})
    message = str(info.value)
    assert f"{path}:2:8: cache.ttl='nope'" in message
    assert "environment variable LLM_CACHE_SIZE='many'" in message


# --- provider inference ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "mock"),
        ({"OPENAI_API_KEY": OPENAI_KEY}, "openai"),
        ({"ANTHROPIC_API_KEY": ANTHROPIC_KEY}, "anthropic"),
        ({"OPENROUTER_API_KEY": OPENROUTER_KEY}, "openrouter"),
        ({"AZURE_API_KEY": AZURE_KEY}, "mock"),
        ({"AZURE_API_KEY": AZURE_KEY, "AZURE_API_BASE": "https://r.openai.azure.com"}, "azure"),
        ({"LLM_API_BASE": "http://localhost:8000/v1"}, "openai_compatible"),
        ({"LLM_API_KEY": GENERIC_KEY}, "openai"),
        ({"LLM_API_KEY": GENERIC_KEY, "LLM_API_BASE": "http://localhost:8000/v1"},
         "openai_compatible"),
        ({"OPENAI_API_KEY": OPENAI_KEY, "ANTHROPIC_API_KEY": ANTHROPIC_KEY}, "openai"),
        ({"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "OPENROUTER_API_KEY": OPENROUTER_KEY},
         "anthropic"),
        ({"OPENROUTER_API_KEY": OPENROUTER_KEY, "AZURE_API_KEY": AZURE_KEY,
          "AZURE_API_BASE": "https://r.openai.azure.com"}, "openrouter"),
        ({"AZURE_API_KEY": AZURE_KEY, "AZURE_API_BASE": "https://r.openai.azure.com",
          "LLM_API_BASE": "http://localhost:8000/v1"}, "azure"),
        ({"LLM_PROVIDER": "fallback", "OPENAI_API_KEY": OPENAI_KEY}, "fallback"),
    ],
)
def test_resolved_provider_order(env: dict[str, str], expected: str) -> None:
    """The explicit provider wins; otherwise the documented order picks one, mock last."""
    assert Settings.from_env(env).resolved_provider() == expected


# --- the model -------------------------------------------------------------------------


def test_documented_defaults() -> None:
    """Defaults match the documentation and the seed systems."""
    settings = Settings()
    assert (settings.orchestrator.max_concurrent_chains,
            settings.orchestrator.max_concurrent_graphs,
            settings.orchestrator.default_timeout) == (10, 5, 30.0)
    assert (settings.cache.ttl, settings.cache.max_size) == (3600.0, 1000)
    assert settings.azure.api_version == "2024-10-21"
    assert settings.openrouter.base_url == "https://openrouter.ai/api/v1"
    assert settings.provider is None


def test_settings_are_frozen() -> None:
    """Settings cannot be changed after loading."""
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.primary_model = "x"  # type: ignore[misc]


def test_direct_construction_raises_configuration_error() -> None:
    """Building Settings by hand with a bad value raises ConfigurationError, not ValueError."""
    with pytest.raises(ConfigurationError, match=r"^cache\.ttl='x': expected seconds"):
        Settings(cache={"ttl": "x"})


def test_model_validate_raises_configuration_error() -> None:
    """model_validate reports problems as ConfigurationError too."""
    with pytest.raises(ConfigurationError, match="unknown key 'colour'"):
        Settings.model_validate({"colour": "blue"})


# --- secrets ---------------------------------------------------------------------------


def _all_keys_env() -> dict[str, str]:
    return {"OPENAI_API_KEY": OPENAI_KEY, "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
            "AZURE_API_KEY": AZURE_KEY, "OPENROUTER_API_KEY": OPENROUTER_KEY,
            "LLM_API_KEY": GENERIC_KEY}


def test_repr_and_str_never_show_keys() -> None:
    """Neither repr nor str of Settings contains any API key."""
    settings = Settings.from_env(_all_keys_env())
    for text in (repr(settings), str(settings)):
        assert not any(key in text for key in ALL_KEYS)


def test_loaded_keys_are_registered_for_redaction() -> None:
    """Every loaded API key is masked by redact() from then on."""
    Settings.from_env(_all_keys_env())
    for key in ALL_KEYS:
        assert key not in redact(f"calling with {key}")


def test_env_errors_never_show_key_values() -> None:
    """An error raised while keys are present shows none of them."""
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({**_all_keys_env(), "LLM_CACHE_TTL": "abc"})
    shown = f"{info.value} {info.value!r} {info.value.to_dict()}"
    assert not any(key in shown for key in ALL_KEYS)


def test_bad_key_value_in_yaml_is_not_shown() -> None:
    """A key of the wrong type (an unquoted number) is reported without its value."""
    secret = "98765432109876543"
    with pytest.raises(ConfigurationError, match=r"providers\.openai\.api_key: ") as info:
        Settings.from_yaml(f"providers:\n  openai:\n    api_key: {secret}\n")
    assert secret not in str(info.value)


def test_unknown_key_value_is_not_shown() -> None:
    """A misspelt key's value (maybe a key) is not repeated in the error."""
    secret = "another-unregistered-secret-7"
    with pytest.raises(ConfigurationError, match="unknown key 'api_kye'") as info:
        Settings.from_yaml(f"providers:\n  openai:\n    api_kye: {secret}\n")
    assert secret not in str(info.value)


def test_unquoted_azure_api_version_date_is_text() -> None:
    """An unquoted ``2024-06-01`` in the azure section is read as the version text."""
    settings = Settings.from_yaml("providers:\n  azure:\n    api_version: 2024-06-01\n")
    assert settings.providers.azure.api_version == "2024-06-01"
