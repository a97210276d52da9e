"""Redact a stream as it flows, catching values split over any number of chunks.

:class:`StreamRedactor` keeps the last ``window`` characters back and scans them again
with each new chunk, together with the ``window`` characters already let through (so
the rules see what came before, as they would in the whole text). Text is let through
once no value can still reach into it: everything before the last ``window``
characters, except a match that crosses that line or touches the end of what has
arrived, which may still grow. When the detector's longest match fits in ``window`` and
none exceeds ``max_buffer``, the output is exactly what redacting the whole text at once
would give, and :attr:`StreamRedactor.findings` are the whole text's findings.

A match longer than ``max_buffer`` (a private key block, say) fails closed: what is held
is replaced at once (and reported: a caller that blocks on it can stop the stream), and
the rest of the match is dropped as it arrives, until the rule sees it end or the stream
ends; that dropped part is reported as a second finding. If ``redact`` leaves the held
text unchanged (the caller only flags that rule), it is let through instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chainweave.errors import InputValidationError
from chainweave.pipeline.findings import Finding

__all__ = ["StreamRedactor"]

Scan = Callable[[str], list[Finding]]
"""Reports the findings in a text (a detector's ``scan``)."""
Redact = Callable[[str, list[Finding]], str]
"""Returns a text with the given findings replaced."""


@dataclass(slots=True)
class _Suppressed:
    """A match too long to hold: its opening, its latest characters, where it started."""

    rule_id: str
    category: str
    start: int  # stream offset where the dropped text starts
    head: str  # the match's first characters, for the scanner to recognise it again
    tail: str  # the latest characters of the match (and whatever follows)
    tail_offset: int  # stream offset of tail[0]


class StreamRedactor:
    """Feed text deltas in, get text that is safe to emit out, already redacted.

    Args:
        scan: Reports the findings in a text, sorted by start (a detector's ``scan``).
        redact: Returns a text with the given findings replaced.
        window: Characters held back, and re-read as context. Give at least the
            detector's longest match (:attr:`PIIDetector.window
            <chainweave.pipeline.security.pii.PIIDetector.window>`).
        max_buffer: The most held back for one match still growing; past it the match
            fails closed.

    Raises:
        InputValidationError: ``window`` is negative or ``max_buffer`` is smaller than
            ``window`` or not positive.

    Attributes:
        findings: Every finding decided so far, with offsets into the whole stream's
            text (all deltas joined), in the order they were decided.
    """

    def __init__(self, scan: Scan, redact: Redact, *, window: int = 256,
                 max_buffer: int = 8192) -> None:
        if window < 0 or max_buffer < max(window, 1):
            raise InputValidationError(
                f"StreamRedactor needs window >= 0 and max_buffer >= max(window, 1); "
                f"got window={window}, max_buffer={max_buffer}",
                field="window" if window < 0 else "max_buffer")
        self.findings: list[Finding] = []
        self._scan = scan
        self._redact = redact
        self._window = window
        self._max_buffer = max_buffer
        self._context = ""  # the raw text already let through, its last `window` characters
        self._buffer = ""  # raw text not let through yet
        self._offset = 0  # stream offset of _buffer[0]
        self._suppressed: _Suppressed | None = None

    def __repr__(self) -> str:
        # The held text may be a secret: only its size.
        return (f"StreamRedactor(window={self._window}, max_buffer={self._max_buffer}, "
                f"held={self.held} chars, findings={len(self.findings)})")

    @property
    def held(self) -> int:
        """How many characters of the stream are held back right now."""
        if self._suppressed is not None:
            return len(self._suppressed.head) + len(self._suppressed.tail)
        return len(self._buffer)

    def feed(self, delta: str) -> str:
        """Add ``delta``; return the text now safe to emit (possibly empty)."""
        if not delta:
            return ""
        if self._suppressed is not None:
            return self._feed_suppressed(self._suppressed, delta)
        self._buffer += delta
        if len(self._buffer) <= self._window:
            return ""
        return self._release(final=False)

    def flush(self) -> str:
        """End of stream: return everything still held, redacted."""
        suppressed = self._suppressed
        if suppressed is not None:
            end = suppressed.tail_offset + len(suppressed.tail)
            self._end_suppression(suppressed, end)
            self._context, self._buffer, self._offset = "", "", end
            return ""
        return self._release(final=True) if self._buffer else ""

    # --- normal flow ------------------------------------------------------------------

    def _release(self, *, final: bool) -> str:
        found = self._local_findings()
        if final:
            return self._emit(len(self._buffer), found)
        cut = self._cut(found)
        if len(self._buffer) - cut > self._max_buffer:
            return self._overflow(found)
        return self._emit(cut, found) if cut else ""

    def _local_findings(self) -> list[Finding]:
        """Findings in the held text, offsets relative to it. A finding reaching back
        into text already let through keeps only its held part: it was missed before,
        so it fails closed now."""
        skip = len(self._context)
        local = [Finding(f.rule_id, f.category, max(f.start, skip) - skip, f.end - skip,
                         f.score)
                 for f in self._scan(self._context + self._buffer) if f.end > skip]
        local.sort(key=lambda f: (f.start, -f.end))
        return local

    def _cut(self, found: list[Finding]) -> int:
        """How much of the buffer can go: all but the last ``window`` characters, minus
        any match that crosses that line or touches the end (it may still grow)."""
        size = len(self._buffer)
        cut = max(0, size - self._window)
        moved = True
        while moved:
            moved = False
            for f in found:
                if f.start < cut and (f.end > cut or f.end >= size):
                    cut, moved = f.start, True
        return cut

    def _emit(self, cut: int, found: list[Finding]) -> str:
        head = self._buffer[:cut]
        inside = [f for f in found if f.end <= cut]
        out = self._redact(head, inside) if inside else head
        self.findings += [f.shifted(self._offset) for f in inside]
        self._remember(head)
        self._buffer = self._buffer[cut:]
        self._offset += cut
        return out

    def _remember(self, released: str) -> None:
        context = self._context + released
        self._context = context[max(0, len(context) - self._window):] if self._window else ""

    # --- matches longer than max_buffer -----------------------------------------------

    def _overflow(self, found: list[Finding]) -> str:
        size = len(self._buffer)
        growing = [f for f in found if f.end >= size]
        if not growing:
            # The long matches are complete: let them through whole, redacted.
            return self._emit(self._complete_cut(found), found)
        match = max(growing, key=lambda f: f.end - f.start)
        start = min(f.start for f in growing)
        moved = True
        while moved:
            moved = False
            for f in found:
                if f.start < start < f.end:
                    start, moved = f.start, True
        out = self._emit(start, found) if start else ""
        # Decided now, so that a caller who blocks on this rule can stop the stream.
        held = Finding(match.rule_id, match.category, 0, len(self._buffer), match.score)
        self.findings.append(held.shifted(self._offset))
        replaced = self._redact(self._buffer, [held])
        if replaced == self._buffer:
            # The caller's redact lets this rule through (flag): nothing to suppress.
            self._emit(len(self._buffer), [])
            return out + replaced
        self._suppress(match, start)
        return out + replaced

    def _complete_cut(self, found: list[Finding]) -> int:
        limit = len(self._buffer) - self._window
        cut = max([f.end for f in found if f.start < limit < f.end], default=limit)
        moved = True
        while moved:
            moved = False
            for f in found:
                if f.start < cut < f.end:
                    cut, moved = f.end, True
        return cut

    def _suppress(self, match: Finding, start: int) -> None:
        """Enter fail-closed mode: the buffer (from ``start``) was just replaced; what
        follows is dropped until the scanner sees the match end."""
        keep = max(1, min(self._window, self._max_buffer // 2))
        opening = self._buffer[max(match.start - start, 0):]
        end = self._offset + len(self._buffer)
        self._suppressed = _Suppressed(match.rule_id, match.category, end, opening[:keep],
                                       self._buffer[-keep:], end - keep)
        self._offset, self._buffer = end, ""

    def _feed_suppressed(self, held: _Suppressed, delta: str) -> str:
        held.tail += delta
        text = held.head + held.tail
        match = next((f for f in self._scan(text)
                      if f.start == 0 and f.rule_id == held.rule_id), None)
        if match is None or match.end >= len(text) or match.end <= len(held.head):
            # Still growing, or no longer recognisable: keep dropping it (fail closed).
            keep = max(1, min(self._window, self._max_buffer // 2))
            held.tail_offset += max(0, len(held.tail) - keep)
            held.tail = held.tail[-keep:]
            return ""
        ends_at = match.end - len(held.head)
        end = held.tail_offset + ends_at
        self._end_suppression(held, end)
        self._context = ""
        self._remember(text[:match.end])
        self._buffer, self._offset = held.tail[ends_at:], end
        return self._release(final=False) if len(self._buffer) > self._window else ""

    def _end_suppression(self, held: _Suppressed, end: int) -> None:
        if end > held.start:  # the part dropped since the held part was replaced
            self.findings.append(Finding(held.rule_id, held.category, held.start, end))
        self._suppressed = None
