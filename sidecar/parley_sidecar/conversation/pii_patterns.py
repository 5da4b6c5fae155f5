"""The regular expressions of daprd's PII scrubber, as data, and their Python translation.

Source: ``aavaz-ai/pii-scrubber`` @ ``3fa450ab697374f26c7af78ffc6ebc79f2374d04`` (``regex.go``), the
version daprd 1.18 pins (``v0.0.0-20220812094047-3fa450ab6973``). Its patterns were borrowed from
``mingrammer/commonregex`` @ ``16880c65af7225cc9182d5ba383bf5c4ed71af76`` (``commonregex.go``); the
scrubber changed two of them (``PhonePattern``, with a stray leading ``/`` and trailing ``/gm``
copied from JavaScript, and ``StreetAddressPattern``, made case-insensitive).

The ``GO_*`` strings below are byte-for-byte the Go source. :func:`go_to_python` makes them mean
the same thing in Python's ``re``:

* RE2's ``\\d \\w \\b \\W`` are ASCII-only: compiled with ``re.ASCII``.
* RE2's ``\\s`` is ``[\\t\\n\\f\\r ]`` (no vertical tab), Python's ASCII ``\\s`` also takes ``\\v``:
  every ``\\s`` is spelt out.
* RE2's ``(?i)`` folds ``k`` with U+212A KELVIN SIGN and ``s`` with U+017F LONG S, Python's ASCII
  case folding does not; the scrubber hands the case-insensitive patterns a copy of the text in
  which those two characters are replaced by ``k``/``s`` (same length, so offsets are unchanged).
* Leftmost-first alternation and greedy quantifiers behave the same in both engines, so
  ``finditer`` finds exactly the spans of Go's ``FindAllStringIndex`` (checked against the Go
  library on generated texts).

One pattern is rewritten rather than copied: in ``STRICT_LINK`` the nested ``(?:[^\\s()<>]+|…)+``
backtracks exponentially in Python (RE2 never backtracks). ``(?:[^\\s()<>]|…)+`` accepts the same
strings and, because the parenthesised parts can match in only one way, Python's backtracking
reaches the same (longest) end first, so the spans are unchanged.
"""

from __future__ import annotations

import re

__all__ = ["FOLD_TRANSLATION", "GO_PATTERNS", "compile_go", "go_to_python"]

# --- verbatim from pii-scrubber regex.go ---------------------------------------------------------
GO_PHONE = r"""/(?:(?:\+?\d{1,3}[-.\s*]?)?(?:\d\s?){8,11})|(?:(?:\+?\d{1,3}[-.\s*]?)?(?:\(?\d{2,3}\)?[-.\s*]?)?\d{2,3}[-.\s*]?\d{2,6})|(?:(?:(?:\(\+?\d{1,2}\))|(?:\+?\d{1,2}))\s*\d{2}\s*\d{3}\s*\d{4})/gm"""  # noqa: E501
GO_PHONES_WITH_EXTS = r"""(?i)(?:(?:\+?1\s*(?:[.-]\s*)?)?(?:\(\s*(?:[2-9]1[02-9]|[2-9][02-8]1|[2-9][02-8][02-9])\s*\)|(?:[2-9]1[02-9]|[2-9][02-8]1|[2-9][02-8][02-9]))\s*(?:[.-]\s*)?)?(?:[2-9]1[02-9]|[2-9][02-9]1|[2-9][02-9]{2})\s*(?:[.-]\s*)?(?:[0-9]{4})(?:\s*(?:#|x\.?|ext\.?|extension)\s*(?:\d+)?)"""  # noqa: E501
GO_EMAIL = r"""(?i)([A-Za-z0-9!#$%&'*+\/=?^_{|.}~-]+@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)"""  # noqa: E501  # fmt: skip
GO_IPV4 = r"""(?:(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)"""
GO_IPV6 = r"""(?:(?:(?:[0-9A-Fa-f]{1,4}:){7}(?:[0-9A-Fa-f]{1,4}|:))|(?:(?:[0-9A-Fa-f]{1,4}:){6}(?::[0-9A-Fa-f]{1,4}|(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3})|:))|(?:(?:[0-9A-Fa-f]{1,4}:){5}(?:(?:(?::[0-9A-Fa-f]{1,4}){1,2})|:(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3})|:))|(?:(?:[0-9A-Fa-f]{1,4}:){4}(?:(?:(?::[0-9A-Fa-f]{1,4}){1,3})|(?:(?::[0-9A-Fa-f]{1,4})?:(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}))|:))|(?:(?:[0-9A-Fa-f]{1,4}:){3}(?:(?:(?::[0-9A-Fa-f]{1,4}){1,4})|(?:(?::[0-9A-Fa-f]{1,4}){0,2}:(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}))|:))|(?:(?:[0-9A-Fa-f]{1,4}:){2}(?:(?:(?::[0-9A-Fa-f]{1,4}){1,5})|(?:(?::[0-9A-Fa-f]{1,4}){0,3}:(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}))|:))|(?:(?:[0-9A-Fa-f]{1,4}:){1}(?:(?:(?::[0-9A-Fa-f]{1,4}){1,6})|(?:(?::[0-9A-Fa-f]{1,4}){0,4}:(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}))|:))|(?::(?:(?:(?::[0-9A-Fa-f]{1,4}){1,7})|(?:(?::[0-9A-Fa-f]{1,4}){0,5}:(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}))|:)))(?:%.+)?\s*"""  # noqa: E501
GO_IP = GO_IPV4 + "|" + GO_IPV6
GO_CREDIT_CARD = r"""(?:(?:(?:\d{4}[- ]?){3}\d{4}|\d{15,16}))"""
GO_STREET_ADDRESS = r"""(?i)\d{1,4} [\w\s]{1,20}(?:street|st|avenue|ave|road|rd|highway|hwy|square|sq|trail|trl|drive|dr|court|ct|park|parkway|pkwy|circle|cir|boulevard|blvd)\W?"""  # noqa: E501
GO_ZIP_CODE = r"""\b\d{5}(?:[-\s]\d{4})?\b"""
GO_PO_BOX = r"""(?i)P\.? ?O\.? Box \d+"""
GO_SSN = r"""(?:\d{3}-\d{2}-\d{4})"""
GO_ISBN13 = r"""(?:[\d]-?){12}[\dxX]"""
GO_ISBN10 = r"""(?:[\d]-?){9}[\dxX]"""
GO_MAC_ADDRESS = r"""(([a-fA-F0-9]{2}[:-]){5}([a-fA-F0-9]{2}))"""
GO_IBAN = r"""[A-Z]{2}\d{2}[A-Z0-9]{4}\d{7}([A-Z\d]?){0,16}"""
GO_GIT_REPO = r"""((git|ssh|http(s)?)|(git@[\w\.]+))(:(\/\/)?)([\w\.@\:/\-~]+)(\.git)(\/)?"""
GO_STRICT_LINK = r"""(?:(?:https?:\/\/)(?:[a-z0-9.\-]+|www|[a-z0-9.\-])[.](?:[^\s()<>]+|\((?:[^\s()<>]+|(?:\([^\s()<>]+\)))*\))+(?:\((?:[^\s()<>]+|(?:\([^\s()<>]+\)))*\)|[^\s!()\[\]{};:\'".,<>?]))"""  # noqa: E501

# The only deliberate rewrite (see the module docstring): the same language, no nested "+" inside "+".
STRICT_LINK_LINEAR = r"""(?:(?:https?:\/\/)(?:[a-z0-9.\-]+|www|[a-z0-9.\-])[.](?:[^\s()<>]|\((?:[^\s()<>]|\([^\s()<>]+\))*\))+(?:\((?:[^\s()<>]|\([^\s()<>]+\))*\)|[^\s!()\[\]{};:\'".,<>?]))"""  # noqa: E501

GO_PATTERNS: dict[str, str] = {
    "PHONE": GO_PHONE,
    "PHONES_WITH_EXTS": GO_PHONES_WITH_EXTS,
    "EMAIL": GO_EMAIL,
    "IPV4": GO_IPV4,
    "IPV6": GO_IPV6,
    "IP": GO_IP,
    "CREDIT_CARD": GO_CREDIT_CARD,
    "STREET_ADDRESS": GO_STREET_ADDRESS,
    "ZIP_CODE": GO_ZIP_CODE,
    "PO_BOX": GO_PO_BOX,
    "SSN": GO_SSN,
    "ISBN13": GO_ISBN13,
    "ISBN10": GO_ISBN10,
    "MAC_ADDRESS": GO_MAC_ADDRESS,
    "IBAN": GO_IBAN,
    "GIT_REPO": GO_GIT_REPO,
    "STRICT_LINK": GO_STRICT_LINK,
}

FOLD_TRANSLATION = {0x212A: "k", 0x017F: "s"}
"""Characters RE2's ``(?i)`` folds onto ASCII letters and Python's ASCII folding does not."""


def go_to_python(pattern: str) -> str:
    """Rewrite RE2 syntax whose meaning differs in Python (only ``\\s``; see the module docstring)."""
    out: list[str] = []
    in_class = False
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            e = pattern[i + 1]
            if e in "SvVpPhHkKzZ":
                raise ValueError(f"unsupported escape \\{e} in {pattern[:40]!r}")
            if e == "s":
                out.append("\\t\\n\\f\\r " if in_class else "[\\t\\n\\f\\r ]")
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
        elif c == "[":
            in_class = True
            out.append(c)
            i += 1
            # A leading "^" and a leading "]" belong to the class syntax, not its end.
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < n and pattern[i] == "]":
                out.append("]")
                i += 1
            continue
        out.append(c)
        i += 1
    if in_class:
        raise ValueError(f"unterminated class in {pattern[:40]!r}")
    return "".join(out)


def compile_go(pattern: str) -> re.Pattern[str]:
    return re.compile(go_to_python(pattern), re.ASCII)


# --- the same patterns, rewritten to start with a character class --------------------------------
# Python's regex engine skips ahead quickly only when a pattern begins with a single character or
# class; an optional group or a counted repeat at the front makes it try every position. Each
# pattern below accepts exactly the same matches at exactly the same positions as the ``GO_*``
# pattern named by its key (the test suite checks this on generated texts); the comment says how.
FAST_PATTERNS: dict[str, str] = {
    # \d{4}... | \d{15,16}  →  \d (\d{3}... | \d{14,15}): both branches begin with one digit.
    "CREDIT_CARD": r"\d(?:\d{3}[- ]?(?:\d{4}[- ]?){2}\d{4}|\d{14,15})",
    # \d{3} → \d\d{2}
    "SSN": r"\d\d{2}-\d{2}-\d{4}",
    # (?:\d-?){12}[\dxX] → \d-?(?:\d-?){11}[\dxX]
    "ISBN13": r"\d-?(?:\d-?){11}[\dxX]",
    "ISBN10": r"\d-?(?:\d-?){8}[\dxX]",
    # \b\d → \d(?<!\w\d): before a digit, a word boundary means "no word character before it".
    "ZIP_CODE": r"\d(?<!\w\d)\d{4}(?:[-\s]\d{4})?\b",
    # (?i) on P, O, B, O, X spelt out (none of them has a non-ASCII case fold in RE2).
    "PO_BOX": r"[Pp]\.? ?[Oo]\.? [Bb][Oo][Xx] \d+",
    # ([hex]{2}[:-]){5}[hex]{2} with the first character taken out.
    "MAC_ADDRESS": r"[a-fA-F0-9][a-fA-F0-9][:-](?:[a-fA-F0-9]{2}[:-]){4}[a-fA-F0-9]{2}",
    # [A-Z]{2} → [A-Z][A-Z]; ([A-Z\d]?){0,16} without the capture.
    "IBAN": r"[A-Z][A-Z]\d{2}[A-Z0-9]{4}\d{7}(?:[A-Z\d]?){0,16}",
    # \d{1,4} → \d\d{0,3}
    "STREET_ADDRESS": r"(?i)\d\d{0,3} [\w\s]{1,20}(?:street|st|avenue|ave|road|rd|highway|hwy|square|sq|trail|trl|drive|dr|court|ct|park|parkway|pkwy|circle|cir|boulevard|blvd)\W?",  # noqa: E501
}

# Where the digit-based patterns can match. Every character of a PHONE, CREDIT_CARD, SSN, ZIP_CODE or
# IPV4 match (and all but the final X of an ISBN) is a digit or one of "\t\n\f\r ().*+/-"; the only
# exception, PHONE's stray "/gm" tail, follows a "/". So each match lies in a run of those characters
# that contains a digit, starts at most two characters ("(+", "/+") before the run's first digit, and
# ends at most two characters after the run. Searching only those windows finds the same matches.
# None of these patterns matches fewer than four digits, so only runs with four or more are needed.
LONG_NUMERIC_RUN = r"\d(?:[\t\n\f\r ().*+/-]*\d){3}[\d\t\n\f\r ().*+/-]*"
