"""Slow and stalled clients against the real server: they cost sockets, never the service.

Bounded and local: 1,000 connections stall in their headers and 1,000 in their bodies, on 127.0.0.1,
while a fresh client keeps probing readiness and running inference. Timings are reported, and
asserted only against generous bounds (the machine may be busy).
"""

from __future__ import annotations

import selectors
import socket
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from app.training import TrainedModel
from tests.app.test_serve import INFER_BODY, Server, server_env, start_server

STALLED_IN_HEADERS = 1000
STALLED_IN_BODY = 1000
TIMEOUT_SECONDS = 3
# Generous: a stalled connection must be closed by then (the documented timeout is TIMEOUT_SECONDS).
CLOSE_BOUND_SECONDS = 90


@pytest.fixture
def server(trained_models: dict[str, TrainedModel], tmp_path: Path) -> Iterator[Server]:
    model = trained_models["iris-logreg"]
    env = server_env(
        model.path,
        tmp_path,
        MODEL_SHA256=model.sha256,
        HEADER_TIMEOUT=str(TIMEOUT_SECONDS),
        BODY_TIMEOUT=str(TIMEOUT_SECONDS),
        ACCESS_LOG="false",
    )
    server = start_server(env, tmp_path)
    yield server
    server.stop()


def open_stalled(server: Server, count: int, first_bytes: bytes) -> list[socket.socket]:
    host, port = server.url.removeprefix("http://").split(":")
    sockets = []
    for _ in range(count):
        sock = socket.create_connection((host, int(port)), timeout=30)
        sock.sendall(first_bytes)
        sock.setblocking(False)
        sockets.append(sock)
    return sockets


def wait_closed(sockets: list[socket.socket], bound: float) -> tuple[int, list[bytes]]:
    """Read every socket until the server closes it; returns (how many closed, what each received)."""
    selector = selectors.DefaultSelector()
    received: dict[socket.socket, bytes] = {}
    for sock in sockets:
        selector.register(sock, selectors.EVENT_READ)
        received[sock] = b""
    closed = 0
    deadline = time.monotonic() + bound
    while closed < len(sockets) and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=1):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if data:
                received[sock] += data
                continue
            selector.unregister(sock)
            closed += 1
    selector.close()
    for sock in sockets:
        sock.close()
    return closed, list(received.values())


def test_stalled_clients_do_not_block_fresh_ones_and_are_closed(server: Server) -> None:
    started = time.monotonic()
    in_headers = open_stalled(server, STALLED_IN_HEADERS, b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    in_body = open_stalled(
        server,
        STALLED_IN_BODY,
        b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n{\"inputs\": [",
    )
    opened = time.monotonic() - started

    latencies = []
    with requests.Session() as fresh:
        for index in range(100):
            begin = time.monotonic()
            if index % 2:
                response = fresh.post(f"{server.url}/v2/models/iris/infer", json=INFER_BODY, timeout=30)
            else:  # a new connection each time: accepting still works with 2,000 connections open
                response = requests.get(f"{server.url}/v2/health/ready", timeout=30)
            latencies.append(time.monotonic() - begin)
            assert response.status_code == 200, response.text
    latencies.sort()
    p99_ms = latencies[98] * 1000
    print(
        f"\n{STALLED_IN_HEADERS + STALLED_IN_BODY} stalled connections opened in {opened:.1f} s; fresh client: "
        f"median {statistics.median(latencies) * 1000:.1f} ms, p99 {p99_ms:.1f} ms over {len(latencies)} requests"
    )
    assert latencies[-1] < 10, "a fresh client waited behind the stalled ones"

    closed_headers, _ = wait_closed(in_headers, CLOSE_BOUND_SECONDS)
    closed_body, answers = wait_closed(in_body, CLOSE_BOUND_SECONDS)
    print(f"closed {closed_headers + closed_body} stalled connections {time.monotonic() - started:.1f} s after opening")
    assert closed_headers == STALLED_IN_HEADERS
    assert closed_body == STALLED_IN_BODY
    # A stalled body is answered, in JSON, before its connection is closed.
    assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in answers)
    assert all(b'{"error":"request body did not arrive within BODY_TIMEOUT' in answer for answer in answers)
    # The service is unharmed afterwards.
    assert requests.get(f"{server.url}/v2/health/ready", timeout=10).status_code == 200


def test_an_idle_keep_alive_connection_is_closed_after_the_header_timeout(server: Server) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
    sock.setblocking(False)
    closed, answers = wait_closed([sock], CLOSE_BOUND_SECONDS)
    assert closed == 1
    assert answers[0].startswith(b"HTTP/1.1 200 ")  # answered, then closed once idle


def test_a_stalled_chunked_body_gets_408(server: Server) -> None:
    sock = open_stalled(
        server,
        1,
        b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n5\r\n{\"inp\r\n",
    )
    closed, answers = wait_closed(sock, CLOSE_BOUND_SECONDS)
    assert closed == 1
    assert answers[0].startswith(b"HTTP/1.1 408 ")
