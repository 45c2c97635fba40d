"""The JSON log configuration: access lines are batched, other lines are written at once."""

from __future__ import annotations

import io
import json
import logging

from app.logs import ACCESS_LOGGER, BatchedStreamHandler, JsonFormatter, flush_batched_logs, logging_config


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
