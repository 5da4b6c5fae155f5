"""The checksums that tell a card number, an ISBN or an IBAN from a number of the same shape."""

from __future__ import annotations

__all__ = ["iban_ok", "isbn10_ok", "isbn13_ok", "luhn_ok"]


def luhn_ok(digits: str) -> bool:
    """The Luhn check of card numbers (ASCII digits only)."""
    if not (digits.isascii() and digits.isdigit()):
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def isbn10_ok(chars: str) -> bool:
    """ISBN-10: 9 digits and a check character (digit or X); weighted sum 10..1 divisible by 11."""
    if len(chars) != 10 or not chars.isascii() or not chars[:9].isdigit():
        return False
    last = chars[9]
    if last in "xX":
        check = 10
    elif last.isdigit():
        check = ord(last) - 48
    else:
        return False
    total = sum((10 - i) * (ord(c) - 48) for i, c in enumerate(chars[:9])) + check
    return total % 11 == 0


def isbn13_ok(chars: str) -> bool:
    """ISBN-13: EAN-13 check digit, and the 978/979 prefix every ISBN-13 carries."""
    if len(chars) != 13 or not chars.isascii() or not chars.isdigit() or chars[:3] not in ("978", "979"):
        return False
    total = sum((3 if i % 2 else 1) * (ord(c) - 48) for i, c in enumerate(chars))
    return total % 10 == 0


def iban_ok(compact: str) -> bool:
    """ISO 13616 mod-97 check (country letters, 2 check digits, 11–30 alphanumerics)."""
    if not (15 <= len(compact) <= 34 and compact.isascii() and compact.isalnum()):
        return False
    if not (compact[:2].isalpha() and compact[2:4].isdigit()):
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1

