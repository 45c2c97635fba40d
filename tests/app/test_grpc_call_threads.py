"""CallThreads (app/oip_grpc/call_threads.py): a few threads for calls, one more per stalled call."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future

import pytest

from app.oip_grpc.call_threads import CallThreads

STALL = 0.05


@pytest.fixture
def pool() -> Iterator[CallThreads]:
    threads = CallThreads(core=2, limit=6, stall_seconds=STALL, name="test-call")
    yield threads
    threads.shutdown(wait=True, cancel_futures=True)


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def stalled_call(release: threading.Event) -> Callable[[], str]:
    """A call that waits for its client's message (never reaches the handler) until released."""
    def call() -> str:
        release.wait(30)
        return "stalled"
    return call


def running_call(pool: CallThreads, release: threading.Event) -> Callable[[], str]:
    """A call whose handler has its request and runs until released (a long inference)."""
    def call() -> str:
        pool.request_received()
        release.wait(30)
        return "ran"
    return call


def test_calls_run_and_their_results_and_errors_reach_the_futures(pool: CallThreads) -> None:
    def fail() -> None:
        raise ValueError("bad call")

    assert pool.submit(lambda a, b=0: a + b, 2, b=3).result(timeout=10) == 5
    with pytest.raises(ValueError, match="bad call"):
        pool.submit(fail).result(timeout=10)
    results = [pool.submit(lambda i=i: i * i) for i in range(200)]
    assert [f.result(timeout=10) for f in results] == [i * i for i in range(200)]
    assert pool.threads == 2


def test_stalled_calls_get_threads_of_their_own_and_fresh_calls_still_run(pool: CallThreads) -> None:
    release = threading.Event()
    try:
        stalled = [pool.submit(stalled_call(release)) for _ in range(3)]
        # Both core threads are waiting on clients; the third stalled call and a fresh one queue.
        fresh = pool.submit(lambda: "fresh")
        assert fresh.result(timeout=10) == "fresh"
        wait_for(lambda: pool.stalled == 3, "the three stalled calls were not all counted")
        # A thread per stalled call plus the core ones (more for a moment, for the queued calls).
        wait_for(lambda: pool.threads == 2 + 3, "the pool did not settle at core + stalled threads")
        assert not [f for f in stalled if f.done()]
        more_fresh = [pool.submit(lambda i=i: i) for i in range(50)]
        assert [f.result(timeout=10) for f in more_fresh] == list(range(50))
    finally:
        release.set()
    assert [f.result(timeout=10) for f in stalled] == ["stalled"] * 3
    wait_for(lambda: pool.threads == 2 and pool.stalled == 0, "the pool did not shrink back to its core threads")


def test_long_running_calls_do_not_count_as_stalled() -> None:
    # A longer stall time than the other tests': a busy machine may pause a thread between its
    # start of a call and request_received, and that pause must not read as a stall here.
    pool = CallThreads(core=2, limit=6, stall_seconds=0.5)
    release = threading.Event()
    try:
        running = [pool.submit(running_call(pool, release)) for _ in range(2)]
        queued = pool.submit(lambda: "queued")
        time.sleep(2)
        # Both threads run handlers: the pool is busy, not stalled, and adds no thread.
        assert pool.stalled == 0 and pool.threads == 2
        assert not queued.done()
    finally:
        release.set()
    assert [f.result(timeout=10) for f in running] == ["ran", "ran"]
    assert queued.result(timeout=10) == "queued"
    pool.shutdown()


def test_threads_never_exceed_the_limit(pool: CallThreads) -> None:
    release = threading.Event()
    try:
        stalled = [pool.submit(stalled_call(release)) for _ in range(10)]
        wait_for(lambda: pool.stalled == 6, "six calls (the limit) should be stalled")
        time.sleep(STALL * 4)
        assert pool.threads == 6
        assert sum(f.running() for f in stalled) == 6
    finally:
        release.set()
    assert [f.result(timeout=10) for f in stalled] == ["stalled"] * 10
    wait_for(lambda: pool.threads == 2, "the pool did not shrink back to its core threads")


def test_shutdown_cancels_queued_calls_and_refuses_new_ones() -> None:
    pool = CallThreads(core=1, limit=1, stall_seconds=STALL)
    release = threading.Event()
    first = pool.submit(running_call(pool, release))
    wait_for(first.running, "the first call never started")
    queued: Future[str] = pool.submit(lambda: "never")
    pool.shutdown(wait=False, cancel_futures=True)
    release.set()
    assert first.result(timeout=10) == "ran"
    with pytest.raises(CancelledError):
        queued.result(timeout=10)
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(lambda: None)


def test_core_and_limit_are_checked() -> None:
    with pytest.raises(ValueError, match="core=3, limit=2"):
        CallThreads(core=3, limit=2, stall_seconds=STALL)
    with pytest.raises(ValueError, match="running=0"):
        CallThreads(core=2, limit=2, stall_seconds=STALL, running=0)
    with pytest.raises(ValueError, match="running=3, core=2"):
        CallThreads(core=2, limit=4, stall_seconds=STALL, running=3)


@pytest.mark.parametrize("running", [1, 2])
def test_at_most_running_handlers_run_at_once_when_stalled_calls_arrive_together(running: int) -> None:
    pool = CallThreads(core=2, limit=8, stall_seconds=STALL, running=running)
    release = threading.Event()
    lock = threading.Lock()
    handlers = {"now": 0, "most": 0}

    def stalled_then_heavy() -> str:
        release.wait(30)  # the client's message comes late, for all six at the same moment
        pool.request_received()
        with lock:
            handlers["now"] += 1
            handlers["most"] = max(handlers["most"], handlers["now"])
        time.sleep(0.05)  # the handler's work (an inference's memory is held meanwhile)
        with lock:
            handlers["now"] -= 1
        return "done"

    try:
        calls = [pool.submit(stalled_then_heavy) for _ in range(6)]
        wait_for(lambda: pool.stalled == 6, "six stalled calls should each have a thread")
    finally:
        release.set()
    assert [f.result(timeout=10) for f in calls] == ["done"] * 6
    assert handlers["most"] == running
    pool.shutdown()


def test_one_stalled_call_under_steady_load_does_not_churn_threads(pool: CallThreads) -> None:
    """With one call stalled, 16 callers in a closed loop keep being served by core + 1 threads: the
    queue moves, so no thread is started per queued call (and left again after it)."""
    release = threading.Event()
    stop = threading.Event()
    served = [0] * 16

    def caller(index: int) -> None:
        while not stop.is_set():
            def call() -> None:
                pool.request_received()
                time.sleep(0.002)  # a short inference
            pool.submit(call).result(timeout=30)
            served[index] += 1

    try:
        stalled = pool.submit(stalled_call(release))
        wait_for(lambda: pool.stalled == 1, "the stalled call was not counted")
        started = pool.started
        callers = [threading.Thread(target=caller, args=(i,)) for i in range(16)]
        for thread in callers:
            thread.start()
        time.sleep(1.5)
        stop.set()
        for thread in callers:
            thread.join(timeout=30)
        assert min(served) > 0
        assert pool.started - started <= 2, f"{pool.started - started} threads started for {sum(served)} calls"
    finally:
        release.set()
    assert stalled.result(timeout=10) == "stalled"


def test_a_thread_that_cannot_start_does_not_stop_the_watching(
    pool: CallThreads, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_start = threading.Thread.start
    failures = []

    def start_or_fail_once(thread: threading.Thread) -> None:
        if thread.name.startswith("test-call-") and not failures:
            failures.append(thread.name)
            raise RuntimeError("can't start new thread")
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start_or_fail_once)
    release = threading.Event()
    try:
        stalled = [pool.submit(stalled_call(release)) for _ in range(2)]
        fresh = pool.submit(lambda: "fresh")
        assert fresh.result(timeout=10) == "fresh"
        assert failures, "no thread start was refused"
        wait_for(lambda: pool.threads == 2 + 2, "the pool did not recover from the refused start")
    finally:
        release.set()
    assert [f.result(timeout=10) for f in stalled] == ["stalled"] * 2


def submit_until_refused(pool: CallThreads, futures: list[Future[int]], refused: threading.Event) -> None:
    while True:
        try:
            futures.append(pool.submit(lambda: 1))
        except RuntimeError:
            refused.set()
            return


def test_calls_submitted_while_shutting_down_are_run_cancelled_or_refused() -> None:
    for _ in range(20):
        pool = CallThreads(core=2, limit=4, stall_seconds=STALL)
        futures: list[Future[int]] = []
        refused = threading.Event()
        threads = [threading.Thread(target=submit_until_refused, args=(pool, futures, refused)) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(0.01)
        pool.shutdown(wait=True, cancel_futures=True)
        for thread in threads:
            thread.join(timeout=10)
        assert refused.is_set()
        assert all(f.done() for f in futures), "a call was queued after the stop and never resolved"


def test_a_second_shutdown_that_waits_waits_for_running_calls() -> None:
    pool = CallThreads(core=1, limit=1, stall_seconds=STALL)
    release = threading.Event()
    running = pool.submit(running_call(pool, release))
    wait_for(running.running, "the call never started")
    pool.shutdown(wait=False)
    threading.Timer(0.2, release.set).start()
    pool.shutdown(wait=True)
    assert running.done()


def test_stall_seconds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="stall_seconds > 0, got 0"):
        CallThreads(core=1, limit=1, stall_seconds=0)
