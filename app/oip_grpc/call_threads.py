"""The threads that run a gRPC worker's calls: a few, plus one more for each call stalled by its client.

grpcio's threaded server hands every call to its executor before the request message has arrived,
and the executor's thread then waits for it (grpc `_server.py`, `_unary_request`). A fixed pool of
N threads is therefore stopped by N clients that send a call's headers and then nothing. A large
pool is not the answer either: with a thread per call in flight, the threads' hand-offs of the GIL
cost more than the calls (16 calls in flight over 2 processes: 4,400 calls/s with 64 threads against
6,000-7,400 with 2, docs/serving.md).

So `CallThreads` keeps `core` threads running calls, and a watcher adds a thread for each one that
has waited longer than `stall_seconds` for its client's request message (the handler says when it
has it: `request_received`), and, when calls are stalled and the queue has stopped moving, one for
each queued call. A stalled call costs a blocked thread, up to `limit` threads in all; fresh calls
keep `core` threads. A thread leaves after a call, or after a second idle, when the pool has more
than `core` threads besides the stalled ones.
However many threads there are, at most `running` handlers run at once (a call's memory is bounded
per running call, docs/serving.md "Memory").
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

# A worker thread's state, as the watcher reads it.
_IDLE = 0
_WAITING = 1  # running a call whose request message has not reached the handler yet
_READY = 2  # the handler has the request and waits for one of the `running` slots
_RUNNING = 3  # the handler runs

logger = logging.getLogger("app.grpc")

_STOP = object()
# A thread idle this long checks whether the pool has more threads than it needs.
_IDLE_SECONDS = 1.0


class _Worker:
    __slots__ = ("holds_slot", "phase", "since", "stalled")

    def __init__(self) -> None:
        self.phase = _IDLE
        self.since = 0.0
        self.stalled = False
        self.holds_slot = False


class CallThreads(Executor):
    """An executor for grpc.server: `core` threads, and more while calls wait on stalled clients;
    `running` of them (default `core`) run handlers at once."""

    def __init__(
        self, core: int, limit: int, stall_seconds: float, running: int | None = None, name: str = "grpc-call"
    ) -> None:
        running = core if running is None else running
        if not 1 <= running <= core <= limit:
            raise ValueError(
                f"CallThreads needs 1 <= running <= core <= limit, got running={running}, core={core}, limit={limit}"
            )
        if not stall_seconds > 0:
            raise ValueError(f"CallThreads needs stall_seconds > 0, got {stall_seconds}")
        self.core = core
        self.limit = limit
        self.stall_seconds = stall_seconds
        self._name = name
        self._tasks: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()  # guards _workers, _threads, _stalled and each worker's `stalled`
        self._workers: set[_Worker] = set()
        self._threads: set[threading.Thread] = set()
        self._stalled = 0
        self._taken = 0  # tasks taken off the queue, for the watcher's "is the queue moving?"
        self._started = 0
        # At most `running` handlers run at once, however many threads there are: the threads of
        # stalled calls whose messages all arrive at once must not run (and hold memory) together.
        self._running = threading.Semaphore(running)
        self._local = threading.local()
        # submit() and shutdown() under one lock, so no call is queued after the threads' stop marks.
        self._submit_lock = threading.Lock()
        self._shutdown = threading.Event()
        self._start_workers(core)
        self._watcher = threading.Thread(target=self._watch, name=f"{name}-watcher", daemon=True)
        self._watcher.start()

    @property
    def threads(self) -> int:
        """Threads running or ready to run calls now."""
        return len(self._workers)

    @property
    def started(self) -> int:
        """Threads started since the pool was made (the core ones included)."""
        return self._started

    @property
    def stalled(self) -> int:
        """Calls that have waited longer than `stall_seconds` for their request message."""
        return self._stalled

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._submit_lock:
            if self._shutdown.is_set():
                raise RuntimeError("cannot schedule a gRPC call after shutdown")
            future: Future[Any] = Future()
            self._tasks.put((future, fn, args, kwargs))
        return future

    def request_received(self) -> None:
        """Called by a handler on a CallThreads thread when its call has its request: waits for one of
        the `running` slots, which the call keeps until it ends."""
        worker = getattr(self._local, "worker", None)
        if worker is None or worker.holds_slot:
            return
        worker.phase = _READY
        self._running.acquire()
        worker.holds_slot = True
        worker.phase = _RUNNING

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._submit_lock:
            first = not self._shutdown.is_set()
            self._shutdown.set()
        if first:
            if cancel_futures:
                while True:
                    try:
                        task = self._tasks.get_nowait()
                    except queue.Empty:
                        break
                    if task is not _STOP:
                        task[0].cancel()
            with self._lock:
                stops = len(self._threads)
            for _ in range(stops):
                self._tasks.put(_STOP)
        if wait:
            self._watcher.join()
            with self._lock:
                threads = list(self._threads)
            for thread in threads:
                thread.join()

    def _start_workers(self, count: int) -> None:
        # Outside self._lock: starting a thread takes tens of µs, and a burst may start thousands.
        for _ in range(count):
            if self._shutdown.is_set():
                return
            worker = _Worker()
            self._started += 1
            thread = threading.Thread(
                target=self._work, args=(worker,), name=f"{self._name}-{self._started}", daemon=True
            )
            with self._lock:
                self._workers.add(worker)
                self._threads.add(thread)
            try:
                thread.start()
            except BaseException:
                with self._lock:
                    self._workers.discard(worker)
                    self._threads.discard(thread)
                raise

    def _work(self, worker: _Worker) -> None:
        self._local.worker = worker
        tasks = self._tasks
        try:
            while True:
                try:
                    task = tasks.get(timeout=_IDLE_SECONDS)
                except queue.Empty:
                    task = None
                if task is _STOP:
                    return
                if task is not None:
                    self._taken += 1
                    self._run(worker, *task)
                    del task
                with self._lock:
                    if worker.stalled:
                        worker.stalled = False
                        self._stalled -= 1
                    # More threads than the calls need: this one leaves (the pool never goes below core).
                    if len(self._workers) > self.core + self._stalled:
                        return
        finally:
            with self._lock:
                if worker.stalled:
                    worker.stalled = False
                    self._stalled -= 1
                self._workers.discard(worker)
                self._threads.discard(threading.current_thread())

    def _run(self, worker: _Worker, future: Future[Any], fn: Callable[..., Any], args: Any, kwargs: Any) -> None:
        if not future.set_running_or_notify_cancel():
            return
        worker.since = time.monotonic()
        worker.phase = _WAITING
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:  # the future carries it, as in ThreadPoolExecutor
            future.set_exception(exc)
        else:
            future.set_result(result)
        finally:
            worker.phase = _IDLE
            if worker.holds_slot:
                worker.holds_slot = False
                self._running.release()

    def _watch(self) -> None:
        # Wakes twice per stall period; costs nothing measurable beside the calls.
        interval = self.stall_seconds / 2
        taken = self._taken
        while not self._shutdown.wait(interval):
            try:
                now = time.monotonic()
                with self._lock:
                    for worker in self._workers:
                        if not worker.stalled and worker.phase == _WAITING and now - worker.since > self.stall_seconds:
                            worker.stalled = True
                            self._stalled += 1
                    wanted = self.core + self._stalled
                    moved, taken = self._taken - taken, self._taken
                    queued = self._tasks.qsize()
                    if self._stalled and moved < queued:
                        # The queue is not moving while calls are stalled: the calls queued may be
                        # stalled too (an attack sends many), so each gets a thread now, rather than a
                        # few more every period, and fresh calls among them are not left behind.
                        wanted += queued
                    missing = min(self.limit, wanted) - len(self._workers)
                if missing > 0:
                    self._start_workers(missing)
            except Exception:
                # A thread that cannot start (memory, a threads limit) must not end the watching.
                logger.exception("gRPC call threads: adding threads failed")
