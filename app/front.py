"""The HTTP edge: an RSGI application for granian that hands only complete requests to the WSGI app.

granian (Rust, hyper) owns the connections: it parses request lines and headers without Python,
closes connections whose headers do not arrive within the header timeout, and caps the connections
per worker (its backpressure). Its WSGI interface would call the app as soon as the headers are in
and let the app read the body from a blocking stream with no timeout, so a client that stalls in
the body holds a Python thread for as long as it likes. Here the body is awaited on the worker's
event loop instead, bounded in time (BODY_TIMEOUT, 408) and size (MAX_REQUEST_BYTES, 413, chunked
or not); only then is the Flask app called, with the body in memory. A stalled client costs a
coroutine and a socket, never a thread.

With WEB_THREADS=1 (the default) the WSGI app runs on the event loop's thread, one request at a
time per worker: the cheapest path (a hand-off to a thread costs about as much CPU as a small
inference), and a worker holds at most one request's peak memory. With WEB_THREADS=N > 1 it runs on
a pool of N threads, so a long inference (onnxruntime releases the GIL) does not hold up the short
requests behind it in the same worker, for N requests' memory. See docs/serving.md.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from app.v2.codec import JSON, error_body

logger = logging.getLogger("app.front")

# How often overdue body reads are looked for: a stalled body is answered within this after BODY_TIMEOUT.
_SWEEP_SECONDS = 0.5

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# Headers of the connection, not of the request; the body arrives de-chunked.
_HOP_BY_HOP = frozenset({"transfer-encoding", "connection", "keep-alive", "te", "trailer", "upgrade"})


class RequestBodyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class HttpFront:
    """RSGI callable (`__rsgi__`) serving a WSGI app; built once before the workers fork."""

    def __init__(
        self,
        wsgi_app: WsgiApp,
        *,
        max_request_bytes: int,
        body_timeout: float,
        threads: int,
        on_worker_start: Callable[[], None] | None = None,
        on_worker_stop: Callable[[], None] | None = None,
        drain_timeout: float = 25.0,
    ) -> None:
        self.wsgi_app = wsgi_app
        self.max_request_bytes = max_request_bytes
        self.body_timeout = body_timeout
        self.threads = threads
        self._executor: ThreadPoolExecutor | None = None
        self._body_reads: dict[int, tuple[float, Any]] = {}
        self.drain_timeout = drain_timeout
        self._on_worker_start = on_worker_start
        self._on_worker_stop = on_worker_stop
        self._loop: asyncio.AbstractEventLoop | None = None
        self.in_flight = 0
        self._base_environ: dict[str, Any] = {
            "SCRIPT_NAME": "",
            "wsgi.version": (1, 0),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": threads > 1,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            # The body is complete and in memory: Werkzeug may read it to the end.
            "wsgi.input_terminated": True,
        }

    # --- worker lifecycle (granian calls these in each worker process) ---------------------------

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        if self.threads > 1:
            # Made in the worker: threads do not survive fork().
            self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="app")
        loop.call_later(_SWEEP_SECONDS, self._sweep_body_reads)
        if self._on_worker_start is not None:
            self._on_worker_start()

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        # granian calls this once the worker got its stop signal and stopped accepting; requests
        # already running keep the loop busy until they have answered (bounded by drain_timeout).
        deadline = time.monotonic() + self.drain_timeout
        while self.in_flight and time.monotonic() < deadline:
            loop.run_until_complete(asyncio.sleep(0.01))
        # Let the last responses leave the socket buffers before the process exits.
        loop.run_until_complete(asyncio.sleep(0.05))
        if self.in_flight:
            logger.warning("worker stopping with requests still running", extra={"in_flight": self.in_flight})
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        if self._on_worker_stop is not None:
            self._on_worker_stop()

    # --- requests ---------------------------------------------------------------------------------

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        if scope.proto != "http":
            return
        self.in_flight += 1
        try:
            try:
                body = await self._read_body(scope, protocol)
            except RequestBodyError as exc:
                payload = error_body(exc.message)
                # The rest of the body is unread: the connection cannot carry another request.
                protocol.response_bytes(
                    exc.status,
                    [("content-type", JSON), ("content-length", str(len(payload))), ("connection", "close")],
                    payload,
                )
                return
            if self._executor is None:
                status, headers, payload = self._call_app(scope, body)
            else:
                status, headers, payload = await self._loop.run_in_executor(  # type: ignore[union-attr]
                    self._executor, self._call_app, scope, body
                )
            protocol.response_bytes(status, headers, payload)
        finally:
            self.in_flight -= 1

    async def _read_body(self, scope: Any, protocol: Any) -> bytes:
        headers = scope.headers
        length_header = headers.get("content-length")
        chunked = "chunked" in (headers.get("transfer-encoding") or "").lower()
        if length_header is None and not chunked:
            return b""  # HTTP/1.1: a request with neither header has no body
        if not chunked:
            try:
                length = int(length_header)
            except ValueError:
                raise RequestBodyError(400, f"Content-Length {length_header!r} is not an integer") from None
            if length > self.max_request_bytes:
                raise RequestBodyError(
                    413, f"request body exceeds MAX_REQUEST_BYTES ({self.max_request_bytes} bytes)"
                )
            if length == 0:
                return b""
            # The server stops the body at Content-Length, so reading it whole is bounded.
            return await self._sized_body(protocol)
        try:
            return await asyncio.wait_for(self._chunked_body(protocol), self.body_timeout)
        except TimeoutError:
            raise self._timed_out() from None

    async def _sized_body(self, protocol: Any) -> bytes:
        # Timed by the sweeper rather than asyncio.wait_for: no task and no timer per request.
        reading = protocol()
        key = id(reading)
        self._body_reads[key] = (time.monotonic() + self.body_timeout, reading)
        try:
            return await reading
        except asyncio.CancelledError:
            raise self._timed_out() from None
        finally:
            del self._body_reads[key]

    def _sweep_body_reads(self) -> None:
        """Cancel body reads past their deadline (so their clients get 408), once a second."""
        now = time.monotonic()
        for deadline, reading in list(self._body_reads.values()):
            if deadline <= now:
                reading.cancel()
        self._loop.call_later(_SWEEP_SECONDS, self._sweep_body_reads)  # type: ignore[union-attr]

    async def _chunked_body(self, protocol: Any) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in protocol:
            size += len(chunk)
            if size > self.max_request_bytes:
                raise RequestBodyError(
                    413, f"request body exceeds MAX_REQUEST_BYTES ({self.max_request_bytes} bytes)"
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _timed_out(self) -> RequestBodyError:
        return RequestBodyError(408, f"request body did not arrive within BODY_TIMEOUT ({self.body_timeout:g} s)")

    def _environ(self, scope: Any, body: bytes) -> dict[str, Any]:
        environ = self._base_environ.copy()
        path = scope.path
        server_host, _, server_port = scope.server.rpartition(":")
        environ.update(
            {
                "REQUEST_METHOD": scope.method,
                # PEP 3333: the path's bytes as latin-1 (the server gives it percent-decoded, as text).
                "PATH_INFO": path if path.isascii() else path.encode("utf-8").decode("latin-1"),
                "QUERY_STRING": scope.query_string,
                "SERVER_NAME": server_host.strip("[]"),
                "SERVER_PORT": server_port,
                "SERVER_PROTOCOL": f"HTTP/{scope.http_version}",
                "REMOTE_ADDR": scope.client.rpartition(":")[0].strip("[]"),
                "wsgi.url_scheme": scope.scheme,
                "wsgi.input": io.BytesIO(body),
                "CONTENT_LENGTH": str(len(body)),
            }
        )
        for name, value in scope.headers.items():
            if name in _HOP_BY_HOP or name == "content-length":
                continue
            if name == "content-type":
                environ["CONTENT_TYPE"] = value
                continue
            key = "HTTP_" + name.upper().replace("-", "_")
            # Repeated headers are joined, as RFC 9110 section 5.3 allows.
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ

    def _call_app(self, scope: Any, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        response: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., Any]:
            response[:] = [status, headers]
            return _no_write

        result = self.wsgi_app(self._environ(scope, body), start_response)
        try:
            payload = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status, headers = response
        return int(status[:3]), headers, payload


def _no_write(data: bytes) -> None:
    raise RuntimeError("the WSGI write() callable is not supported; return the body instead")
