"""Go duration strings (``10m``, ``1h30m``, ``500ms``), as Dapr metadata and CLI flags use them.

Dapr reads a plain integer as seconds (dapr/kit ``metadata/duration.go``); we do the same.
Sizes (``4Mi``) are parsed here too, as daprd's ``--max-body-size`` uses Kubernetes quantities.
"""

from __future__ import annotations

import re

__all__ = ["format_go_duration", "parse_duration", "parse_size"]

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(Ki|Mi|Gi|Ti|k|K|M|G|T|B)?")
_SIZE_UNITS = {
    None: 1, "B": 1, "k": 1000, "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4,
    "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4,
}


def parse_duration(text: str) -> float:
    """Return seconds; raise ValueError with a message that says what is accepted."""
    s = text.strip()
    if not s:
        raise ValueError("empty duration")
    if re.fullmatch(r"\d+", s):
        return float(s)
    sign = 1.0
    if s[0] in "+-":
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(s):
        m = _PART.match(s, pos)
        if m is None:
            raise ValueError(f"invalid duration {text!r}: use a number of seconds or Go form like 30s, 10m, 1h30m")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return sign * total


def format_go_duration(seconds: float) -> str:
    """Go's ``time.Duration.String()`` for whole seconds and above, e.g. 86400 → ``24h0m0s``."""
    if seconds == 0:
        return "0s"
    neg = seconds < 0
    seconds = abs(seconds)
    if seconds < 1:
        for unit, scale in (("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
            if seconds >= scale:
                value = f"{seconds / scale:.9f}".rstrip("0").rstrip(".")
                return ("-" if neg else "") + value + unit
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    sec_text = f"{secs:.9f}".rstrip("0").rstrip(".") + "s"
    out = ""
    if hours:
        out = f"{int(hours)}h{int(minutes)}m{sec_text}"
    elif minutes:
        out = f"{int(minutes)}m{sec_text}"
    else:
        out = sec_text
    return ("-" if neg else "") + out


def parse_size(text: str) -> int:
    """``4Mi`` → 4194304; a bare number is bytes."""
    m = _SIZE.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"invalid size {text!r}: use bytes or a quantity like 4Mi, 512Ki")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2)])
