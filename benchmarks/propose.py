"""Benchmark: `envbot propose` on an environments repo with 200 apps x 3 environments and a long history.

The repo (the real per-environment values files and charts/ai-app) is generated with `git fast-import`
at 100 and 10,000 commits (each an update of one app's dev image tag that keeps the release) and served
from a local bare remote; a local OCI registry over TLS (devenv.registry) holds the images.
Three figures per history length, each the median wall time of the whole envbot process:
- nothing to do: every environment runs its upstream's release, no proposal open;
- 20 to open: 20 apps' dev moved to a new release (one commit), so 20 staging proposals are opened
  (gates, registry check, two helm renders, changelog lookup, branch push each); measured on a fresh
  copy of the remote every run;
- 20 open, nothing new: the run after that one (gates re-evaluated, nothing written).

    .venv/bin/python benchmarks/propose.py [--commits 100 10000] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.envbot import APPS, ENVS, OLD, push_image, values_text  # noqa: E402
from devenv import helm  # noqa: E402
from devenv import registry as registry_service  # noqa: E402

PROPOSALS = 20


def templates(image: str) -> dict[str, str]:
    """Each environment's real values file with placeholder image pins and dev's model: one release everywhere."""
    from bot.values import ImagePin, ReleasePin, edit_pin_text, read_pin_text

    texts = {env: (REPO_ROOT / "environments" / env / "values.yaml").read_text() for env in ENVS}
    model = read_pin_text(texts["dev"], "dev").model
    pin = ReleasePin(ImagePin(image, "TAGX", "sha256:" + "f" * 64), model)
    return {env: edit_pin_text(text, pin, env) for env, text in texts.items()}


def fast_import(remote: Path, stream: list[bytes]) -> None:
    subprocess.run(["git", "fast-import", "--quiet"], cwd=remote, input=b"".join(stream), check=True)


def commit_stream(message: str, when: int, files: list[tuple[str, str]], on_existing: bool = False) -> list[bytes]:
    """One fast-import commit on main; ON_EXISTING: the first of a new import onto the existing main."""
    msg = message.encode()
    parts = [f"commit refs/heads/main\ncommitter Gen <gen@example.com> {when} +0000\n"
             f"data {len(msg)}\n".encode() + msg + b"\n"]
    if on_existing:
        parts.append(b"from refs/heads/main^0\n")
    for path, data in files:
        raw = data.encode()
        parts.append(f"M 100644 inline {path}\ndata {len(raw)}\n".encode() + raw + b"\n")
    parts.append(b"\n")
    return parts


def generate(remote: Path, commits: int, image: str, digest: str) -> None:
    """Every app runs release DIGEST in every environment; COMMITS commits of dev tag edits."""
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    apps_yaml = "".join(f'  app{i:03d}:\n    values: "apps/app{i:03d}/{{env}}/values.yaml"\n'
                        f'    chart:\n      path: ../charts/ai-app\n' for i in range(APPS))
    policy = (REPO_ROOT / "environments" / "promotion.yaml").read_text()
    environments = policy.split("\nenvironments:", 1)[1].split("    freeze:")[0]
    policy = "apps:\n" + apps_yaml + "environments:" + environments
    texts = templates(image)
    files = [("environments/promotion.yaml", policy)]
    for chart_file in (REPO_ROOT / "charts" / "ai-app").rglob("*"):
        if chart_file.is_file():
            files.append((str(chart_file.relative_to(REPO_ROOT)), chart_file.read_text()))
    for i in range(APPS):
        for env in ENVS:
            files.append((f"environments/apps/app{i:03d}/{env}/values.yaml", values_text(texts[env], "b0", digest)))
    stream = commit_stream("initial", OLD, files)
    for n in range(1, commits):
        app = f"app{n % APPS:03d}"
        dev = values_text(texts["dev"], f"b0-{n}", digest)   # a new tag for the same digest: same release
        stream += commit_stream(f"envbot: update {app} in dev\n\nEnvbot-Action: update\n", OLD + n,
                                [(f"environments/apps/{app}/dev/values.yaml", dev)])
    fast_import(remote, stream)


def move_dev(remote: Path, image: str, digest: str) -> None:
    """One commit moving PROPOSALS apps' dev to release DIGEST (what CI's `envbot update dev` does)."""
    texts = templates(image)
    files = [(f"environments/apps/app{i:03d}/dev/values.yaml", values_text(texts["dev"], "b1", digest))
             for i in range(PROPOSALS)]
    fast_import(remote, commit_stream("CI: update dev", int(time.time()), files, on_existing=True))


def timed(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bot.main", *args], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"envbot {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, nargs="+", default=[100, 10_000])
    parser.add_argument("--runs", type=int, default=5)
    opts = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="envbot-propose-bench-"))
    try:
        with registry_service.start(tmp / "registry") as reg:
            env = {**os.environ, "REQUESTS_CA_BUNDLE": str(reg.ca_file), "ENVBOT_HELM": helm.helm_binary(),
                   "PYTHONPATH": str(REPO_ROOT)}
            for key in [k for k in env if k.startswith(("ARGOCD_", "GITHUB_", "AZURE_DEVOPS_", "SYSTEM_"))]:
                del env[key]
            image = f"{reg.host}/ai-app"
            old, new = push_image(reg, "ai-app", "b0"), push_image(reg, "ai-app", "b1")
            print(f"| history | nothing to do | {PROPOSALS} to open | {PROPOSALS} open, nothing new |")
            print("| --- | ---: | ---: | ---: |")
            for commits in opts.commits:
                remote = tmp / f"envs-{commits}.git"
                generate(remote, commits, image, old)
                idle = [timed(["propose", "--repo", str(remote)], env) for _ in range(opts.runs)]
                move_dev(remote, image, new)
                opening, waiting = [], []
                for run in range(opts.runs):
                    copy = tmp / f"envs-{commits}-{run}.git"
                    shutil.copytree(remote, copy)
                    opening.append(timed(["propose", "--repo", str(copy)], env))
                    waiting.append(timed(["propose", "--repo", str(copy)], env))
                    shutil.rmtree(copy)
                print(f"| {commits:,} commits, {APPS} apps x {len(ENVS)} envs | {statistics.median(idle):.2f} s | "
                      f"{statistics.median(opening):.2f} s | {statistics.median(waiting):.2f} s |", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
