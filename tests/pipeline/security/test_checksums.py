"""Check digits: Luhn for cards, ISO 13616 mod 97 for IBANs, the SSA's rules for SSNs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainweave.pipeline.security.checksums import (
    IBAN_LENGTHS,
    iban_valid,
    luhn_valid,
    ssn_valid,
)


def luhn_check_digit(body: str) -> str:
    """The digit that makes ``body + digit`` pass Luhn (computed independently)."""
    total = 0
    for index, char in enumerate(reversed(body)):
        value = int(char)
        if index % 2 == 0:  # these get doubled once the check digit is appended
            value = value * 2 - 9 if value * 2 > 9 else value * 2
        total += value
    return str((10 - total % 10) % 10)


def iban_with_check(country: str, bban: str) -> str:
    """A valid IBAN for ``bban`` (digits and capitals), check digits computed here."""
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{country}{98 - int(numeric) % 97:02d}{bban}"


# --- Luhn -----------------------------------------------------------------------------

@pytest.mark.parametrize("number", [
    "4111111111111111", "4012888888881881", "5555555555554444", "2223003122003222",
    "378282246310005", "6011111111111117", "3530111333300000", "30569309025904",
    "79927398713",
])
def test_luhn_accepts_published_test_numbers(number: str) -> None:
    """The card networks' published test numbers pass."""
    assert luhn_valid(number)


@pytest.mark.parametrize("number", ["4111 1111 1111 1111", "4111-1111-1111-1111"])
def test_luhn_ignores_spaces_and_dashes(number: str) -> None:
    """Grouped forms are checked on their digits."""
    assert luhn_valid(number)


@pytest.mark.parametrize("number", [
    "4111111111111112", "4111111111111121", "79927398710", "1234567812345678",
])
def test_luhn_rejects_wrong_check_digits(number: str) -> None:
    """A number whose check digit does not fit fails."""
    assert not luhn_valid(number)


@pytest.mark.parametrize("number", ["", "0", "4111x11111111111", "4111.1111.1111.1111",
                                    "\u0664\u0661\u0661\u0661"])
def test_luhn_rejects_non_digits(number: str) -> None:
    """Letters, other separators, other scripts' digits and too-short input fail."""
    assert not luhn_valid(number)


@given(st.text(alphabet="0123456789", min_size=1, max_size=30))
def test_luhn_appended_check_digit_is_valid(body: str) -> None:
    """Any digits with their Luhn check digit appended pass."""
    assert luhn_valid(body + luhn_check_digit(body))


@given(st.text(alphabet="0123456789", min_size=1, max_size=30), st.data())
def test_luhn_changing_one_digit_invalidates(body: str, data: st.DataObject) -> None:
    """Luhn catches every single-digit substitution."""
    number = body + luhn_check_digit(body)
    position = data.draw(st.integers(0, len(number) - 1))
    other = data.draw(st.sampled_from([d for d in "0123456789" if d != number[position]]))
    assert not luhn_valid(number[:position] + other + number[position + 1:])


# --- IBAN -----------------------------------------------------------------------------

@pytest.mark.parametrize("iban", [
    "GB82WEST12345698765432", "DE89370400440532013000", "FR1420041010050500013M02606",
    "NL91ABNA0417164300", "BE68539007547034", "CH9300762011623852957",
    "IT60X0542811101000000123456", "NO9386011117947", "GB82 WEST 1234 5698 7654 32",
])
def test_iban_accepts_registry_examples(iban: str) -> None:
    """The SWIFT registry's examples pass, in electronic and print format."""
    assert iban_valid(iban)


@pytest.mark.parametrize(("iban", "why"), [
    ("GB83WEST12345698765432", "wrong check digits"),
    ("GB82WEST12345698765433", "changed account digit"),
    ("DE8937040044053201300", "one character short for DE"),
    ("DE893704004405320130000", "one character long for DE"),
    ("XX82WEST12345698765432", "unknown country"),
    ("gb82west12345698765432", "lower case"),
    ("GB82WEST1234569876543!", "punctuation"),
    ("GBXXWEST12345698765432", "letters as check digits"),
    ("", "empty"),
])
def test_iban_rejects_malformed(iban: str, why: str) -> None:
    """Wrong checksum, wrong length for the country, unknown country, bad characters."""
    assert not iban_valid(iban), why


@pytest.mark.parametrize(("country", "length"), [("DE", 21), ("DE", 23), ("GB", 18),
                                                ("NO", 16)])
def test_iban_with_good_check_digits_but_wrong_length_is_invalid(country: str,
                                                                 length: int) -> None:
    """Mod 97 alone is not enough: each country has one IBAN length."""
    iban = iban_with_check(country, "1" * (length - 4))
    assert len(iban) == length
    assert not iban_valid(iban)


@given(st.sampled_from(sorted(IBAN_LENGTHS)), st.data())
def test_iban_with_computed_check_digits_is_valid(country: str, data: st.DataObject) -> None:
    """A BBAN of the country's length with mod-97 check digits passes."""
    bban = data.draw(st.text(alphabet="0123456789", min_size=IBAN_LENGTHS[country] - 4,
                             max_size=IBAN_LENGTHS[country] - 4))
    assert iban_valid(iban_with_check(country, bban))


@given(st.sampled_from(sorted(IBAN_LENGTHS)), st.data())
def test_iban_changing_one_digit_invalidates(country: str, data: st.DataObject) -> None:
    """Mod 97 catches every single-digit substitution in the account number."""
    length = IBAN_LENGTHS[country] - 4
    bban = data.draw(st.text(alphabet="0123456789", min_size=length, max_size=length))
    iban = iban_with_check(country, bban)
    position = data.draw(st.integers(4, len(iban) - 1))
    other = data.draw(st.sampled_from([d for d in "0123456789" if d != iban[position]]))
    assert not iban_valid(iban[:position] + other + iban[position + 1:])


# --- SSN ------------------------------------------------------------------------------

@pytest.mark.parametrize("ssn", ["123-45-6789", "123456789", "078-05-1120", "899-99-9999",
                                 "665-01-0001", "123 45 6789"])
def test_ssn_accepts_valid_areas_groups_serials(ssn: str) -> None:
    """Formatted or bare, an SSN with a valid area, group and serial passes."""
    assert ssn_valid(ssn)


@pytest.mark.parametrize(("ssn", "why"), [
    ("000-12-3456", "area 000"),
    ("666-12-3456", "area 666"),
    ("900-12-3456", "area 900"),
    ("999-12-3456", "area 999"),
    ("123-00-4567", "group 00"),
    ("123-45-0000", "serial 0000"),
    ("123-45-678", "eight digits"),
    ("123-45-67890", "ten digits"),
    ("12a-45-6789", "a letter"),
])
def test_ssn_rejects_area_group_serial_rules(ssn: str, why: str) -> None:
    """The SSA never issues area 000, 666 or 9xx, group 00 or serial 0000."""
    assert not ssn_valid(ssn), why
