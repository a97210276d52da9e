"""The default InjectionDetector over the labelled corpus in ``tests/pipeline/corpus/``.

``injections.jsonl`` and ``benign.jsonl`` hold one ``{"text", "kind", "split"}`` object per
line (``lang`` too for non-English items). About 30% of each file is ``split: "holdout"``,
fixed before the rules were tuned; rules were tuned on ``dev`` only. The rates asserted
here are over the whole corpus; ``benchmarks/bench_injection_detection.py`` reports them
per split and per kind.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
import statistics
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

from chainweave.pipeline.security.injection import InjectionDetector
from chainweave.pipeline.security.normalize import normalize_text

CORPUS = Path(__file__).parent.parent / "corpus"
INJECTION_KINDS = {"paraphrase", "roleplay", "exfiltration", "delimiter", "encoded",
                   "tool_hijack", "non_english", "embedded", "obfuscated"}
REQUIRED_LANGUAGES = {"es", "fr", "de", "pt", "it", "ru", "zh", "ja"}


@cache
def _load(name: str) -> tuple[dict[str, Any], ...]:
    lines = (CORPUS / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    return tuple(json.loads(line) for line in lines if line.strip())


@cache
def _detected(name: str) -> tuple[bool, ...]:
    detector = InjectionDetector()
    return tuple(detector.assess(normalize_text(row["text"])).detected for row in _load(name))


def _listing(rows: list[dict[str, Any]]) -> str:
    return "\n".join(f"  [{r['split']}/{r['kind']}] {r['text'][:120]!r}" for r in rows)


def test_injections_are_detected() -> None:
    """At least 95% of the injection prompts are detected."""
    rows, hits = _load("injections"), _detected("injections")
    missed = [row for row, hit in zip(rows, hits, strict=True) if not hit]
    rate = 1 - len(missed) / len(rows)
    assert rate >= 0.95, f"detection {rate:.3f} < 0.95; missed:\n{_listing(missed)}"


def test_benign_prompts_pass() -> None:
    """At most 2% of the benign prompts are flagged."""
    rows, hits = _load("benign"), _detected("benign")
    flagged = [row for row, hit in zip(rows, hits, strict=True) if hit]
    rate = len(flagged) / len(rows)
    assert rate <= 0.02, f"false positives {rate:.3f} > 0.02; flagged:\n{_listing(flagged)}"


def test_each_file_is_large_and_well_formed() -> None:
    """Each file has at least 200 items with a text, a kind and a dev/holdout split."""
    for name in ("injections", "benign"):
        rows = _load(name)
        assert len(rows) >= 200, name
        bad = [r for r in rows if not (isinstance(r.get("text"), str) and r["text"].strip()
                                       and r.get("kind") and r.get("split") in ("dev", "holdout"))]
        assert not bad, bad


def test_about_thirty_percent_of_each_file_is_held_out() -> None:
    """Between 25% and 35% of each file, and of each kind, is in the holdout split."""
    for name in ("injections", "benign"):
        rows = _load(name)
        share = sum(r["split"] == "holdout" for r in rows) / len(rows)
        assert 0.25 <= share <= 0.35, (name, share)
        for kind, count in Counter(r["kind"] for r in rows).items():
            held = sum(r["split"] == "holdout" for r in rows if r["kind"] == kind)
            assert 0.2 <= held / count <= 0.4, (name, kind, held, count)


def test_injections_cover_every_kind() -> None:
    """Every attack kind is present, each with at least 20 examples."""
    kinds = Counter(r["kind"] for r in _load("injections"))
    assert set(kinds) == INJECTION_KINDS
    assert min(kinds.values()) >= 20, kinds


def test_both_files_cover_the_same_languages() -> None:
    """Non-English attacks and non-English benign text span 8+ languages, the same core 8."""
    for name in ("injections", "benign"):
        languages = Counter(r["lang"] for r in _load(name) if r["kind"] == "non_english")
        assert len(languages) >= 8, (name, languages)
        assert set(languages) >= REQUIRED_LANGUAGES, (name, languages)


def test_benign_file_is_mostly_near_misses_and_varied() -> None:
    """Benign prompts include many near misses and several other kinds."""
    kinds = Counter(r["kind"] for r in _load("benign"))
    assert kinds["near_miss"] >= 60, kinds
    assert len(kinds) >= 10, kinds


def test_embedded_attacks_sit_in_realistic_documents() -> None:
    """Embedded attacks are hidden in documents of realistic length, not one-liners."""
    lengths = [len(r["text"]) for r in _load("injections") if r["kind"] == "embedded"]
    assert statistics.median(lengths) >= 350, lengths


_RUN = re.compile(r"(?:\\x[0-9A-Fa-f]{2}){6,}|(?:[0-9A-Fa-f]{2} ){7,}[0-9A-Fa-f]{2}"
                  r"|[A-Za-z0-9+/_-]{16,}={0,2}")


def _decodes_to_text(run: str) -> bool:
    """Whether ``run`` is hex or base64 (standard or URL-safe) of UTF-8 text with letters."""
    digits = re.sub(r"\\x| ", "", run).removeprefix("0x")
    candidates = []
    if re.fullmatch(r"(?:[0-9A-Fa-f]{2})+", digits):
        candidates.append(bytes.fromhex(digits))
    for altchars in (None, b"-_"):
        padded = run + "=" * (-len(run) % 4)
        with contextlib.suppress(binascii.Error, ValueError):
            candidates.append(base64.b64decode(padded, altchars=altchars, validate=True))
    for data in candidates:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if re.search(r"[A-Za-z]{3}", text) or _RUN.fullmatch(text):
            return True
    return False


def test_encoded_injections_hold_real_encodings() -> None:
    """Each encoded injection holds a base64 or hex run that decodes to readable text."""
    rows = [r for r in _load("injections") if r["kind"] == "encoded"]
    broken = [r["text"][:80] for r in rows
              if not any(_decodes_to_text(m.group()) for m in _RUN.finditer(r["text"]))]
    assert not broken, broken
