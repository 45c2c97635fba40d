"""Gunicorn, run programmatically: options derived from Settings, hooks for metrics and forked sessions."""

from __future__ import annotations

from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.glogging import Logger
from gunicorn.workers.base import Worker
from gunicorn.workers.gthread import ThreadWorker

from app.config import Settings
from app.logs import logging_config


def gunicorn_options(settings: Settings) -> dict[str, Any]:
    """Gunicorn settings for a small pod; the model is loaded in the master before workers fork."""
    return {
        "bind": [f"{settings.BIND_HOST}:{settings.PORT}"],
        "workers": settings.WEB_CONCURRENCY,
        # gthread keeps client connections alive (sync workers close each one) and lets a worker
        # overlap request parsing with inference; onnxruntime releases the GIL while it runs.
        # This subclass only changes when a worker accepts (see IdleAcceptThreadWorker).
        "worker_class": IdleAcceptThreadWorker,
        "threads": settings.WEB_THREADS,
        # The app (and model) is built before fork: one load, pages shared copy-on-write.
        "preload_app": True,
        # Model loading happens before any worker exists, so it never counts against this timeout.
        "timeout": settings.WORKER_TIMEOUT,
        "graceful_timeout": settings.GRACEFUL_TIMEOUT,
        "keepalive": settings.KEEPALIVE,
        "accesslog": None,
        "logger_class": AppLogsRequestsLogger,
        "errorlog": "-",
        "loglevel": settings.LOG_LEVEL.lower(),
        "logconfig_dict": logging_config(settings.LOG_LEVEL),
        "proc_name": "ai-app",
        # Forwarded headers are trusted only from the pod's own network namespace (sidecars).
        "forwarded_allow_ips": "127.0.0.1,::1",
        # Newer gunicorn opens a control socket under $HOME; the image's root filesystem is read-only.
        "control_socket_disable": True,
        "post_fork": post_fork,
        "child_exit": child_exit,
    }


class AppLogsRequestsLogger(Logger):
    """Gunicorn's logger without its access log: the app logs each request, with its request id.

    With logconfig_dict set, stock gunicorn builds every request's access-log fields (time strings,
    header scans) before the CRITICAL level of gunicorn.access drops the line.
    """

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        return None


class IdleAcceptThreadWorker(ThreadWorker):
    """gthread, accepting new connections only while one of its threads is free.

    Workers share one listening socket and a keep-alive connection stays with the worker that
    accepted it. Stock gthread accepts whenever it holds fewer than worker_connections, so a burst
    of connects (a client pool opening, a load balancer's upstream pool) lands on whichever worker
    wakes first: 16 connections were split 14/2 and 16/0, and requests on the crowded worker queue
    behind each other while the other idles. Accepting only with a free thread sends new
    connections to the worker that can serve them now. Nothing is refused or capped: a connection
    waits in the kernel's backlog for the first free thread, where it would otherwise have waited
    in a busy worker's queue, and idle keep-alive connections do not hold a thread.
    """

    in_flight = 0  # requests submitted to the thread pool and not finished; main thread only

    def set_accept_enabled(self, enabled: bool) -> None:
        super().set_accept_enabled(enabled and self.in_flight < self.cfg.threads)

    def enqueue_req(self, conn: Any) -> None:
        self.in_flight += 1
        super().enqueue_req(conn)
        if self.in_flight >= self.cfg.threads:
            self.set_accept_enabled(False)

    def finish_request(self, conn: Any, fs: Any) -> None:
        self.in_flight -= 1
        super().finish_request(conn, fs)  # may enqueue the connection's next request
        self.set_accept_enabled(self.alive and self.nr_conns < self.worker_connections)


def post_fork(server: Arbiter, worker: Worker) -> None:
    """Give a worker its own onnxruntime session when the shared one owns thread pools."""
    app = worker.app.wsgi()
    model = app.extensions["ai_app"].model
    if model is not None and model.needs_reopen_after_fork:
        model.reopen_after_fork()


def child_exit(server: Arbiter, worker: Worker) -> None:
    """Drop a dead worker's live gauges so in-progress counts do not include it."""
    from prometheus_client import multiprocess

    from app.metrics import multiprocess_dir

    if multiprocess_dir():
        multiprocess.mark_process_dead(worker.pid)


class InferenceServer(BaseApplication):
    """Serve an already-built Flask app (model loaded) with gunicorn's pre-fork arbiter."""

    def __init__(self, app: Flask, options: dict[str, Any]) -> None:
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            # Skip settings this gunicorn version does not know (e.g. control_socket_disable < 25).
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key, value)

    def load(self) -> Flask:
        return self.application
