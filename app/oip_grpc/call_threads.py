"""The threads that run a gRPC worker's calls: a few, plus one more for each call stalled by its client.

grpcio's threaded server hands every call to its executor before the request message has arrived,
and the executor's thread then waits for it (grpc `_server.py`, `_unary_request`). A fixed pool of
N threads is therefore stopped by N clients that send a call's headers and then nothing. A large
pool is not the answer either: with a thread per call in flight, the threads' hand-offs of the GIL
cost more than the calls (16 calls in flight over 2 processes: 4,400 calls/s with 64 threads against
6,000-7,400 with 2, docs/serving.md).

So `CallThreads` keeps `core` threads running calls, and a watcher adds a thread for each one that
has waited longer than `stall_seconds` for its client's request message (the handler says when it
has it: `request_received`), and, while any call is stalled, one for each queued call. A stalled
call costs a blocked thread, up to `limit` threads in all; fresh calls keep `core` threads. A
thread leaves after a call when the pool has more than `core` threads besides the stalled ones.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

# A worker thread's state, as the watcher reads it.
_IDLE = 0
_WAITING = 1  # running a call whose request message has not reached the handler yet
_RUNNING = 2  # the handler has the request

_STOP = object()
# A thread idle this long checks whether the pool has more threads than it needs.
_IDLE_SECONDS = 1.0


class _Worker:
    __slots__ = ("phase", "since", "stalled")

    def __init__(self) -> None:
        self.phase = _IDLE
        self.since = 0.0
        self.stalled = False


class CallThreads(Executor):
    """An executor for grpc.server: `core` threads, and more while calls wait on stalled clients."""

    def __init__(self, core: int, limit: int, stall_seconds: float, name: str = "grpc-call") -> None:
        if not 1 <= core <= limit:
            raise ValueError(f"CallThreads needs 1 <= core <= limit, got core={core}, limit={limit}")
        self.core = core
        self.limit = limit
        self.stall_seconds = stall_seconds
        self._name = name
        self._tasks: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._workers: set[_Worker] = set()
        self._stalled = 0
        self._local = threading.local()
        self._shutdown = threading.Event()
        self._threads: list[threading.Thread] = []
        with self._lock:
            for _ in range(core):
                self._start_worker()
        self._watcher = threading.Thread(target=self._watch, name=f"{name}-watcher", daemon=True)
        self._watcher.start()

    @property
    def threads(self) -> int:
        """Threads running or ready to run calls now."""
        return len(self._workers)

    @property
    def stalled(self) -> int:
        """Calls that have waited longer than `stall_seconds` for their request message."""
        return self._stalled

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if self._shutdown.is_set():
            raise RuntimeError("cannot schedule a gRPC call after shutdown")
        future: Future[Any] = Future()
        self._tasks.put((future, fn, args, kwargs))
        return future

    def request_received(self) -> None:
        """Called by a handler on a CallThreads thread: its call has its request and runs now."""
        worker = getattr(self._local, "worker", None)
        if worker is not None:
            worker.phase = _RUNNING

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if self._shutdown.is_set():
            return
        self._shutdown.set()
        if cancel_futures:
            while True:
                try:
                    task = self._tasks.get_nowait()
                except queue.Empty:
                    break
                if task is not _STOP:
                    task[0].cancel()
        with self._lock:
            threads = list(self._threads)
        for _ in threads:
            self._tasks.put(_STOP)
        if wait:
            for thread in threads:
                thread.join()

    def _start_worker(self) -> None:
        # Under self._lock.
        if self._shutdown.is_set():
            return
        worker = _Worker()
        self._workers.add(worker)
        name = f"{self._name}-{len(self._threads) + 1}"
        thread = threading.Thread(target=self._work, args=(worker,), name=name, daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)
        thread.start()

    def _work(self, worker: _Worker) -> None:
        self._local.worker = worker
        tasks = self._tasks
        while True:
            try:
                task = tasks.get(timeout=_IDLE_SECONDS)
            except queue.Empty:
                task = None
            if task is _STOP:
                break
            if task is not None:
                future, fn, args, kwargs = task
                if future.set_running_or_notify_cancel():
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
                del task, future, fn, args, kwargs
            if worker.stalled or len(self._workers) > self.core + self._stalled:
                with self._lock:
                    if worker.stalled:
                        worker.stalled = False
                        self._stalled -= 1
                    # More threads than the calls need: this one leaves (the pool never goes below core).
                    if len(self._workers) > self.core + self._stalled:
                        self._workers.discard(worker)
                        return
        with self._lock:
            self._workers.discard(worker)

    def _watch(self) -> None:
        # Wakes a few times per stall period; costs nothing measurable beside the calls.
        interval = self.stall_seconds / 2
        while not self._shutdown.wait(interval):
            now = time.monotonic()
            with self._lock:
                for worker in self._workers:
                    if not worker.stalled and worker.phase == _WAITING and now - worker.since > self.stall_seconds:
                        worker.stalled = True
                        self._stalled += 1
                wanted = self.core + self._stalled
                if self._stalled:
                    # Calls queued behind stalled ones may be stalled too (one attack sends many):
                    # each gets a thread now, rather than a few more every stall period, so fresh
                    # calls among them wait one period at most. Threads beyond the need then leave.
                    wanted += self._tasks.qsize()
                while len(self._workers) < min(self.limit, wanted):
                    self._start_worker()
