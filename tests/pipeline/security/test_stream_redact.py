"""StreamRedactor: values split over any chunks are caught, output equals whole-text
redaction, hold-back is bounded, and over-long matches fail closed."""

from __future__ import annotations

import base64
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainweave.errors import InputValidationError
from chainweave.pipeline.findings import Finding
from chainweave.pipeline.security.pii import KINDS, PIIDetector
from chainweave.pipeline.security.redaction import redact_findings
from chainweave.pipeline.security.stream_redact import StreamRedactor
from tests.pipeline.security.test_pii import (
    DETECTOR,
    VALUES,
    filler,
    glued_texts,
    texts_with_values,
)

# Without the long-bounded rules the window is small (96: a PEM BEGIN line), so short
# texts already exercise release, hold-back and context.
SHORT_KINDS = KINDS - {"pii.email", "secret.jwt", "secret.github_token", "secret.openai_key",
                       "secret.anthropic_key"}
SHORT = PIIDetector(sorted(SHORT_KINDS))


def redact(text: str, findings: list[Finding]) -> str:
    """Placeholder redaction, as the stream's ``redact`` callable."""
    return redact_findings(text, findings)


def split(text: str, cuts: list[int]) -> list[str]:
    """``text`` cut at the given offsets (any order, duplicates allowed)."""
    points = sorted({c for c in cuts if 0 < c < len(text)})
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]


def stream(chunks: list[str], detector: PIIDetector = DETECTOR, *, window: int | None = None,
           max_buffer: int = 8192) -> tuple[str, StreamRedactor]:
    """Everything a redactor lets through for ``chunks``, and the redactor."""
    redactor = StreamRedactor(detector.scan, redact, window=detector.window
                              if window is None else window, max_buffer=max_buffer)
    out = "".join(redactor.feed(chunk) for chunk in chunks) + redactor.flush()
    return out, redactor


def covered(findings: list[Finding], rule_id: str) -> list[tuple[int, int]]:
    """The spans a rule's findings cover, adjacent pieces joined."""
    spans: list[tuple[int, int]] = []
    for f in sorted((f for f in findings if f.rule_id == rule_id), key=lambda f: f.start):
        if spans and spans[-1][1] == f.start:
            spans[-1] = (spans[-1][0], f.end)
        else:
            spans.append((f.start, f.end))
    return spans


# --- a real private key ---------------------------------------------------------------

_SMALL_PRIMES = [p for p in range(3, 2000, 2) if all(p % q for q in range(3, p, 2))]


def _probable_prime(n: int, rng: random.Random) -> bool:
    if any(n % p == 0 for p in _SMALL_PRIMES):
        return False
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for _ in range(12):
        x = pow(rng.randrange(2, n - 1), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(bits: int, rng: random.Random) -> int:
    while True:
        n = rng.getrandbits(bits) | (3 << (bits - 2)) | 1
        if _probable_prime(n, rng):
            return n


def _der(tag: int, body: bytes) -> bytes:
    size = len(body)
    length = bytes([size]) if size < 128 else \
        bytes([0x80 | (size.bit_length() + 7) // 8]) + size.to_bytes((size.bit_length() + 7) // 8,
                                                                     "big")
    return bytes([tag]) + length + body


def rsa_private_key_pem(bits: int = 3072, seed: int = 7) -> str:
    """A real PKCS#1 RSA private key (``openssl rsa -check`` accepts it), generated
    here so that no key is ever committed."""
    rng = random.Random(seed)
    e = 65537
    while True:
        p, q = _prime(bits // 2, rng), _prime(bits // 2, rng)
        phi = (p - 1) * (q - 1)
        if p != q and phi % e:
            break
    d = pow(e, -1, phi)
    numbers = [0, p * q, e, d, p, q, d % (p - 1), d % (q - 1), pow(q, -1, p)]
    der = _der(0x30, b"".join(_der(0x02, v.to_bytes(v.bit_length() // 8 + 1, "big"))
                              for v in numbers))
    body = base64.b64encode(der).decode()
    lines = "\n".join(body[i:i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN RSA PRIVATE KEY-----\n{lines}\n-----END RSA PRIVATE KEY-----"


@pytest.fixture(scope="module")
def private_key() -> str:
    """A 3072-bit RSA key, about 2.4 KB of PEM."""
    return rsa_private_key_pem()


def key_lines(pem: str) -> list[str]:
    """The base64 lines of a PEM block: none may ever be let through."""
    return [line for line in pem.splitlines() if "-----" not in line]


# --- equivalence with whole-text redaction --------------------------------------------

@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(sample=texts_with_values(max_values=6), cuts=st.lists(st.integers(0, 2000), max_size=80))
def test_stream_equals_whole_text_redaction(sample: tuple[str, list[tuple[str, int, int]]],
                                            cuts: list[int]) -> None:
    """For any split into chunks, the output is exactly the whole text redacted at once,
    the findings are the whole text's, and no secret is let through raw."""
    text, placed = sample
    out, redactor = stream(split(text, cuts), SHORT)
    found = SHORT.scan(text)
    assert out == redact(text, found)
    assert redactor.findings == found
    for kind, start, end in placed:
        if kind in SHORT_KINDS and kind.startswith("secret."):
            assert text[start:end] not in out


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(parts=st.lists(st.one_of(glued_texts(), filler(200)), min_size=1, max_size=12),
       cuts=st.lists(st.integers(0, 3000), max_size=80))
def test_stream_equals_whole_text_for_glued_values(parts: list[str], cuts: list[int]) -> None:
    """Values glued to each other and to fragments that look like them: still exactly
    the whole text redacted at once, however it is split."""
    text = "".join(parts)
    out, redactor = stream(split(text, cuts), SHORT)
    assert out == redact(text, SHORT.scan(text))
    assert redactor.findings == SHORT.scan(text)


def test_context_before_the_held_text_is_the_whole_window() -> None:
    """The rules see ``window`` characters before the held text, even at the first
    release; with less, an address could start in the middle of a run of digits."""
    text = ("00000000a@a0000000.comFR760000000000000000000000011ghp_" + "0" * 36
            + "::1sk-ant-api03-" + "0" * 78 + "9AA")
    out, _ = stream([text[:188], text[188:]], SHORT)
    assert out == redact(text, SHORT.scan(text))


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(parts=st.lists(st.one_of(texts_with_values().map(lambda s: s[0]), filler(400)),
                      min_size=4, max_size=16),
       cuts=st.lists(st.integers(0, 8000), max_size=150))
def test_stream_equals_whole_text_with_every_rule(parts: list[str], cuts: list[int]) -> None:
    """With every built-in rule and the detector's own window (texts long enough to
    release), the output is the whole text redacted at once."""
    text = "".join(parts)
    out, redactor = stream(split(text, cuts))
    assert out == redact(text, DETECTOR.scan(text))
    assert redactor.findings == DETECTOR.scan(text)


@given(st.sampled_from(["secret.openai_key", "secret.anthropic_key", "secret.jwt",
                        "secret.github_token", "secret.aws_access_key"]).flatmap(
                            lambda kind: VALUES[kind]), filler(300))
def test_secret_fed_one_character_at_a_time_is_caught(secret: str, after: str) -> None:
    """A secret spread over as many chunks as it has characters never gets out."""
    text = f"the token is {secret}\n{after}"
    out, _ = stream(list(text))
    assert secret not in out
    assert out == redact(text, DETECTOR.scan(text))


def test_real_private_key_split_at_random_is_redacted_whole(private_key: str) -> None:
    """A 2-3 KB PEM key in random chunks comes out as one placeholder, nothing else."""
    assert 2000 < len(private_key) < 3000
    text = f"Here is the deploy key:\n{private_key}\nUse it wisely, phone +1 555 123 4567."
    rng = random.Random(11)
    for _ in range(25):
        chunks = split(text, [rng.randrange(len(text)) for _ in range(rng.randrange(1, 200))])
        out, redactor = stream(chunks)
        assert out == "Here is the deploy key:\n[REDACTED:PRIVATE_KEY]\n" \
                      "Use it wisely, phone [REDACTED:PHONE]."
        assert [f.rule_id for f in redactor.findings] == ["secret.private_key", "pii.phone"]


# --- hold-back ------------------------------------------------------------------------

def test_holds_back_exactly_the_window_of_plain_text() -> None:
    """Text without values goes out as soon as it is more than ``window`` back."""
    redactor = StreamRedactor(DETECTOR.scan, redact, window=50)
    first = redactor.feed("a" * 30)
    second = redactor.feed("b" * 40)
    assert (first, second) == ("", "a" * 20)
    assert redactor.held == 50
    assert redactor.flush() == "a" * 10 + "b" * 40


def test_match_touching_the_end_is_held_past_the_window() -> None:
    """A value that may still grow stays back even beyond ``window`` (here nothing
    else is held), and goes out redacted once something follows it."""
    redactor = StreamRedactor(DETECTOR.scan, redact, window=0)
    assert redactor.feed("key: AKIAIOSFODNN7EXAMPLE") == "key: "
    assert redactor.held == 20
    assert redactor.feed(" done") == "[REDACTED:AWS_ACCESS_KEY] done"
    assert redactor.flush() == ""


def test_findings_have_offsets_in_the_whole_stream() -> None:
    """Offsets count from the start of the stream, not of a chunk."""
    text = "x" * 300 + " mail a@example.com " + "y" * 300 + " AKIAIOSFODNN7EXAMPLE"
    _, redactor = stream(split(text, list(range(7, len(text), 13))), window=260)
    assert [(f.rule_id, text[f.start:f.end]) for f in redactor.findings] == [
        ("pii.email", "a@example.com"), ("secret.aws_access_key", "AKIAIOSFODNN7EXAMPLE")]


def test_overlapping_findings_from_the_scanner_are_handled() -> None:
    """A scanner may report overlapping findings (several detectors); the output is
    still the whole text redacted with them."""
    ipv4 = PIIDetector(["pii.ipv4"])

    def scan(text: str) -> list[Finding]:
        return sorted(SHORT.scan(text) + ipv4.scan(text), key=lambda f: (f.start, -f.end))

    text = "peer ::ffff:10.0.0.1 and 10.0.0.2 " * 20
    redactor = StreamRedactor(scan, redact, window=SHORT.window)
    out = "".join(redactor.feed(c) for c in split(text, list(range(3, len(text), 7))))
    out += redactor.flush()
    assert out == redact(text, scan(text))


# --- over-long matches ----------------------------------------------------------------

def test_key_longer_than_max_buffer_fails_closed(private_key: str) -> None:
    """A block larger than ``max_buffer`` is replaced at once, the rest dropped as it
    arrives; held text stays within ``max_buffer`` plus one delta; text after the END
    line flows again."""
    text = f"before {private_key}\nafter the key, call 020 7946 0958 today"
    redactor = StreamRedactor(SHORT.scan, redact, window=SHORT.window, max_buffer=600)
    parts = []
    for chunk in split(text, list(range(37, len(text), 37))):
        parts.append(redactor.feed(chunk))
        assert redactor.held <= 600 + len(chunk)
    out = "".join(parts) + redactor.flush()
    assert out == "before [REDACTED:PRIVATE_KEY]\nafter the key, call [REDACTED:PHONE] today"
    assert not any(line in out for line in key_lines(private_key))
    start = text.index("-----BEGIN")
    assert covered(redactor.findings, "secret.private_key") == [
        (start, start + len(private_key))]


def test_unterminated_key_is_suppressed_to_the_end_of_the_stream(private_key: str) -> None:
    """Without an END line the key runs to the end of the stream, never let out."""
    cut = private_key[:private_key.index("-----END")]
    text = "leaked: " + cut + "and then the model kept talking " * 20
    out, redactor = stream(split(text, list(range(50, len(text), 50))), SHORT, max_buffer=500)
    assert out == "leaked: [REDACTED:PRIVATE_KEY]"
    assert covered(redactor.findings, "secret.private_key") == [(8, len(text))]


def test_complete_block_larger_than_max_buffer_in_one_delta(private_key: str) -> None:
    """A whole block arriving at once, too long to hold, is let through redacted, and
    only what follows it is held."""
    redactor = StreamRedactor(SHORT.scan, redact, window=SHORT.window, max_buffer=500)
    assert redactor.feed(f"{private_key}\n" + "z" * 20) == "[REDACTED:PRIVATE_KEY]"
    assert redactor.held == 21
    assert redactor.flush() == "\n" + "z" * 20


def test_long_match_is_reported_before_any_of_it_is_let_through(private_key: str) -> None:
    """When a caller's redact lets a rule through (it flags or blocks that rule), the
    finding comes with the very feed that returns the text, so a blocking caller can
    stop first; and a flagged block is let through whole, not cut short."""

    def flag_keys(text: str, findings: list[Finding]) -> str:
        return redact(text, [f for f in findings if f.rule_id != "secret.private_key"])

    text = f"{private_key}\nbye"
    redactor = StreamRedactor(SHORT.scan, flag_keys, window=SHORT.window, max_buffer=300)
    out = ""
    for chunk in split(text, list(range(40, len(text), 40))):
        seen = len(redactor.findings)
        released = redactor.feed(chunk)
        if "-----BEGIN" in released:
            assert "secret.private_key" in [f.rule_id for f in redactor.findings[seen:]]
        out += released
    assert out + redactor.flush() == text


# --- configuration --------------------------------------------------------------------

@pytest.mark.parametrize(("window", "max_buffer"), [(-1, 100), (100, 50), (0, 0)])
def test_bad_sizes_are_refused(window: int, max_buffer: int) -> None:
    """A negative window or a buffer smaller than the window cannot work."""
    with pytest.raises(InputValidationError):
        StreamRedactor(DETECTOR.scan, redact, window=window, max_buffer=max_buffer)


def test_empty_stream_and_empty_deltas() -> None:
    """Empty deltas are no-ops; an empty stream flushes to nothing."""
    redactor = StreamRedactor(DETECTOR.scan, redact)
    assert redactor.feed("") == ""
    assert redactor.flush() == ""
    assert redactor.findings == []


def test_repr_shows_sizes_not_held_text() -> None:
    """What is held back may be a secret: the repr shows its size only."""
    redactor = StreamRedactor(DETECTOR.scan, redact)
    redactor.feed("AKIAIOSFODNN7EXAMPLE")
    assert "AKIA" not in repr(redactor)
    assert "held=20" in repr(redactor)
