"""JSON logs, one object per line, so the cluster's log pipeline needs no parsing rules."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

import orjson

# LogRecord attributes that are not user fields passed with `extra=`.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object: time, level, logger, pid, message, then the record's fields.

    Fields come from `extra=` or, cheaper for hot paths, from a single dict argument:
    `logger.info("request", {"status": 200})` (the message then takes no %-arguments).
    """

    def __init__(self) -> None:
        super().__init__()
        # orjson for the hot access log; the stdlib encoder (built once) takes what orjson refuses
        # (integers beyond 64 bits, say), so a field's value never costs the line.
        self._fallback_encode = json.JSONEncoder(default=str, separators=(",", ":"), ensure_ascii=False).encode
        self._second = -1
        self._second_text = ""

    def _time(self, created: float) -> str:
        second = int(created)
        if second != self._second:  # formatting is serialised by the handler's lock
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._second_text}.{int((created - second) * 1000):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        fields = record.args if isinstance(record.args, dict) else None
        entry: dict[str, Any] = {
            "time": self._time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": str(record.msg) if fields is not None else record.getMessage(),
        }
        if fields is not None:
            entry.update(fields)
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        try:
            return orjson.dumps(entry, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except orjson.JSONEncodeError:
            return self._fallback_encode(entry)


def logging_config(level: str) -> dict[str, Any]:
    """A dictConfig for the app's and granian's loggers, all writing JSON lines to stderr."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": sys.stderr}},
        "loggers": {
            "app": {"level": level, "handlers": ["stderr"], "propagate": False},
            "_granian": {"level": level, "handlers": ["stderr"], "propagate": False},
            # Requests are logged by the app with the request id; granian's access log stays off.
            "granian.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
        },
        "root": {"level": "WARNING", "handlers": ["stderr"]},
    }


def configure_logging(level: str) -> None:
    import logging.config

    # Per the logging HOWTO's optimisation notes: skip caller frame lookup and thread/process-name
    # collection, none of which the JSON lines include (the access log runs on every request).
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    logging.config.dictConfig(logging_config(level))
