"""Log lines in daprd's two shapes: logfmt-like text, or one JSON object per line (``--log-as-json``).

Same keys as daprd (``time level msg app_id instance scope type ver``) so log pipelines built for
daprd parse parley's lines too. Secrets never reach a log call in the first place; this module
only formats.
"""

from __future__ import annotations

import datetime
import json
import logging
import socket
import sys

from parley_sidecar.settings import RUNTIME_VERSION

__all__ = ["setup"]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "warning": logging.WARNING,
           "error": logging.ERROR, "fatal": logging.CRITICAL}


class _Formatter(logging.Formatter):
    def __init__(self, app_id: str, as_json: bool) -> None:
        super().__init__()
        self.app_id, self.as_json = app_id, as_json
        self.instance = socket.gethostname()

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        when = datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(timespec="microseconds")
        fields = {
            "time": when.replace("+00:00", "Z"),
            "level": "warning" if record.levelno == logging.WARNING else record.levelname.lower(),
            "msg": message,
            "app_id": self.app_id,
            "instance": self.instance,
            "scope": record.name,
            "type": "log",
            "ver": RUNTIME_VERSION,
        }
        if self.as_json:
            return json.dumps(fields, ensure_ascii=False)
        return " ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in fields.items())


def level_of(name: str) -> int:
    try:
        return _LEVELS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown log level {name!r}: use debug, info, warn, error or fatal") from None


def setup(level: str, *, as_json: bool, app_id: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_Formatter(app_id, as_json))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level_of(level))
    # aiohttp's access log would duplicate our metrics and print client addresses; keep it quiet.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
