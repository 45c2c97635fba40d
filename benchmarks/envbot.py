"""Benchmark: `envbot update` and `envbot promote` on an environments repo with 200 apps and a long history.

The repo (200 apps x 3 environments, the real chart) is generated with `git fast-import` at 100 and
10,000 commits and served from a local bare remote; a local OCI registry over TLS (devenv.registry)
holds the image that `update` resolves by tag, so the registry lookup is inside the timing.
Each figure is the median wall time of the envbot process (python start-up included) over --runs.

    .venv/bin/python benchmarks/envbot.py [--commits 100 10000] [--runs 5]
"""

from __future__ import annotations

import argparse
import hashlib
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

from benchmarks.svgchart import write_chart  # noqa: E402
from devenv import helm  # noqa: E402
from devenv import registry as registry_service  # noqa: E402
from devenv.oci import OciPusher  # noqa: E402

APPS = 200
ENVS = ("dev", "staging", "prod")
OLD = 1_704_067_200  # 2024-01-01: every generated pin has soaked


def templates(image: str) -> dict[str, str]:
    """Each environment's real values file with placeholder pins (filled by str.replace: fast generation)."""
    from bot.values import ImagePin, ReleasePin, edit_pin_text, read_pin_text

    result = {}
    for env in ENVS:
        text = (REPO_ROOT / "environments" / env / "values.yaml").read_text()
        pin = ReleasePin(ImagePin(image, "TAGX", "sha256:" + "f" * 64), read_pin_text(text, env).model)
        result[env] = edit_pin_text(text, pin, env)
    return result


def values_text(template: str, tag: str, digest: str) -> str:
    return template.replace("TAGX", tag).replace("sha256:" + "f" * 64, digest)


def generate(remote: Path, commits: int, image: str, digests: list[str]) -> None:
    """A bare repo whose history has COMMITS commits, each an envbot-style update of one app's dev pin."""
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    apps_yaml = "".join(f'  app{i:03d}:\n    values: "apps/app{i:03d}/{{env}}/values.yaml"\n'
                        f'    chart:\n      path: ../charts/ai-app\n' for i in range(APPS))
    policy = (REPO_ROOT / "environments" / "promotion.yaml").read_text()
    # The real promotion.yaml's environments, without prod's freeze window (the benchmark runs any day).
    environments = policy.split("\nenvironments:", 1)[1].split("    freeze:")[0]
    policy = "apps:\n" + apps_yaml + "environments:" + environments
    stream = []
    texts = templates(image)

    def blob(path: str, data: str) -> None:
        raw = data.encode()
        stream.append(f"M 100644 inline {path}\ndata {len(raw)}\n".encode() + raw + b"\n")

    def commit(message: str, when: int, files: list[tuple[str, str]]) -> None:
        msg = message.encode()
        stream.append(f"commit refs/heads/main\ncommitter Gen <gen@example.com> {when} +0000\n"
                      f"data {len(msg)}\n".encode() + msg + b"\n")
        for path, data in files:
            blob(path, data)
        stream.append(b"\n")

    files = [("environments/promotion.yaml", policy)]
    for chart_file in (REPO_ROOT / "charts" / "ai-app").rglob("*"):
        if chart_file.is_file():
            files.append((str(chart_file.relative_to(REPO_ROOT)), chart_file.read_text()))
    for i in range(APPS):
        for env in ENVS:
            digest = digests[ENVS.index(env) % len(digests)]
            files.append((f"environments/apps/app{i:03d}/{env}/values.yaml", values_text(texts[env], "b0", digest)))
    commit("initial", OLD, files)
    for n in range(1, commits):
        app = f"app{n % APPS:03d}"
        message = (f"envbot: update {app} in dev\n\nEnvbot-Action: update\nEnvbot-App: {app}\nEnvbot-Env: dev\n")
        dev = values_text(texts["dev"], f"b{n % len(digests)}", digests[n % len(digests)])
        commit(message, OLD + n, [(f"environments/apps/{app}/dev/values.yaml", dev)])
    subprocess.run(["git", "fast-import", "--quiet"], cwd=remote, input=b"".join(stream), check=True)


def push_image(reg: registry_service.Registry, repository: str, tag: str) -> str:
    """A minimal OCI image uploaded over the /v2 API (devenv.oci); returns its digest."""
    labels = {"org.opencontainers.image.revision": hashlib.sha1(tag.encode()).hexdigest()}
    return OciPusher(reg.url, str(reg.ca_file)).push(repository, tag, labels)


def timed(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bot.main", *args], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"envbot {' '.join(args)} failed:\n{proc.stderr}")
    return elapsed


CHART = REPO_ROOT / "docs" / "img" / "bench-envbot.svg"


def write_charts(rows: list[tuple[int, float, float]], path: Path = CHART) -> None:
    """update and promote wall times per history size, as in docs/benchmarks.md's table."""
    bars, groups = [], []
    for commits, update, promote in rows:
        bars += [(f"update, {commits:,} commits", update), (f"promote, {commits:,} commits", promote)]
        groups += [0, 1]
    write_chart(path, f"envbot on a {APPS}-app environments repo (whole process, median)", "s", bars,
                groups=groups, note="lower is better; no growth with history")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, nargs="+", default=[100, 10_000])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--chart", type=Path, default=CHART, help=f"bar chart of the table (default {CHART})")
    opts = parser.parse_args()
    rows: list[tuple[int, float, float]] = []
    tmp = Path(tempfile.mkdtemp(prefix="envbot-bench-"))
    try:
        with registry_service.start(tmp / "registry") as reg:
            env = {**os.environ, "REQUESTS_CA_BUNDLE": str(reg.ca_file), "ENVBOT_HELM": helm.helm_binary(),
                   "PYTHONPATH": str(REPO_ROOT)}
            for key in [k for k in env if k.startswith(("ARGOCD_", "GITHUB_", "AZURE_DEVOPS_"))]:
                del env[key]
            tags = [f"b{i}" for i in range(max(opts.runs, 3))]
            image = f"{reg.host}/ai-app"
            digests = [push_image(reg, "ai-app", tag) for tag in tags]
            print(f"| history | update (median of {opts.runs}) | promote (median of {opts.runs}) | generate |")
            print("| --- | --- | --- | --- |")
            for commits in opts.commits:
                remote = tmp / f"envs-{commits}.git"
                start = time.perf_counter()
                generate(remote, commits, image, digests)
                generated = time.perf_counter() - start
                updates = [timed(["update", "dev", "--app", "app007", "--image", f"{image}:{tag}",
                                  "--repo", str(remote)], env) for tag in tags]
                # staging -> prod: soaked pins, a pull-request landing (render + branch push).
                promotes = [timed(["promote", "staging", "prod", "--app", f"app{100 + i:03d}",
                                   "--repo", str(remote)], env) for i in range(opts.runs)]
                print(f"| {commits:,} commits, {APPS} apps | {statistics.median(updates):.2f} s | "
                      f"{statistics.median(promotes):.2f} s | {generated:.1f} s |", flush=True)
                rows.append((commits, statistics.median(updates), statistics.median(promotes)))
        write_charts(rows, opts.chart)
        print(f"chart: {opts.chart}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
