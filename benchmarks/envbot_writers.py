"""Benchmark: N `envbot update` processes at once against one bare remote (the many-writers case).

(a) one app, N = 8, 32, 64: every process pins a different image into the same values file, so
    every rejected push is a real overlap and is replayed on the new tip;
(b) N different apps, N = 50, 200: the files never overlap, so a rejected push only rebases the
    prepared commit onto the new tip; compared with the same N updates run one after another.

Checked after each run: every process exited 0, and the branch gained exactly one commit per
update with the wanted digest (none lost, none applied twice, no merge commits). Reported: wall
time, attempts per update (mean and max), rebases and replays. The repository is the 200-app one of
benchmarks/envbot.py; images are pushed over /v2 (devenv.oci), no Docker needed.

Writers on one machine take turns at the push (bot/pushqueue.py); --no-queue turns that off, so the
processes race through the remote as writers on separate machines do.

    .venv/bin/python benchmarks/envbot_writers.py [--one-app 8 32 64] [--many-apps 50 200] [--no-queue]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.envbot import APPS, generate, push_image  # noqa: E402
from devenv import helm  # noqa: E402
from devenv import registry as registry_service  # noqa: E402

TIMEOUT_SECONDS = 1800


def git(remote: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=remote, check=True, capture_output=True, text=True).stdout.strip()


def update_args(remote: Path, app: str, image: str) -> list[str]:
    return [sys.executable, "-m", "bot.main", "update", "dev", "--app", app, "--image", image, "--json",
            "--repo", str(remote)]


def run_parallel(jobs: list[list[str]], env: dict[str, str]) -> tuple[float, list[dict]]:
    start = time.perf_counter()
    processes = [subprocess.Popen(job, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for job in jobs]
    outputs = [p.communicate(timeout=TIMEOUT_SECONDS) for p in processes]
    elapsed = time.perf_counter() - start
    results = []
    for process, (out, err) in zip(processes, outputs, strict=True):
        if process.returncode != 0:
            raise SystemExit(f"an update failed ({process.returncode}):\n{out}\n{err}")
        results.append(json.loads(out))
    return elapsed, results


def run_sequential(jobs: list[list[str]], env: dict[str, str]) -> float:
    start = time.perf_counter()
    for job in jobs:
        proc = subprocess.run(job, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_SECONDS)
        if proc.returncode != 0:
            raise SystemExit(f"an update failed:\n{proc.stderr}")
    return time.perf_counter() - start


def check_landed(remote: Path, base: str, wanted: dict[str, str]) -> None:
    """WANTED: app -> digest. One envbot commit per app since BASE, each app's dev pin is its digest."""
    log = git(remote, "log", "--format=%(trailers:key=Envbot-App,valueonly,separator=)%x1f"
              "%(trailers:key=Envbot-Image,valueonly,separator=)", f"{base}..main")
    entries = [line.split("\x1f") for line in log.splitlines() if line.strip()]
    if git(remote, "rev-list", "--merges", "--count", f"{base}..main") != "0":
        raise SystemExit("merge commits on main")
    if sorted(app for app, _ in entries) != sorted(wanted):
        raise SystemExit(f"{len(entries)} commits landed for {len(wanted)} updates (lost or applied twice)")
    for app, digest in wanted.items():
        if digest not in git(remote, "show", f"main:environments/apps/{app}/dev/values.yaml"):
            raise SystemExit(f"{app}: its dev pin is not {digest}")


def check_each_once(remote: Path, base: str, digests: list[str]) -> None:
    """One app, many images: each digest landed exactly once, in some order."""
    log = git(remote, "log", "--format=%(trailers:key=Envbot-Image,valueonly,separator=)", f"{base}..main")
    landed = sorted(line.split("@")[-1] for line in log.splitlines() if line.strip())
    if landed != sorted(digests):
        raise SystemExit(f"landed {len(landed)} digests, wanted each of {len(digests)} once")


def attempts_row(results: list[dict]) -> str:
    attempts = [r["attempts"] for r in results]
    return (f"{statistics.mean(attempts):.1f} / {max(attempts)} | {sum(r['rebased'] for r in results)} | "
            f"{sum(r['replayed'] for r in results)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one-app", type=int, nargs="*", default=[8, 32, 64])
    parser.add_argument("--many-apps", type=int, nargs="*", default=[50, 200])
    parser.add_argument("--no-queue", action="store_true", help="ENVBOT_PUSH_QUEUE=off: race as separate machines")
    opts = parser.parse_args()
    # SIGTERM (timeout, kill) unwinds like Ctrl-C: the registry is stopped and the temp dir removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if any(n > APPS for n in opts.many_apps):
        raise SystemExit(f"at most {APPS} apps")
    tmp = Path(tempfile.mkdtemp(prefix="envbot-writers-"))
    try:
        with registry_service.start(tmp / "registry") as reg:
            env = {**os.environ, "REQUESTS_CA_BUNDLE": str(reg.ca_file), "ENVBOT_HELM": helm.helm_binary(),
                   "PYTHONPATH": str(REPO_ROOT), "ENVBOT_PUSH_QUEUE": "off" if opts.no_queue else "on"}
            for key in [k for k in env if k.startswith(("ARGOCD_", "GITHUB_", "AZURE_DEVOPS_", "ENVBOT_GIT"))]:
                del env[key]
            image = f"{reg.host}/ai-app"
            seed = [push_image(reg, "ai-app", tag) for tag in ("b0", "b1", "b2")]
            writers = max(opts.one_app or [0])
            tags = {f"w{i}": push_image(reg, "ai-app", f"w{i}") for i in range(writers)}
            target = push_image(reg, "ai-app", "target")
            print(f"push queue: {env['ENVBOT_PUSH_QUEUE']}")
            print("| case | N | wall time | attempts per update (mean / max) | rebased | replayed | "
                  "one after another |")
            print("| --- | --- | --- | --- | --- | --- | --- |")
            for n in opts.one_app:
                remote = tmp / f"one-{n}.git"
                generate(remote, 10, image, seed)
                base = git(remote, "rev-parse", "main")
                chosen = list(tags)[:n]
                jobs = [update_args(remote, "app007", f"{image}:{tag}") for tag in chosen]
                elapsed, results = run_parallel(jobs, env)
                check_each_once(remote, base, [tags[t] for t in chosen])
                print(f"| (a) one app | {n} | {elapsed:.1f} s | {attempts_row(results)} | - |", flush=True)
            for n in opts.many_apps:
                apps = [f"app{i:03d}" for i in range(n)]
                jobs_for = {}
                for mode in ("sequential", "parallel"):
                    remote = tmp / f"many-{n}-{mode}.git"
                    generate(remote, 10, image, seed)
                    jobs_for[mode] = (remote, git(remote, "rev-parse", "main"),
                                      [update_args(remote, app, f"{image}:target") for app in apps])
                remote, base, jobs = jobs_for["sequential"]
                sequential = run_sequential(jobs, env)
                check_landed(remote, base, dict.fromkeys(apps, target))
                remote, base, jobs = jobs_for["parallel"]
                elapsed, results = run_parallel(jobs, env)
                check_landed(remote, base, dict.fromkeys(apps, target))
                print(f"| (b) different apps | {n} | {elapsed:.1f} s ({elapsed / sequential:.2f}x) | "
                      f"{attempts_row(results)} | {sequential:.1f} s |", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
