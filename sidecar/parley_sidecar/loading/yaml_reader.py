"""PyYAML imported without compiling its reader's character class the slow way.

Importing PyYAML compiles ``yaml.reader.Reader.NON_PRINTABLE``, a negated class whose ranges reach
U+10FFFF. Python's regex compiler expands such a class code point by code point over the whole
BMP: ~57 M instructions, a twentieth of a sidecar's start with one Component file
(docs/performance.md, round 8). The same set of characters spelled the other way round (the BMP
code points the class leaves out; every code point past the BMP is printable to YAML) compiles in
~4 M. :func:`prepare` puts that pattern in ``re``'s cache under PyYAML's spelling just before the
process first imports PyYAML, so the reader's ``re.compile`` finds it there. The reader then
refuses the same characters at the same positions with the same messages
(``tests/sidecar/loading/test_yaml_reader.py`` compares the two patterns over every code point,
and fails if PyYAML ever spells its class differently, which would make this a no-op).
"""

from __future__ import annotations

import re
import sys

__all__ = ["NON_PRINTABLE", "PYYAML_NON_PRINTABLE", "prepare"]

PYYAML_NON_PRINTABLE = "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
"""``yaml/reader.py``'s pattern (PyYAML 5 and 6), character for character."""

NON_PRINTABLE = "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]"
"""The code points :data:`PYYAML_NON_PRINTABLE` matches, listed instead of left out."""


def prepare() -> None:
    """Call before ``import yaml``; does nothing once PyYAML is imported, or on a Python whose
    ``re`` keeps no such cache (PyYAML then compiles its own spelling, as it always did)."""
    if "yaml.reader" in sys.modules:
        return
    cache = getattr(re, "_cache", None)
    if isinstance(cache, dict):
        cache[str, PYYAML_NON_PRINTABLE, 0] = re.compile(NON_PRINTABLE)
