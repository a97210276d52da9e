"""The security stage: checks requests before the provider and responses after it.

On the way in, each message's text is normalised (NFKC; zero-width, bidi-override and
control characters removed) and scanned for prompt injection (user and tool messages:
tool results are where indirect injection arrives), PII and secrets (every message).
On the way out, the reply is scanned for PII, secrets, injection, blocklisted words
and whatever a moderation hook reports. Each category of finding gets one action:

- ``block``: raise :class:`~chainweave.errors.SecurityViolationError` with the rule ids;
  a blocked request never reaches the provider;
- ``redact``: replace the match (placeholder, mask or keyed hash) and go on;
- ``flag``: go on unchanged, but record the finding.

Every finding becomes a :class:`~chainweave.pipeline.SecurityEvent` on the call (the
audit log writes them) and, for a response, in ``response.metadata["security"]``;
neither ever holds the matched text. Streams are redacted as they flow: a secret split
over several chunks is still caught, with at most ``stream_window`` characters held back
(see :class:`~chainweave.pipeline.security.stream_redact.StreamRedactor`).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

from opentelemetry import trace

from chainweave.errors import InputValidationError, SecurityViolationError
from chainweave.pipeline.base import (
    Action,
    Call,
    Direction,
    NextChat,
    NextStream,
    SecurityEvent,
    Stage,
    closing_stream,
)
from chainweave.pipeline.findings import Finding
from chainweave.pipeline.security.injection import InjectionDetector
from chainweave.pipeline.security.normalize import normalize_text
from chainweave.pipeline.security.pii import CustomPattern, PIIDetector
from chainweave.pipeline.security.redaction import RedactionMode, redact_findings
from chainweave.pipeline.security.stream_redact import StreamRedactor
from chainweave.types import ChatRequest, ChatResponse, Message, StreamChunk, TextPart

__all__ = ["Moderation", "SecurityValidator"]

Setting = Literal["block", "redact", "flag", "off"]
Moderation = Callable[[str], Awaitable[Sequence[Finding]] | Sequence[Finding]]
"""A hook that reviews response text and reports findings (say, from a moderation API)."""

_SETTINGS = ("block", "redact", "flag", "off")
_INJECTION_ROLES = frozenset({"user", "tool"})


class _Blocklist:
    """Whole-word, case-insensitive matches of the given words, as ``blocklist`` findings."""

    def __init__(self, words: Iterable[str]) -> None:
        self._words = tuple(w for w in words if w.strip())
        alternatives = "|".join(re.escape(w.strip()) for w in self._words)
        self._pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE) \
            if self._words else None

    def scan(self, text: str) -> list[Finding]:
        if self._pattern is None:
            return []
        return [Finding("blocklist.word", "blocklist", m.start(), m.end())
                for m in self._pattern.finditer(text)]


class SecurityValidator(Stage):
    """Input and output security checks with one action per category.

    Args:
        injection: Action for prompt injection in requests.
        pii: Action for PII (email, phone, IP, cards, IBAN, SSN), both ways.
        secrets: Action for API keys, tokens and private keys, both ways.
        output_injection: Action for injection text in a response (``flag``: a reply
            may quote an attack it was asked to summarise).
        actions: Overrides by category (``custom``, ``blocklist``, ``moderation``) or by
            rule id (``pii.email``); a rule id wins over its category.
        redaction: How redacted values are replaced: ``placeholder``, ``mask``, ``hash``.
        salt: Key for ``hash`` redaction, so equal values give equal, unguessable tokens.
        injection_threshold: Score at which injection rules add up to a detection.
        custom: Extra patterns, reported under their own categories.
        allow: Values never reported (a support address, say).
        blocklist: Words that, in a response, are ``blocklist`` findings (blocked by
            default).
        moderation: A hook run on response text (and on each released part of a stream).
        check_input: Check requests.
        check_output: Check responses.
        stream_window: Characters a stream holds back to catch values split over
            chunks, beyond a match in progress (held until it ends).
        max_stream_buffer: The most a stream holds back for one long match.
    """

    name = "security"

    def __init__(self, *, injection: Setting = "block", pii: Setting = "redact",
                 secrets: Setting = "redact", output_injection: Setting = "flag",
                 actions: Mapping[str, Setting] | None = None,
                 redaction: RedactionMode = "placeholder", salt: bytes = b"",
                 injection_threshold: float = 1.0, custom: Sequence[CustomPattern] = (),
                 allow: Iterable[str] = (), blocklist: Iterable[str] = (),
                 moderation: Moderation | None = None, check_input: bool = True,
                 check_output: bool = True, stream_window: int = 256,
                 max_stream_buffer: int = 8192) -> None:
        base = {"injection": injection, "pii": pii, "secret": secrets,
                "blocklist": "block", "moderation": "block", "custom": "redact"}
        overrides = dict(actions or {})
        for field, value in (*base.items(), ("output_injection", output_injection),
                             *overrides.items()):
            if value not in _SETTINGS:
                raise InputValidationError(
                    f"SecurityValidator: action for {field!r} must be one of "
                    f"{', '.join(_SETTINGS)}, got {value!r}", field=field)
        if redaction not in ("placeholder", "mask", "hash"):
            raise InputValidationError(
                f"SecurityValidator.redaction must be placeholder, mask or hash, "
                f"got {redaction!r}", field="redaction")
        self._input_actions: dict[str, Setting] = {**base, **overrides}
        self._output_actions: dict[str, Setting] = {
            **self._input_actions, "injection": output_injection,
            **{k: v for k, v in overrides.items() if k != "injection"}}
        self._redaction: RedactionMode = redaction
        self._salt = salt
        self._injection = InjectionDetector(threshold=injection_threshold)
        self._pii = PIIDetector(custom=custom, allow=allow)
        self._blocklist = _Blocklist(blocklist)
        self._moderation = moderation
        self.check_input = check_input
        self.check_output = check_output
        # Not the detectors' longest match (1,794 characters, a JWT): holding that much
        # would stall short replies. Long secrets are still caught, since a match that
        # reaches the end of what is held keeps being held (see StreamRedactor).
        self._window = stream_window
        self._max_buffer = max_stream_buffer

    # --- policy ---------------------------------------------------------------------

    def action_for(self, finding: Finding, direction: Direction = "input") -> Setting:
        """The action this validator takes on ``finding`` in ``direction``."""
        table = self._input_actions if direction == "input" else self._output_actions
        return table.get(finding.rule_id) or table.get(finding.category) or "flag"

    def scan(self, text: str, direction: Direction = "input", *,
             injection: bool = True) -> list[Finding]:
        """Every finding in ``text`` this validator acts on (``off`` ones left out)."""
        findings = self._pii.scan(text)
        if injection:
            findings += self._injection.scan(text)
        if direction == "output":
            findings += self._blocklist.scan(text)
        findings.sort(key=lambda f: (f.start, -f.end))
        return [f for f in findings if self.action_for(f, direction) != "off"]

    def redact(self, text: str, direction: Direction = "input") -> str:
        """``text`` with every finding whose action is ``redact`` replaced."""
        return self._apply(text, self.scan(text, direction), direction)

    def _apply(self, text: str, findings: Sequence[Finding], direction: Direction) -> str:
        chosen = [f for f in findings if self.action_for(f, direction) == "redact"]
        return redact_findings(text, chosen, self._redaction, salt=self._salt) \
            if chosen else text

    def _record(self, call: Call, findings: Iterable[Finding], direction: Direction,
                index: int | None = None) -> list[SecurityEvent]:
        events = [SecurityEvent(direction, self._event_action(f, direction), f, index)
                  for f in findings]
        call.events.extend(events)
        return events

    def _event_action(self, finding: Finding, direction: Direction) -> Action:
        action = self.action_for(finding, direction)
        return "flag" if action == "off" else action

    @staticmethod
    def _raise_if_blocked(events: Sequence[SecurityEvent], direction: Direction) -> None:
        blocked = [e.finding for e in events if e.action == "block"]
        if not blocked:
            return
        rule_ids = sorted({f.rule_id for f in blocked})
        categories = sorted({f.category for f in blocked})
        span = trace.get_current_span()
        span.add_event("security.blocked", {"direction": direction, "rule_ids": rule_ids})
        what = "request" if direction == "input" else "response"
        raise SecurityViolationError(
            f"{what} blocked by security rules: {', '.join(rule_ids)}",
            details={"rule_ids": rule_ids, "categories": categories, "direction": direction})

    # --- requests -------------------------------------------------------------------

    def check_request(self, request: ChatRequest, call: Call) -> ChatRequest:
        """The request to send on: normalised and redacted; raises if it is blocked."""
        events: list[SecurityEvent] = []
        messages = list(request.messages)
        changed = False
        for index, message in enumerate(messages):
            cleaned, found = self._clean_message(message, index, call)
            events += found
            if cleaned is not message:
                messages[index], changed = cleaned, True
        self._raise_if_blocked(events, "input")
        return request.model_copy(update={"messages": messages}) if changed else request

    def _clean_message(self, message: Message, index: int,
                       call: Call) -> tuple[Message, list[SecurityEvent]]:
        if isinstance(message.content, str):
            text, events = self._clean_text(message.content, message.role, index, call)
            if text == message.content:
                return message, events
            return message.model_copy(update={"content": text}), events
        if not message.content:
            return message, []
        parts: list[Any] = []
        events = []
        for part in message.content:
            if isinstance(part, TextPart):
                text, found = self._clean_text(part.text, message.role, index, call)
                events += found
                part = part if text == part.text else part.model_copy(update={"text": text})
            parts.append(part)
        if all(a is b for a, b in zip(parts, message.content, strict=True)):
            return message, events
        return message.model_copy(update={"content": parts}), events

    def _clean_text(self, text: str, role: str, index: int,
                    call: Call) -> tuple[str, list[SecurityEvent]]:
        normalised = normalize_text(text)
        findings = self.scan(normalised, "input", injection=role in _INJECTION_ROLES)
        events = self._record(call, findings, "input", index)
        return self._apply(normalised, findings, "input"), events

    # --- responses ------------------------------------------------------------------

    async def check_response(self, response: ChatResponse, call: Call) -> ChatResponse:
        """The response to return: redacted and annotated; raises if it is blocked."""
        findings = self.scan(response.content, "output")
        if self._moderation is not None:
            findings += await self._moderate(response.content)
        events = self._record(call, findings, "output")
        self._raise_if_blocked(events, "output")
        content = self._apply(response.content, findings, "output")
        if content != response.content:
            response = response.model_copy(update={"content": content})
        return _annotated(response, call)

    async def _moderate(self, text: str) -> list[Finding]:
        if self._moderation is None or not text:
            return []
        result = self._moderation(text)
        if inspect.isawaitable(result):
            result = await result
        return [f for f in result if self.action_for(f, "output") != "off"]

    # --- the stage ------------------------------------------------------------------

    async def chat(self, request: ChatRequest, call: Call, call_next: NextChat) -> ChatResponse:
        """Check the request, call on, check the response."""
        if self.check_input:
            request = self.check_request(request, call)
        response = await call_next(request)
        if self.check_output:
            return await self.check_response(response, call)
        return _annotated(response, call)

    async def stream(self, request: ChatRequest, call: Call,
                     call_next: NextStream) -> AsyncIterator[StreamChunk]:
        """Check the request, then redact the stream as it flows."""
        if self.check_input:
            request = self.check_request(request, call)
        if not self.check_output:
            async with closing_stream(call_next(request)) as chunks:
                async for chunk in chunks:
                    yield chunk
            return
        redactor = StreamRedactor(self._stream_scan, self._stream_redact,
                                  window=self._window, max_buffer=self._max_buffer)
        async with closing_stream(call_next(request)) as chunks:
            async for chunk in chunks:
                out = await self._stream_chunk(chunk, redactor, call)
                if out is not None:
                    yield out
        # A stream that ended without a finish chunk still owes what was held back.
        tail = await self._stream_chunk(StreamChunk(), redactor, call, final=True)
        if tail is not None and tail.delta:
            yield tail

    def _stream_scan(self, text: str) -> list[Finding]:
        return self.scan(text, "output")

    def _stream_redact(self, text: str, findings: list[Finding]) -> str:
        return self._apply(text, findings, "output")

    async def _stream_chunk(self, chunk: StreamChunk, redactor: StreamRedactor,
                            call: Call, *, final: bool = False) -> StreamChunk | None:
        seen = len(redactor.findings)
        safe = redactor.feed(chunk.delta) if chunk.delta else ""
        if final or chunk.finish_reason is not None:
            safe += redactor.flush()
        fresh = redactor.findings[seen:]
        fresh += await self._moderate(safe)
        events = self._record(call, fresh, "output")
        self._raise_if_blocked(events, "output")
        if safe == chunk.delta:
            return chunk
        if not safe and chunk.finish_reason is None and not _has_more_than_text(chunk):
            return None
        return chunk.model_copy(update={"delta": safe})


def _annotated(response: ChatResponse, call: Call) -> ChatResponse:
    """``response`` with the call's security events in ``metadata["security"]``."""
    if not call.events:
        return response
    return response.model_copy(update={"metadata": {
        **response.metadata, "security": [e.to_dict() for e in call.events]}})


def _has_more_than_text(chunk: StreamChunk) -> bool:
    return bool(chunk.tool_call_deltas or chunk.tool_calls or chunk.refusal or chunk.usage
                or chunk.error)
