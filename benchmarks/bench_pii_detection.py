"""Cost of PII and secret detection: PIIDetector.scan on a typical 1 KB prompt with and
without PII, StreamRedactor per 1 KB streamed in 20-character chunks, and scan time on
1 MB inputs built to provoke regex backtracking (the ReDoS guard).

Scan figures are medians over rounds of per-call means. Stream figures are the whole
redactor (scan, release, redact) per KB of text; the text is streamed at the detector's
own window (every built-in rule seen whole) and at the default 256. Targets: well under
50 µs for a typical 1 KB prompt (no PII); adversarial megabytes in linear time: well
under a second, except where a value starts every few characters and the 100,000s of
findings themselves cost a second or two (the test suite allows 10 s).

Usage: python benchmarks/bench_pii_detection.py [--calls N] [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

from chainweave.pipeline.findings import Finding
from chainweave.pipeline.security.pii import PIIDetector
from chainweave.pipeline.security.redaction import redact_findings
from chainweave.pipeline.security.stream_redact import StreamRedactor

PROSE = (
    "Please summarise the attached quarterly report for the board. Revenue grew 12% to "
    "$4.2 million in Q3 2023, driven by 15 new stores and a 3.5% rise in same-store sales. "
    "The board meets on 2023-11-14 at 10:30 to discuss version 2.1 of the plan: see "
    "section 4.2, items 1-7. Order #48213 shipped; ticket ABC-1234 is still open. Write "
    "the answer in three short paragraphs, keep a friendly tone, list the risks at the "
    "end, and do not invent numbers that are not in the report \u2014 thank you. "
)
PII = (" Contact jane.doe@example.com or +1 (555) 123-4567; card 4111 1111 1111 1111; "
       "key sk-proj-4eC39HqLyjWDarjtT1zdp7dcQ0xvY2aB; SSN 078-05-1120. ")
PROMPT = (PROSE * 3)[:1024]
PROMPT_WITH_PII = (PROSE[:1024 - len(PII)] + PII + PROSE)[:1024]
MEGABYTE = 1_000_000
ADVERSARIAL = ["a@", "1-", "sk-", ":", "1 ", "4111 ", "4242 ", "1", "a.", "eyJ", ":a", "+1",
               "(1 ", "0 1", "01 ", "AB12 ", "-----BEGIN PRIVATE KEY-----", "a@b.co ",
               "1.1.1.1 ", "::1 ", "1::", "SSN 123456789 "]


def per_call_us(call: Callable[[], object], calls: int) -> float:
    """Mean microseconds per call over one batch."""
    started = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - started) / calls * 1e6


def median_us(call: Callable[[], object], calls: int, rounds: int) -> float:
    """Median over ``rounds`` batches of the mean per call, after a warm-up batch."""
    per_call_us(call, calls)
    return round(statistics.median(per_call_us(call, calls) for _ in range(rounds)), 1)


def stream_us_per_kb(detector: PIIDetector, window: int, rounds: int) -> float:
    """Median microseconds per KB to stream 10 KB through a redactor in 20-char deltas."""
    text = (PROSE * 40)[:10240]
    chunks = [text[i:i + 20] for i in range(0, len(text), 20)]

    def redact(part: str, found: list[Finding]) -> str:
        return redact_findings(part, found)

    def run() -> None:
        redactor = StreamRedactor(detector.scan, redact, window=window)
        for chunk in chunks:
            redactor.feed(chunk)
        redactor.flush()

    return round(median_us(run, 3, rounds) / 10, 1)


def adversarial_seconds(detector: PIIDetector) -> dict[str, dict[str, float]]:
    """Seconds to scan 1 MB of each repeated unit, and how many findings it holds."""
    times = {}
    for unit in ADVERSARIAL:
        text = (unit * (MEGABYTE // len(unit) + 1))[:MEGABYTE]
        started = time.perf_counter()
        found = detector.scan(text)
        times[repr(unit)] = {"seconds": round(time.perf_counter() - started, 3),
                             "findings": len(found)}
    return times


def main() -> None:
    """Print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    detector = PIIDetector()
    if detector.scan(PROMPT) or len(detector.scan(PROMPT_WITH_PII)) != 5:
        raise SystemExit("the sample prompts no longer hold 0 and 5 findings")
    adversarial = adversarial_seconds(detector)
    print(json.dumps({
        "benchmark": "pii_detection",
        "calls_per_batch": args.calls, "rounds": args.rounds,
        "target_scan_us_per_kb": 50,
        "scan_us_1kb_prompt_without_pii": median_us(lambda: detector.scan(PROMPT),
                                                    args.calls, args.rounds),
        "scan_us_1kb_prompt_with_pii": median_us(lambda: detector.scan(PROMPT_WITH_PII),
                                                 args.calls, args.rounds),
        "detector_window": detector.window,
        "stream_us_per_kb_20_char_chunks": {
            f"window_{detector.window}": stream_us_per_kb(detector, detector.window,
                                                          args.rounds),
            "window_256": stream_us_per_kb(detector, 256, args.rounds)},
        "adversarial_1mb_seconds": adversarial,
        "adversarial_1mb_worst_seconds": max(v["seconds"] for v in adversarial.values()),
    }, indent=2))


if __name__ == "__main__":
    main()
