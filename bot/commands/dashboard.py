"""envbot dashboard: a read-only web page of the environments repo (release matrix, history, diffs, DORA metrics).

Serves the Flask application of bot/dashboard with gunicorn (one process, several threads: the cached
repo state is shared by every request). It re-reads the repo every --refresh seconds; it never
writes. Binds 127.0.0.1 unless --host says otherwise: in a cluster, put it behind the ingress with
authentication (docs/dashboard.md).
"""

from __future__ import annotations

import argparse
import sys

from bot.dashboard import DEFAULT_METRICS_WINDOW, DEFAULT_REFRESH_SECONDS, DashboardSettings
from bot.mirror import resolve_source
from bot.output import EnvbotError, emit

DEFAULT_PORT = 8080
JSON_SCHEMA = "dashboard"   # bot/schemas/dashboard.json: `--json` prints where it listens, then serves


ONE_APP = False   # the pages show every app of promotion.yaml: no --app


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--refresh", type=float, default=DEFAULT_REFRESH_SECONDS, metavar="SECONDS",
                        help=f"fetch the repo when a page is older than this (default {DEFAULT_REFRESH_SECONDS:g})")
    parser.add_argument("--since", default=DEFAULT_METRICS_WINDOW, metavar="WHEN",
                        help=f"default window of the metrics page (default {DEFAULT_METRICS_WINDOW})")
    parser.add_argument("--offline", action="store_true",
                        help="ask no registry or source repo (lead time is shown unknown)")
    parser.add_argument("--threads", type=int, default=8, help="request threads (default 8)")


def serve(settings: DashboardSettings, host: str, port: int, threads: int) -> None:
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in {"bind": f"{host}:{port}", "workers": 1, "worker_class": "gthread",
                               "threads": threads, "timeout": 120, "graceful_timeout": 5,
                               "accesslog": None, "errorlog": "-", "loglevel": "warning"}.items():
                self.cfg.set(key, value)

        def load(self):  # gunicorn's hook: the app is built in the worker
            from bot.dashboard import create_app

            app = create_app(settings)
            app.extensions["envbot_state"].snapshot()   # clone before the first request
            return app

    Server().run()


def run(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise EnvbotError(f"--port {args.port}: not a TCP port")
    if args.refresh <= 0:
        raise EnvbotError(f"--refresh {args.refresh:g}: must be more than 0 seconds")
    # Say what is wrong with the repo here, not as a worker that fails to boot.
    source, branch = resolve_source(args.repo, args.branch)
    settings = DashboardSettings(repo=args.repo, branch=args.branch or branch, refresh_seconds=args.refresh,
                                 metrics_window=args.since, offline=args.offline)
    url = f"http://{args.host}:{args.port}/"
    print(f"envbot dashboard: {source} ({branch}) on {url}", file=sys.stderr, flush=True)
    if args.json:
        emit(True, {"url": url, "repo": str(source), "branch": settings.branch}, "")
        sys.stdout.flush()
    serve(settings, args.host, args.port, args.threads)
    return 0
