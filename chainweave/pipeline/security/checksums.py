"""Check digits that tell a real card number, IBAN or US SSN from a look-alike.

Pure functions on the candidate text; the PII detector calls them on what its patterns
match, so a random 16-digit order id is not reported as a card.
"""

from __future__ import annotations

from typing import Final

__all__ = ["IBAN_LENGTHS", "iban_valid", "luhn_valid", "ssn_valid"]

IBAN_LENGTHS: Final[dict[str, int]] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20,
    "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
    "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
    "YE": 30,
}
"""IBAN length by country code, from the SWIFT IBAN registry (ISO 13616)."""

_SEPARATORS = str.maketrans("", "", " -")
_DIGITS = frozenset("0123456789")
_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)  # a doubled digit's digit sum


def _ascii_digits(text: str) -> bool:
    # str.isdigit() alone also accepts superscripts and other scripts' digits.
    return text.isascii() and text.isdigit()


def luhn_valid(number: str) -> bool:
    """Whether ``number`` passes the Luhn (mod 10) check; spaces and dashes are ignored.

    Anything else that is not an ASCII digit, or fewer than two digits, is invalid.
    """
    digits = number.translate(_SEPARATORS)
    if len(digits) < 2 or not _ascii_digits(digits):
        return False
    kept = sum(map(int, digits[-1::-2]))
    doubled = sum(map(_DOUBLED.__getitem__, map(int, digits[-2::-2])))
    return (kept + doubled) % 10 == 0


def iban_valid(iban: str) -> bool:
    """Whether ``iban`` is a well-formed IBAN: its country's length and ISO 13616 mod 97.

    Spaces (the print format's groups of four) are ignored; letters must be upper case.
    """
    compact = iban.replace(" ", "")
    country, check = compact[:2], compact[2:4]
    if IBAN_LENGTHS.get(country) != len(compact) or not _ascii_digits(check):
        return False
    rearranged = compact[4:] + compact[:4]
    if not all(c in _DIGITS or "A" <= c <= "Z" for c in rearranged):
        return False
    # Letters count as two digits: A = 10 ... Z = 35.
    numeric = "".join(c if c in _DIGITS else str(ord(c) - 55) for c in rearranged)
    return int(numeric) % 97 == 1


def ssn_valid(ssn: str) -> bool:
    """Whether ``ssn`` could be a US Social Security number under the SSA's rules.

    Nine digits, dashes or spaces ignored; the area (first three) is not 000, 666 or
    900-999, the group (next two) is not 00 and the serial (last four) is not 0000.
    """
    digits = ssn.translate(_SEPARATORS)
    if len(digits) != 9 or not _ascii_digits(digits):
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in ("000", "666") or area[0] == "9":
        return False
    return group != "00" and serial != "0000"
