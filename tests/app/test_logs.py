"""The JSON log configuration: access lines are batched, other lines are written at once."""

from __future__ import annotations

import io
import json
import logging

from app.logs import (
    ACCESS_LOGGER,
    AccessLog,
    BatchedStreamHandler,
    JsonFormatter,
    flush_batched_logs,
    logging_config,
)


def test_access_lines_are_written_in_batches_and_at_flush() -> None:
    stream = io.StringIO()
    handler = BatchedStreamHandler(stream, max_bytes=1000)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.batched")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        logger.info("request", {"status": 200, "request_id": "a"})
        assert stream.getvalue() == ""  # held until a flush or a full batch
        handler.flush()
        lines = stream.getvalue().splitlines()
        assert [json.loads(line)["request_id"] for line in lines] == ["a"]
        for number in range(20):  # about 2.5 KB: written in batches of 1,000 bytes without a flush
            logger.info("request", {"status": 200, "request_id": f"n{number}"})
        written = [json.loads(line)["request_id"] for line in stream.getvalue().splitlines()]
        assert 1 < len(written) < 21 and written == ["a"] + [f"n{n}" for n in range(len(written) - 1)]
        handler.flush()
        assert len(stream.getvalue().splitlines()) == 21
    finally:
        logger.removeHandler(handler)


def test_the_access_logger_alone_is_batched_and_flush_batched_logs_writes_it() -> None:
    config = logging_config("INFO")
    assert config["loggers"][ACCESS_LOGGER]["handlers"] == ["access"]
    assert config["handlers"]["access"]["()"] is BatchedStreamHandler
    # Everything else (errors, granian's lines) goes straight to stderr.
    assert config["handlers"]["stderr"]["class"] == "logging.StreamHandler"
    stream = io.StringIO()
    handler = BatchedStreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger(ACCESS_LOGGER)
    saved = access.handlers[:], access.propagate, access.level
    access.handlers[:] = [handler]
    access.propagate = False
    access.setLevel(logging.INFO)
    try:
        access.info("request", {"status": 200})
        assert stream.getvalue() == ""
        flush_batched_logs()
        assert json.loads(stream.getvalue())["status"] == 200
    finally:
        access.handlers[:], access.propagate, _ = saved
        access.setLevel(saved[2])


def _access_logger(name: str, handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def test_access_log_lines_are_the_lines_logging_writes_and_keep_their_order() -> None:
    """AccessLog's deferred lines (formatted when the batch is written) equal what logger.info gives."""
    stream = io.StringIO()
    handler = BatchedStreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = _access_logger("test.access.deferred", handler)
    access = AccessLog(logger)
    fields = {"request_id": "r1", "status": 200, "duration_ms": 0.5, "remote_addr": None, "big": 2**70}
    access.request(dict(fields))
    logger.info("request", dict(fields, request_id="r2"))
    access.request(dict(fields, request_id="r3"))
    assert stream.getvalue() == ""
    handler.flush()
    deferred, logged, last = (json.loads(line) for line in stream.getvalue().splitlines())
    assert [deferred["request_id"], logged["request_id"], last["request_id"]] == ["r1", "r2", "r3"]
    for line in (deferred, last):
        assert line.keys() == logged.keys()
        assert {k: v for k, v in line.items() if k not in ("time", "request_id")} == \
            {k: v for k, v in logged.items() if k not in ("time", "request_id")}
    assert deferred["big"] == 2**70 and deferred["logger"] == "test.access.deferred" and deferred["level"] == "INFO"


def test_access_log_goes_through_logging_when_configured_otherwise() -> None:
    """A filter (or another handler, or propagation) must see every line: no deferred shortcut then."""
    stream = io.StringIO()
    handler = BatchedStreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = _access_logger("test.access.filtered", handler)
    seen: list[str] = []
    logger.addFilter(lambda record: seen.append(record.args["request_id"]) or record.args["request_id"] != "hidden")
    access = AccessLog(logger)
    access.request({"request_id": "shown"})
    access.request({"request_id": "hidden"})
    handler.flush()
    assert seen == ["shown", "hidden"]
    assert [json.loads(line)["request_id"] for line in stream.getvalue().splitlines()] == ["shown"]
    logger.setLevel(logging.WARNING)
    access.request({"request_id": "below the level"})
    handler.flush()
    assert len(stream.getvalue().splitlines()) == 1


def test_deferred_access_lines_are_written_in_batches_too() -> None:
    stream = io.StringIO()
    handler = BatchedStreamHandler(stream, max_bytes=2000)
    handler.setFormatter(JsonFormatter())
    access = AccessLog(_access_logger("test.access.batches", handler))
    for number in range(10):
        access.request({"request_id": f"n{number}"})
    written = [json.loads(line)["request_id"] for line in stream.getvalue().splitlines()]
    assert 0 < len(written) < 10 and written == [f"n{n}" for n in range(len(written))]
    handler.flush()
    assert len(stream.getvalue().splitlines()) == 10


def test_a_batched_handler_with_another_formatter_still_writes() -> None:
    """Only AccessLog's deferred lines need the JsonFormatter; plain records work with any formatter."""
    stream = io.StringIO()
    handler = BatchedStreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = _access_logger("test.access.plain", handler)
    logger.info("hello")
    AccessLog(logger).request({"request_id": "x"})  # not deferred: the formatter is not the JsonFormatter
    handler.flush()
    assert stream.getvalue().splitlines() == ["INFO hello", "INFO request"]
