"""PIIDetector: each rule in context, near-misses, overlaps, allow-lists, custom rules,
bounds, and linear time on adversarial input.

The strategies at the top (values of each kind, random text with values inserted) are
shared with the redaction and stream tests.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import re._parser as sre_parse
import string
import time
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainweave.errors import InputValidationError
from chainweave.pipeline.findings import Finding
from chainweave.pipeline.security import pii as pii_module
from chainweave.pipeline.security.checksums import luhn_valid
from chainweave.pipeline.security.pii import KINDS, CustomPattern, PIIDetector
from chainweave.pipeline.security.pii_patterns import (
    BUILTIN_RULES,
    PEM_MARKER_MAX,
    TextIndex,
    may_hold_builtin,
)
from tests.pipeline.security.test_checksums import iban_with_check, luhn_check_digit

ALNUM = string.ascii_letters + string.digits
B64URL = ALNUM + "-_"

# --- strategies -----------------------------------------------------------------------


def _digits(n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=string.digits, min_size=n, max_size=n)


@st.composite
def card_numbers(draw: st.DrawFn) -> str:
    """A Luhn-valid Visa, Mastercard or Discover number, bare or in groups of four."""
    prefix = draw(st.sampled_from(["4", "51", "55", "6011", "2221"]))
    body = prefix + draw(_digits(15 - len(prefix)))
    number = body + luhn_check_digit(body)
    separator = draw(st.sampled_from(["", " ", "-"]))
    return separator.join(number[i:i + 4] for i in range(0, 16, 4))


@st.composite
def emails(draw: st.DrawFn) -> str:
    """A plain address: letters and digits, an optional dotted part, a common TLD."""
    local = draw(st.from_regex(r"[a-z][a-z0-9]{0,10}(\.[a-z0-9]{1,8})?", fullmatch=True))
    domain = draw(st.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True))
    return f"{local}@{domain}.{draw(st.sampled_from(['com', 'org', 'co.uk', 'io']))}"


@st.composite
def phones(draw: st.DrawFn) -> str:
    """US, UK, German and French numbers in their usual written forms."""
    area = draw(st.sampled_from("23456789")) + draw(_digits(2))
    line = draw(_digits(3)) + "-" + draw(_digits(4))
    return draw(st.sampled_from([
        f"({area}) {line}", f"{area}-{line}", f"+1 {area} {line.replace('-', ' ')}",
        f"+44 20 {draw(_digits(4))} {draw(_digits(4))}", f"020 {draw(_digits(4))} "
        f"{draw(_digits(4))}", f"+49 30 {draw(_digits(8))}",
        "0" + draw(st.sampled_from("123456789")) + "".join(
            " " + draw(_digits(2)) for _ in range(4)),
    ]))


@st.composite
def ibans(draw: st.DrawFn) -> str:
    """A valid German, British-style or Dutch IBAN, compact or in print format."""
    country, length = draw(st.sampled_from([("DE", 22), ("FR", 27), ("NL", 18), ("ES", 24)]))
    iban = iban_with_check(country, draw(_digits(length - 4)))
    if draw(st.booleans()):
        return " ".join(iban[i:i + 4] for i in range(0, len(iban), 4))
    return iban


@st.composite
def ssns(draw: st.DrawFn) -> str:
    """A formatted SSN with a valid area, group and serial."""
    area = draw(st.integers(1, 899).filter(lambda a: a != 666))
    return f"{area:03d}-{draw(st.integers(1, 99)):02d}-{draw(st.integers(1, 9999)):04d}"


def ipv4s() -> st.SearchStrategy[str]:
    """Any IPv4 address."""
    return st.ip_addresses(v=4).map(str)


def ipv6s() -> st.SearchStrategy[str]:
    """An IPv6 address that, as written, holds a decimal digit (the rule requires one)."""
    return st.ip_addresses(v=6).map(str).filter(lambda a: any(c.isdigit() for c in a))


@st.composite
def openai_keys(draw: st.DrawFn) -> str:
    """``sk-`` or ``sk-proj-`` and a random body, as OpenAI issues them."""
    body = draw(st.text(alphabet=ALNUM, min_size=40, max_size=60)) + "7Qa"
    return draw(st.sampled_from(["sk-", "sk-proj-"])) + body


@st.composite
def anthropic_keys(draw: st.DrawFn) -> str:
    """``sk-ant-api03-`` and a random body."""
    return "sk-ant-api03-" + draw(st.text(alphabet=ALNUM, min_size=80, max_size=93)) + "9AA"


@st.composite
def aws_keys(draw: st.DrawFn) -> str:
    """An AWS access key id."""
    tail = draw(st.text(alphabet=string.ascii_uppercase + string.digits, min_size=16,
                        max_size=16))
    return draw(st.sampled_from(["AKIA", "ASIA"])) + tail


@st.composite
def github_tokens(draw: st.DrawFn) -> str:
    """A classic (``ghp_`` ...) or fine-grained (``github_pat_``) GitHub token."""
    if draw(st.booleans()):
        prefix = draw(st.sampled_from(["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]))
        return prefix + draw(st.text(alphabet=ALNUM, min_size=36, max_size=36))
    return "github_pat_" + draw(st.text(alphabet=ALNUM + "_", min_size=82, max_size=82))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@st.composite
def jwts(draw: st.DrawFn) -> str:
    """A signed JWT: a real JSON header with ``alg``, a JSON payload, a signature."""
    header = {"alg": draw(st.sampled_from(["HS256", "RS256", "ES256"])), "typ": "JWT"}
    payload = {"sub": draw(st.text(alphabet=ALNUM, min_size=1, max_size=20)),
               "iat": draw(st.integers(0, 2**31))}
    signature = draw(st.text(alphabet=B64URL, min_size=43, max_size=86))
    return (f"{_b64url(json.dumps(header).encode())}."
            f"{_b64url(json.dumps(payload).encode())}.{signature}")


@st.composite
def pem_blocks(draw: st.DrawFn) -> str:
    """A PEM private key block with a random body."""
    kind = draw(st.sampled_from(["RSA ", "EC ", "OPENSSH ", "ENCRYPTED ", ""]))
    body = base64.b64encode(draw(st.binary(min_size=30, max_size=300))).decode()
    lines = "\n".join(body[i:i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN {kind}PRIVATE KEY-----\n{lines}\n-----END {kind}PRIVATE KEY-----"


VALUES = {
    "pii.email": emails(), "pii.phone": phones(), "pii.ipv4": ipv4s(), "pii.ipv6": ipv6s(),
    "pii.credit_card": card_numbers(), "pii.iban": ibans(), "pii.ssn": ssns(),
    "secret.openai_key": openai_keys(), "secret.anthropic_key": anthropic_keys(),
    "secret.aws_access_key": aws_keys(), "secret.github_token": github_tokens(),
    "secret.jwt": jwts(), "secret.private_key": pem_blocks(),
}
"""A strategy of values for every built-in kind."""

SECRETS = [kind for kind in VALUES if kind.startswith("secret.")]

# Random text around the values: letters, digits and the punctuation values are built
# from, so that neighbours get every chance to interfere.
TEXT_ALPHABET = string.ascii_letters + string.digits + " .,:;-_@+()/#=*[]'\n" + "é—"


def filler(max_size: int = 60) -> st.SearchStrategy[str]:
    """Random text to put between values."""
    return st.text(alphabet=TEXT_ALPHABET, max_size=max_size)


# Numbers are written with spaces, dashes, dots and slashes inside them, so for them
# only a line break is a boundary: "01 020 7946 0958" is honestly ambiguous.
NUMBER_KINDS = frozenset({"pii.phone", "pii.ipv4", "pii.ipv6", "pii.credit_card", "pii.iban",
                          "pii.ssn"})


@st.composite
def texts_with_values(draw: st.DrawFn, kinds: list[str] | None = None, max_values: int = 4,
                      spaced: bool = True) -> tuple[str, list[tuple[str, int, int]]]:
    """Random text with values inserted, and where each value went.

    Assumption: a value is set off from the random text on both sides by whitespace,
    and a number by a line break (or by a space when ``spaced``, which lets random
    digits run into it). Without a boundary a value can honestly become part of a
    longer token ("x" + an e-mail's local part) or stop being one.
    """
    chosen = kinds or list(VALUES)
    parts = [draw(filler())]
    placed: list[tuple[str, int, int]] = []
    for _ in range(draw(st.integers(1, max_values))):
        kind = draw(st.sampled_from(chosen))
        value = draw(VALUES[kind])
        gaps = [" ", "\n"] if spaced or kind not in NUMBER_KINDS else ["\n"]
        start = sum(map(len, parts)) + 1
        parts += [draw(st.sampled_from(gaps)) + value + draw(st.sampled_from(gaps)),
                  draw(filler())]
        placed.append((kind, start, start + len(value)))
    return "".join(parts), placed


# Values and look-alike fragments glued together with no whitespace: the hardest case
# for idempotency and streaming, since a replacement changes what its neighbours see.
_FRAGMENTS = st.sampled_from([
    "SSN ", "SSN: 123456789", "::", "fe80::", "0::", "sk-", "eyJ", "AKIA", "@", "+1", "(0",
    "GB82", "4111", ".", ",", "-", "/", "0", "1 ", "[", "*", "]", "-----BEGIN PRIVATE KEY-----",
    "-----END PRIVATE KEY-----",
])


def glued_texts(max_parts: int = 8) -> st.SearchStrategy[str]:
    """Values, fragments and random text concatenated without separators."""
    value = st.sampled_from(list(VALUES)).flatmap(lambda kind: VALUES[kind])
    return st.lists(st.one_of(value, _FRAGMENTS, filler(8)), min_size=1,
                    max_size=max_parts).map("".join)


DETECTOR = PIIDetector()


def spans(text: str, detector: PIIDetector = DETECTOR) -> list[tuple[str, str]]:
    """``(rule_id, matched text)`` for every finding."""
    return [(f.rule_id, text[f.start:f.end]) for f in detector.scan(text)]


# --- the kinds ------------------------------------------------------------------------


def test_kinds_lists_every_builtin_rule() -> None:
    """KINDS is exactly the documented rule ids, each with its category as prefix."""
    assert {
        "pii.email", "pii.phone", "pii.ipv4", "pii.ipv6", "pii.credit_card", "pii.iban",
        "pii.ssn", "secret.openai_key", "secret.anthropic_key", "secret.aws_access_key",
        "secret.github_token", "secret.jwt", "secret.private_key"} == KINDS


@pytest.mark.parametrize(("kind", "value"), [
    ("pii.email", "jane.doe+news@mail.example.co.uk"),
    ("pii.phone", "(555) 123-4567"),
    ("pii.phone", "555-123-4567"),
    ("pii.phone", "+1 555 123 4567"),
    ("pii.phone", "+1-555-123-4567"),
    ("pii.phone", "+44 20 7946 0958"),
    ("pii.phone", "+44 (0)20 7946 0958"),
    ("pii.phone", "020 7946 0958"),
    ("pii.phone", "07700 900123"),
    ("pii.phone", "030 12345678"),
    ("pii.phone", "+49 30 12345678"),
    ("pii.phone", "089/1234567"),
    ("pii.phone", "01 23 45 67 89"),
    ("pii.phone", "+33 1 23 45 67 89"),
    ("pii.ipv4", "192.168.1.20"),
    ("pii.ipv4", "1.2.3.4"),
    ("pii.ipv6", "2001:db8::8a2e:370:7334"),
    ("pii.ipv6", "fe80::1"),
    ("pii.ipv6", "::ffff:10.0.0.1"),
    ("pii.credit_card", "4111 1111 1111 1111"),
    ("pii.credit_card", "4111-1111-1111-1111"),
    ("pii.credit_card", "5555555555554444"),
    ("pii.credit_card", "3782 822463 10005"),
    ("pii.iban", "GB82 WEST 1234 5698 7654 32"),
    ("pii.iban", "DE89370400440532013000"),
    ("pii.ssn", "078-05-1120"),
    ("secret.openai_key", "sk-proj-4eC39HqLyjWDarjtT1zdp7dcQ0xvY2aB"),
    ("secret.openai_key", "sk-4eC39HqLyjWDarjtT1zdp7dcQ0xvY2aB3kLmN0pQrStU"),
    ("secret.anthropic_key", "sk-ant-api03-4eC39HqLyjWDarjtT1zdp7dcQ0xvY2aB_x-AA"),
    ("secret.aws_access_key", "AKIAIOSFODNN7EXAMPLE"),
    ("secret.aws_access_key", "ASIAY34FZKBOKMUTVV7A"),
    ("secret.github_token", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
    ("secret.github_token", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEF"),
    ("secret.jwt", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
                   "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
    ("secret.private_key", "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBk=\n"
                           "-----END EC PRIVATE KEY-----"),
])
def test_each_kind_is_found_in_a_sentence(kind: str, value: str) -> None:
    """A value in ordinary prose is reported once, with its rule id and exact span."""
    text = f"Hi team, the value is {value}, please keep it safe."
    assert spans(text) == [(kind, value)]


def test_category_is_the_rule_id_prefix() -> None:
    """Findings carry the category their policy acts on."""
    found = DETECTOR.scan("mail a@example.com key AKIAIOSFODNN7EXAMPLE")
    assert [(f.rule_id, f.category) for f in found] == [
        ("pii.email", "pii"), ("secret.aws_access_key", "secret")]


@pytest.mark.parametrize("text", [
    "SSN: 078051120", "ssn 078051120", "Social Security Number: 078051120",
    "my SSN is 078051120",
])
def test_bare_ssn_is_found_after_a_context_word(text: str) -> None:
    """Nine bare digits count as an SSN right after words that say so."""
    assert spans(text) == [("pii.ssn", "078051120")]


def test_unterminated_private_key_fails_closed_to_the_end() -> None:
    """A BEGIN line without its END line is a finding up to the end of the text."""
    text = "here: -----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM\nand"
    found = DETECTOR.scan(text)
    assert [(f.rule_id, f.start, f.end) for f in found] == [
        ("secret.private_key", text.index("-----"), len(text))]


# --- near misses ----------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "card 4111 1111 1111 1112 declined",  # Luhn fails
    "number 1234567812345670 on file",  # Luhn passes, no issuer starts with 1
    "Order #12345678 shipped",
    "ticket 123456789 closed",  # nine digits, no SSN context
    "invoice INV-2023-000123 paid",
    "meet on 2023-10-12 at 10:30:45",
    "on 12/10/2023 and 05-12-2023",
    "version 1.2.3 and v1.2.3.4.5",
    "server 999.1.1.1 is not an address",
    "price $1,234.56 or 1.234,56 EUR",
    "the task-force met; sk-learn-pipeline-2024-model-eval ran; sk-short",
    "id 123e4567-e89b-12d3-a456-426614174000 and 12345678-1234-5678-1234-567812345678",
    "area 666-12-3456 and 900-12-3456 and 123-00-4567",
    "dead::beef and std::vector and Class::method and a::b",
    "MAC 00:1A:2B:3C:4D:5E",
    "AKIA1234 is too short; akiaiosfodnn7example is lower case",
    "eyJub3QiOiJqc29uIn0.eyJzdWIiOiIxIn0.c2ln has no alg",
    "-----BEGIN PUBLIC KEY-----\nMIIBIjANBg\n-----END PUBLIC KEY-----",
    "call me at 5551234567 maybe",  # ten bare digits: an id as often as a phone
    "GB00 0000 0000 0000 0000 00",  # IBAN-shaped, wrong check digits
])
def test_near_misses_are_not_reported(text: str) -> None:
    """Look-alikes that fail a checksum, a range or a boundary are left alone."""
    assert spans(text) == []


def test_version_with_four_parts_is_an_ipv4_address() -> None:
    """1.2.3.4 is a valid address as written; only 999.1.1.1 style is refused."""
    assert spans("release 1.2.3.4 is out") == [("pii.ipv4", "1.2.3.4")]


def test_ipv4_with_port_is_found_without_the_port() -> None:
    """host:port keeps the address."""
    assert spans("connect to 10.0.0.7:8080 now") == [("pii.ipv4", "10.0.0.7")]


def test_card_after_a_stray_number_is_found() -> None:
    """A number before a card ("qty 4") does not hide the card."""
    assert spans("qty 4 4111 1111 1111 1111 thanks") == [
        ("pii.credit_card", "4111 1111 1111 1111")]


@pytest.mark.parametrize("after", [" 12/25", " 123 (CVV)", " 1234"])
def test_card_followed_by_other_numbers_is_found(after: str) -> None:
    """Digits after the card (an expiry, a CVV) are not taken into it."""
    assert spans(f"4111 1111 1111 1111{after}") == [("pii.credit_card", "4111 1111 1111 1111")]


@pytest.mark.parametrize(("text", "phone"), [
    ("call 020 7946 0958 12 times", "020 7946 0958"),
    ("ring +49 30 12345678 123456 now", "+49 30 12345678"),
])
def test_phone_followed_by_another_number_is_found(text: str, phone: str) -> None:
    """A number after a phone (too many digits for one) is left out of it."""
    assert spans(text) == [("pii.phone", phone)]


# --- overlaps -------------------------------------------------------------------------

def test_anthropic_key_wins_over_openai_for_the_same_text() -> None:
    """sk-ant-... is reported once, as an Anthropic key."""
    key = "sk-ant-api03-4eC39HqLyjWDarjtT1zdp7dcQ0xvY2aB_x-AA"
    assert spans(f"key={key}") == [("secret.anthropic_key", key)]


def test_secret_wins_over_pii_inside_it() -> None:
    """An e-mail inside a private key block is part of the secret, not a finding."""
    text = ("-----BEGIN PRIVATE KEY-----\nops@example.com 4111111111111111\n"
            "-----END PRIVATE KEY-----")
    assert spans(text) == [("secret.private_key", text)]


def test_secret_wins_over_a_longer_pii_value_it_overlaps() -> None:
    """A key used as an e-mail's local part: the key is the secret; the rest of the
    address is still reported, so none of it is left in the clear."""
    key = "sk-proj-4eC39HqLyjWDarjtT1zdp7dcQ0xvY2aB"
    assert spans(f"to {key}@example.com now") == [
        ("secret.openai_key", key), ("pii.email", "@example.com")]


def test_longer_finding_wins_over_a_shorter_overlapping_one() -> None:
    """In ::ffff:10.0.0.1 the IPv6 address wins over the IPv4 address inside it."""
    assert spans("peer ::ffff:10.0.0.1 up") == [("pii.ipv6", "::ffff:10.0.0.1")]


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(texts_with_values())
def test_findings_are_sorted_and_never_overlap(sample: tuple[str, list[tuple[str, int, int]]]
                                               ) -> None:
    """For any text, findings are in order, inside the text and disjoint."""
    text, _ = sample
    found = DETECTOR.scan(text)
    assert all(0 <= f.start < f.end <= len(text) for f in found)
    assert all(a.end <= b.start for a, b in itertools.pairwise(found))


# --- properties -----------------------------------------------------------------------

@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(texts_with_values(spaced=False))
def test_every_inserted_value_is_found(sample: tuple[str, list[tuple[str, int, int]]]) -> None:
    """A value of any kind set off from random text (see ``texts_with_values``) is
    covered by a finding of its kind, or by a longer one around it."""
    text, placed = sample
    found = DETECTOR.scan(text)
    for kind, start, end in placed:
        covering = [f for f in found if f.start <= start and end <= f.end]
        assert covering, (kind, text[start:end])
        assert covering[0].rule_id == kind or covering[0].end - covering[0].start > end - start


@given(filler(200), _digits(14), filler(200))
def test_luhn_valid_number_is_found_anywhere(before: str, body: str, after: str) -> None:
    """A Luhn-valid 16-digit Visa number anywhere in random text is found.
    Assumption: a line break on both sides (see ``texts_with_values``)."""
    number = "4" + body + luhn_check_digit("4" + body)
    assert luhn_valid(number)
    text = f"{before}\n{number}\n{after}"
    assert ("pii.credit_card", number) in spans(text)


@given(filler(200), st.sampled_from(SECRETS).flatmap(lambda k: VALUES[k]), filler(200))
def test_key_is_found_anywhere(before: str, key: str, after: str) -> None:
    """Any kind of key or token between whitespace, anywhere in random text, is found
    as a secret covering all of it."""
    text = f"{before}\n{key}\n{after}"
    start = len(before) + 1
    assert any(f.category == "secret" and f.start <= start and start + len(key) <= f.end
               for f in DETECTOR.scan(text))


# --- the prefilter --------------------------------------------------------------------


def _scan_without_prefilter(text: str) -> list[Finding]:
    with mock.patch.object(pii_module, "may_hold_builtin", return_value=True):
        return DETECTOR.scan(text)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(glued_texts(), texts_with_values().map(lambda sample: sample[0]),
                 st.text(alphabet=TEXT_ALPHABET + "kKsSyYeEJjABIGN", max_size=80)))
def test_prefilter_drops_no_finding(text: str) -> None:
    """Skipping texts the prefilter rules out finds what running every rule finds."""
    assert DETECTOR.scan(text) == _scan_without_prefilter(text)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(list(VALUES)).flatmap(lambda kind: VALUES[kind]))
def test_prefilter_passes_every_kind_of_value(value: str) -> None:
    """A value of any built-in kind passes the prefilter, as ASCII and next to "é"."""
    assert may_hold_builtin(TextIndex(value))
    assert may_hold_builtin(TextIndex(f"\u00e9 {value}"))


@pytest.mark.parametrize("trigger", [
    "@", ":", "_", "sk-", "AKIA", "ASIA", "eyJ", "-----BEGIN", "1234567", "+1 (555) 01",
    "GB82 WEST"])
def test_prefilter_passes_each_trigger(trigger: str) -> None:
    """Each character, literal or number anchor some rule starts from passes, in ASCII
    text or not."""
    assert may_hold_builtin(TextIndex(f"plain words {trigger} more"))
    assert may_hold_builtin(TextIndex(f"plain w\u00f6rds {trigger} more"))


@pytest.mark.parametrize("digit", string.digits)
def test_prefilter_passes_a_run_of_any_digit(digit: str) -> None:
    """Seven of one digit are a place a number may start, whichever digit it is."""
    assert may_hold_builtin(TextIndex(f"number {digit * 7} here"))


@pytest.mark.parametrize("text", [
    "Revenue grew in every region; costs held steady (mostly).",
    "Caf\u00e9 prices rose - a bit - in Z\u00fcrich, SKY high.",
    "7 regions grew 12% in Q3, and 2 held steady.",
])
def test_prefilter_skips_prose_without_a_place_to_start(text: str) -> None:
    """Prose without "@", ":", "_", a key's prefix or a run of digits is ruled out."""
    assert not may_hold_builtin(TextIndex(text))


def test_custom_rules_are_never_skipped() -> None:
    """A detector with a custom pattern scans a text the prefilter would rule out."""
    detector = PIIDetector(custom=[CustomPattern("custom.word", r"\bsteady\b")])
    assert [f.rule_id for f in detector.scan("costs held steady")] == ["custom.word"]


# --- configuration --------------------------------------------------------------------

def test_kinds_limits_the_rules_that_run() -> None:
    """Only the chosen kinds are reported."""
    detector = PIIDetector(["pii.email"])
    assert spans("a@example.com AKIAIOSFODNN7EXAMPLE", detector) == [
        ("pii.email", "a@example.com")]


def test_allow_suppresses_exact_values_only() -> None:
    """An allowed address is not reported; a different one still is."""
    detector = PIIDetector(allow=["support@acme.com"])
    text = "write to support@acme.com or jane@acme.com"
    assert spans(text, detector) == [("pii.email", "jane@acme.com")]


def test_allow_patterns_must_match_the_whole_value() -> None:
    """A pattern suppresses a value it fully matches, not one it only finds inside."""
    detector = PIIDetector(allow_patterns=[r"[a-z.]+@example\.com", "acme"])
    text = "from noreply@example.com and jane@acme.com"
    assert spans(text, detector) == [("pii.email", "jane@acme.com")]


def test_custom_pattern_reports_under_its_own_id_and_category() -> None:
    """A custom rule's findings carry its id and category, alongside built-in ones."""
    detector = PIIDetector(custom=[CustomPattern("custom.employee_id", r"\bEMP-\d{6}\b")])
    found = detector.scan("badge EMP-004211 for a@example.com")
    assert [(f.rule_id, f.category) for f in found] == [
        ("custom.employee_id", "custom"), ("pii.email", "pii")]


def test_custom_pattern_validate_filters_matches() -> None:
    """Only matches the validator accepts are reported."""
    rule = CustomPattern("acme.ticket", r"\bT-\d{4}\b", category="internal",
                         validate=lambda value: int(value[2:]) % 2 == 0)
    detector = PIIDetector([], custom=[rule])
    assert spans("T-1001 T-1002 T-1003 T-1004", detector) == [
        ("acme.ticket", "T-1002"), ("acme.ticket", "T-1004")]
    assert detector.scan("T-1002")[0].category == "internal"


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"kinds": ["pii.email", "pii.passport"]}, "pii.passport"),
    ({"kinds": "pii.email"}, "pii.email"),
    ({"custom": [CustomPattern("c.x", r"(unclosed")]}, "c.x"),
    ({"custom": [CustomPattern("c.x", "a"), CustomPattern("c.x", "b")]}, "c.x"),
    ({"custom": [CustomPattern("pii.email", "a")]}, "pii.email"),
    ({"allow_patterns": ["[z-a]"]}, "allow_patterns"),
])
def test_bad_configuration_raises_naming_the_problem(kwargs: dict[str, object],
                                                     named: str) -> None:
    """Unknown kinds, duplicate ids and patterns that do not compile are refused."""
    with pytest.raises(InputValidationError) as caught:
        PIIDetector(**kwargs)  # type: ignore[arg-type]
    assert named in str(caught.value)
    assert caught.value.errors


def test_every_problem_is_listed_at_once() -> None:
    """Several mistakes give one error with each of them."""
    with pytest.raises(InputValidationError) as caught:
        PIIDetector(["pii.nope"], custom=[CustomPattern("c.bad", "(")])
    assert len(caught.value.errors) == 2


def test_repr_does_not_show_allowed_values() -> None:
    """Allowed values may be personal data: the repr only counts them."""
    detector = PIIDetector(allow=["ceo@acme.com"])
    assert "ceo@acme.com" not in repr(detector)
    assert "1 values" in repr(detector)


# --- bounds ---------------------------------------------------------------------------

def _widest(pattern: re.Pattern[str]) -> int:
    return int(sre_parse.parse(pattern.pattern, pattern.flags).getwidth()[1])


@pytest.mark.parametrize("kind", sorted(KINDS - {"secret.private_key"}))
def test_declared_max_len_bounds_the_patterns(kind: str) -> None:
    """Each bounded rule's patterns can match no more than its declared length."""
    rule = BUILTIN_RULES[kind]
    assert rule.max_len is not None
    assert rule.patterns
    assert max(_widest(p) for p in rule.patterns) <= rule.max_len


def test_window_is_the_longest_bounded_match() -> None:
    """window covers every non-PEM rule and a PEM BEGIN line, and depends on kinds."""
    bounded = [r.max_len for r in BUILTIN_RULES.values() if r.max_len is not None]
    assert DETECTOR.window == max(bounded)
    assert PIIDetector(["pii.ipv4"]).window == 15
    assert PIIDetector(["secret.private_key"]).window == PEM_MARKER_MAX
    assert _widest(BUILTIN_RULES["secret.private_key"].patterns[0]) <= PEM_MARKER_MAX


def test_overlong_jwt_is_still_caught_up_to_the_bound() -> None:
    """A JWT longer than the bounds is redacted from its start (fail closed), so it
    cannot be replayed, rather than not matched at all."""
    header = _b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    token = f"{header}.{'A' * 3000}.{'s' * 40}"
    found = DETECTOR.scan(f"Bearer {token}")
    assert [f.rule_id for f in found] == ["secret.jwt"]
    assert found[0].start == len("Bearer ")
    assert found[0].end - found[0].start <= DETECTOR.window


# --- linear time ----------------------------------------------------------------------

MEGABYTE = 1_000_000
ADVERSARIAL = {
    "a@": "a@", "1-": "1-", "sk-": "sk-", "colons": ":", "1 ": "1 ", "4111 ": "4111 ",
    "digits": "1", "a.": "a.", "eyJ": "eyJ", ":a": ":a", "+1": "+1", "(1 ": "(1 ",
    "0 1": "0 1", "AB12 ": "AB12 ", "BEGIN": "-----BEGIN PRIVATE KEY-----",
    "a@b.co ": "a@b.co ", "1.1.1.1 ": "1.1.1.1 ", "::1 ": "::1 ", "SSN ": "SSN 123456789 ",
}


@pytest.mark.parametrize("unit", list(ADVERSARIAL.values()), ids=list(ADVERSARIAL))
def test_scan_is_linear_on_adversarial_megabyte(unit: str) -> None:
    """1 MB built to provoke backtracking scans in seconds, not hours (ReDoS guard;
    the benchmark records the real figures, well under a second each)."""
    text = (unit * (MEGABYTE // len(unit) + 1))[:MEGABYTE]
    started = time.perf_counter()
    DETECTOR.scan(text)
    assert time.perf_counter() - started < 10


def test_finding_never_holds_the_matched_text() -> None:
    """Findings are spans and ids only."""
    found = DETECTOR.scan("key AKIAIOSFODNN7EXAMPLE")
    assert found == [Finding("secret.aws_access_key", "secret", 4, 24)]
    assert "AKIA" not in repr(found[0])
