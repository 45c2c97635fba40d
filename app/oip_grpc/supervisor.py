"""The gRPC worker processes, as the serve command's main process sees them (no grpc import here).

The main process forks GRPC_WORKERS processes beside granian's HTTP workers, after the model is
loaded and verified; each builds its own gRPC server (app/oip_grpc/server.py). On stop they get
SIGTERM and GRACEFUL_TIMEOUT to finish their calls. A worker that dies is replaced, as granian
replaces its own; one that dies within seconds of its start (port taken, say) stops the service with
an error instead of looping.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import threading
import time
from collections.abc import Callable
from typing import Any

from app.config import Settings
from app.state import ServiceState

logger = logging.getLogger("app.grpc")

# A worker that exits sooner than this after its start is failing to start, not crashing in service.
CRASH_LOOP_SECONDS = 5.5


def _worker_main(state: ServiceState, settings: Settings) -> None:
    # Imported in the child only: this is where grpc is first imported.
    from app.oip_grpc.server import run_worker

    run_worker(state, settings)


class GrpcWorkers:
    def __init__(self, state: ServiceState, settings: Settings, on_failure: Callable[[str], None]) -> None:
        self.state = state
        self.settings = settings
        self.on_failure = on_failure
        self._context = multiprocessing.get_context("fork")
        self._processes: list[Any] = []
        self._started: list[float] = []
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    def start(self) -> None:
        for index in range(self.settings.GRPC_WORKERS):
            self._processes.append(self._spawn(index))
            self._started.append(time.monotonic())
        self._watcher = threading.Thread(target=self._watch, name="grpc-workers", daemon=True)
        self._watcher.start()

    def _spawn(self, index: int) -> Any:
        process = self._context.Process(
            target=_worker_main, args=(self.state, self.settings), name=f"grpc-worker-{index + 1}", daemon=False
        )
        process.start()
        logger.info("gRPC worker started", extra={"worker": index + 1, "worker_pid": process.pid})
        return process

    def _watch(self) -> None:
        while not self._stopping.is_set():
            sentinels = {p.sentinel: i for i, p in enumerate(self._processes)}
            ready = multiprocessing.connection.wait(list(sentinels), timeout=1.0)
            if self._stopping.is_set():
                return
            for sentinel in ready:
                index = sentinels[sentinel]  # type: ignore[index]
                process = self._processes[index]
                process.join()
                lived = time.monotonic() - self._started[index]
                logger.error(
                    "gRPC worker exited",
                    extra={"worker": index + 1, "worker_pid": process.pid, "exitcode": process.exitcode},
                )
                if lived < CRASH_LOOP_SECONDS:
                    self._stopping.set()
                    self.on_failure(
                        f"gRPC worker {index + 1} exited {lived:.1f} s after its start "
                        f"(exit code {process.exitcode}); is GRPC_PORT {self.settings.GRPC_PORT} free?"
                    )
                    return
                self._processes[index] = self._spawn(index)
                self._started[index] = time.monotonic()

    def stop(self) -> None:
        """Ask every worker to finish (SIGTERM); join() waits for them."""
        self._stopping.set()
        for process in self._processes:
            if process.is_alive():
                process.terminate()

    def join(self, timeout: float) -> None:
        """Wait up to `timeout` seconds in all for the workers, then kill those still running."""
        deadline = time.monotonic() + timeout
        for process in self._processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                logger.warning("gRPC worker did not stop in time; killing it", extra={"worker_pid": process.pid})
                process.kill()
                process.join()
