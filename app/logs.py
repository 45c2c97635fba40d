"""JSON logs, one object per line, so the cluster's log pipeline needs no parsing rules."""

from __future__ import annotations

import json
import logging
import os
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
        entry = self._head(
            record.created, record.levelname, record.name, record.process,
            str(record.msg) if fields is not None else record.getMessage(),
        )
        if fields is not None:
            entry.update(fields)
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return self._encode(entry)

    def format_fields(self, created: float, level: str, logger: str, pid: int | None, message: str,
                      fields: dict[str, Any]) -> str:
        """The line `format` gives a record of `logger.info(message, fields)` made at `created`."""
        entry = self._head(created, level, logger, pid, message)
        entry.update(fields)
        return self._encode(entry)

    def _head(self, created: float, level: str, logger: str, pid: int | None, message: str) -> dict[str, Any]:
        return {"time": self._time(created), "level": level, "logger": logger, "pid": pid, "message": message}

    def _encode(self, entry: dict[str, Any]) -> str:
        try:
            return orjson.dumps(entry, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except orjson.JSONEncodeError:
            return self._fallback_encode(entry)


# What a deferred access line counts towards a batch's max_bytes before it is formatted: about twice
# a real line, so a batch holds at most 128 of them (64 KiB). They are formatted on the thread of the
# request that fills the batch; 128 take a few tenths of a millisecond, which that request waits.
_DEFERRED_LINE_BYTES = 512


class BatchedStreamHandler(logging.StreamHandler):
    """A StreamHandler that writes its lines in batches: when `max_bytes` have gathered, and at `flush()`.

    For the access log, one line per request: a write() system call per line cost more CPU than
    the rest of the line (docs/serving.md). The serving workers flush it every FLUSH_SECONDS and when
    they stop (flush_batched_logs); a worker that crashes loses at most that much of its access log.
    AccessLog hands it lines as their time and fields (`defer`), formatted when the batch is written.
    """

    def __init__(self, stream: Any = None, max_bytes: int = 64 * 1024) -> None:
        super().__init__(stream)
        self.max_bytes = max_bytes
        # Formatted lines and deferred ones (created, logger, message, fields), in arrival order.
        self._lines: list[str | tuple[float, str, str, dict[str, Any]]] = []
        self._size = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        # Handler.handle holds the handler's lock around emit.
        self._lines.append(line)
        self._size += len(line) + 1
        if self._size >= self.max_bytes:
            self._write()

    def defer(self, created: float, logger: str, message: str, fields: dict[str, Any]) -> None:
        """An INFO line of `logger`, formatted (by the JsonFormatter) when the batch is written."""
        with self.lock:  # type: ignore[union-attr]
            self._lines.append((created, logger, message, fields))
            self._size += _DEFERRED_LINE_BYTES
            if self._size >= self.max_bytes:
                self._write()

    def _write(self) -> None:
        if not self._lines:
            return
        lines, self._lines, self._size = self._lines, [], 0
        # Deferred lines were made in this process (a batch is per process); getpid() is a system call.
        pid = os.getpid()
        try:
            # format_fields is the JsonFormatter's: only AccessLog defers lines, and only to a handler
            # with that formatter; a handler with any other formatter holds formatted lines alone.
            text = "\n".join(
                line if isinstance(line, str)
                else self.formatter.format_fields(line[0], "INFO", line[1], pid, line[2], line[3])  # type: ignore[union-attr]
                for line in lines
            ) + "\n"
        except Exception:
            self.handleError(logging.makeLogRecord({"msg": "batched log lines could not be formatted"}))
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except Exception:
            # As StreamHandler: a closed or broken stream must not take the request down with it.
            self.handleError(logging.makeLogRecord({"msg": "batched log lines lost"}))

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write()


def flush_batched_logs() -> None:
    """Write the access log lines gathered so far (called from the workers' timers and at stop)."""
    for handler in logging.getLogger(ACCESS_LOGGER).handlers:
        if isinstance(handler, BatchedStreamHandler):
            handler.flush()


# The logger of the one-line-per-request access log (REST and gRPC); its lines are batched.
ACCESS_LOGGER = "app.access"


class AccessLog:
    """The access log: `request(fields)` logs one INFO line "request" with `fields` on ACCESS_LOGGER.

    With the service's logging configuration (the logger's one handler a BatchedStreamHandler with
    the JsonFormatter), the line is handed to the handler as its time and fields and formatted when
    the batch is written: a LogRecord and its formatting on every request cost about a sixth of a
    one-row infer's CPU in the worker (docs/serving.md). The line is the same. Any other
    configuration (filters, other handlers, propagation) goes through `logging` as usual.
    """

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger(ACCESS_LOGGER)

    def request(self, fields: dict[str, Any]) -> None:
        logger = self.logger
        if not logger.isEnabledFor(logging.INFO):
            return
        handlers = logger.handlers
        if len(handlers) == 1 and not logger.filters and not logger.propagate:
            handler = handlers[0]
            if (type(handler) is BatchedStreamHandler and not handler.filters and handler.level <= logging.INFO
                    and type(handler.formatter) is JsonFormatter):
                handler.defer(time.time(), logger.name, "request", fields)
                return
        logger.info("request", fields)


def logging_config(level: str) -> dict[str, Any]:
    """A dictConfig for the app's and granian's loggers, all writing JSON lines to stderr."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": sys.stderr},
            "access": {"()": BatchedStreamHandler, "formatter": "json", "stream": sys.stderr},
        },
        "loggers": {
            "app": {"level": level, "handlers": ["stderr"], "propagate": False},
            ACCESS_LOGGER: {"level": level, "handlers": ["access"], "propagate": False},
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
