"""What a security detector reports: a :class:`Finding` per hit, never the matched text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Detector", "Finding"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One detector hit in a text.

    Attributes:
        rule_id: The rule that matched, dotted by category: ``injection.ignore_previous``,
            ``pii.email``, ``secret.openai_key``, or a custom pattern's id.
        category: ``injection``, ``pii``, ``secret``, ``blocklist``, or a custom
            pattern's category. A pipeline's security policy acts per category.
        start: Start offset of the match in the scanned text.
        end: End offset (exclusive).
        score: The rule's weight (injection rules); 1.0 for exact detectors.
    """

    rule_id: str
    category: str
    start: int
    end: int
    score: float = 1.0

    def shifted(self, offset: int) -> Finding:
        """The same finding with its span moved by ``offset`` characters."""
        return Finding(self.rule_id, self.category, self.start + offset, self.end + offset,
                       self.score)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form for audit logs; it never holds the matched text."""
        return {"rule_id": self.rule_id, "category": self.category,
                "start": self.start, "end": self.end, "score": self.score}


class Detector(Protocol):
    """Anything that scans a text and reports findings, sorted by ``start``."""

    def scan(self, text: str) -> list[Finding]:
        """Every finding in ``text``."""
        ...
