"""Benchmark: dashboard page times and `envbot metrics` on 200 apps x 3 environments with a 10,000-commit history.

The environments repo is generated with `git fast-import`: every commit is an envbot-style update
of one app in dev, a promotion dev -> staging or staging -> prod, or (for every third app) a rollback
of prod that reverts the app's last prod promotion (Envbot-Reverts naming its commit), spread over
100 days.
The images are in a local OCI registry over TLS with revision labels; promotion.yaml names the local
source repository, so lead times are looked up for real (registry /v2 calls and git).

Page times: `envbot dashboard` is started on 127.0.0.1, each page is loaded once (the first load,
which clones and reads the history) and then --requests times; the median and 95th percentile of
those are reported. `envbot metrics`: wall time of the whole process (clone included), median of --runs.

    .venv/bin/python benchmarks/dashboard.py [--commits 10000] [--requests 30] [--runs 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.envbot import APPS, ENVS, templates, values_text  # noqa: E402
from devenv import dashboard as dashboard_service  # noqa: E402
from devenv import helm  # noqa: E402
from devenv import registry as registry_service  # noqa: E402

IMAGES = 500                 # CI builds over the 100 days: each dev update takes the newest
DAYS = 100


def source_repo(path: Path, start: int, count: int) -> list[str]:
    """A source repository with COUNT commits spread over DAYS days from START; their shas, oldest first."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    stream = []
    for i in range(count):
        when = start + i * 86_400 * DAYS // count
        message = f"change {i}".encode()
        stream.append(f"commit refs/heads/main\nmark :{i + 1}\ncommitter Dev <dev@example.com> {when} +0000\n"
                      f"data {len(message)}\n".encode() + message + b"\nM 100644 inline app.txt\n"
                      + f"data {len(str(i))}\n{i}\n\n".encode())
    marks = path / "marks"
    subprocess.run(["git", "fast-import", "--quiet", f"--export-marks={marks}"], cwd=path, input=b"".join(stream),
                   check=True)
    by_mark = dict(line.split() for line in marks.read_text().splitlines())
    return [by_mark[f":{i + 1}"] for i in range(count)]


def push_image(reg: registry_service.Registry, repository: str, tag: str, labels: dict[str, str]) -> str:
    """A minimal OCI image (config blob with LABELS + manifest) uploaded over /v2; returns its digest."""
    context = reg.ssl_context()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": labels},
                         "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    start = urllib.request.Request(f"{reg.url}/v2/{repository}/blobs/uploads/", method="POST")
    with urllib.request.urlopen(start, context=context) as resp:
        location = resp.headers["Location"]
    location = location if location.startswith("http") else reg.url + location
    sep = "&" if "?" in location else "?"
    put = urllib.request.Request(f"{location}{sep}digest={config_digest}", data=config, method="PUT",
                                 headers={"Content-Type": "application/octet-stream"})
    urllib.request.urlopen(put, context=context).close()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": config_digest, "size": len(config)}, "layers": []}).encode()
    put = urllib.request.Request(f"{reg.url}/v2/{repository}/manifests/{tag}", data=manifest, method="PUT",
                                 headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    with urllib.request.urlopen(put, context=context) as resp:
        return resp.headers["Docker-Content-Digest"]


def generate(remote: Path, commits: int, image: str, digests: list[str], start: int, source: str = "") -> None:
    """The environments repo: COMMITS commits of updates, promotions and rollbacks over DAYS days."""
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    source_line = f'    source: "{source}"\n' if source else ""
    apps_yaml = "".join(f'  app{i:03d}:\n    values: "apps/app{i:03d}/{{env}}/values.yaml"\n'
                        f'    chart:\n      path: ../charts/ai-app\n{source_line}' for i in range(APPS))
    policy = (REPO_ROOT / "environments" / "promotion.yaml").read_text()
    environments = policy.split("\nenvironments:", 1)[1].split("    freeze:")[0]
    texts = templates(image)
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(["git", "fast-import", "--quiet", f"--cat-blob-fd={write_fd}"], cwd=remote,
                            stdin=subprocess.PIPE, pass_fds=(write_fd,))
    os.close(write_fd)
    answers = os.fdopen(read_fd, "rb")
    assert proc.stdin is not None

    def commit(mark: int, message: str, when: int, files: list[tuple[str, str]]) -> None:
        msg = message.encode()
        out = [f"commit refs/heads/main\nmark :{mark}\ncommitter Gen <gen@example.com> {when} +0000\n"
               f"data {len(msg)}\n".encode() + msg + b"\n"]
        for path, data in files:
            raw = data.encode()
            out.append(f"M 100644 inline {path}\ndata {len(raw)}\n".encode() + raw + b"\n")
        out.append(b"\n")
        proc.stdin.write(b"".join(out))

    def sha_of(mark: int) -> str:
        proc.stdin.write(f"get-mark :{mark}\n".encode())
        proc.stdin.flush()
        return answers.readline().decode().strip()

    def path(app: str, env: str) -> str:
        return f"environments/apps/{app}/{env}/values.yaml"

    files = [("environments/promotion.yaml", "apps:\n" + apps_yaml + "environments:" + environments)]
    for chart_file in (REPO_ROOT / "charts" / "ai-app").rglob("*"):
        if chart_file.is_file():
            files.append((str(chart_file.relative_to(REPO_ROOT)), chart_file.read_text()))
    pins = {}      # (app, env) -> image index
    for i in range(APPS):
        for env in ENVS:
            pins[(f"app{i:03d}", env)] = 0
            files.append((path(f"app{i:03d}", env), values_text(texts[env], "b0", digests[0])))
    step = DAYS * 86_400 // commits
    commit(1, "initial", start, files)
    prod_history: dict[str, list[tuple[int, int]]] = {}    # app -> [(mark, image before)] of prod promotions
    for n in range(1, commits):
        app = f"app{(n // 10) % APPS:03d}"
        kind, when, mark = n % 10, start + n * step, n + 1
        # Per app, ten commits: dev updates, two staging promotions, one prod promotion; every third
        # app's prod promotion is rolled back.
        rollback = kind == 9 and (n // 10) % 3 == 0 and prod_history.get(app)
        if kind in (4, 6):
            image, action, env, extra = pins[(app, "dev")], "promote", "staging", "Envbot-From: dev@x\n"
        elif kind == 7:
            image, action, env, extra = pins[(app, "staging")], "promote", "prod", "Envbot-From: staging@x\n"
        elif rollback:
            reverted, image = prod_history[app].pop()
            action, env, extra = "rollback", "prod", f"Envbot-Reverts: {sha_of(reverted)}\n"
        else:
            # The newest build at that time (a newer one than dev runs, unless none was made since).
            image = max(n * len(digests) // commits, pins[(app, "dev")] + 1) % len(digests)
            action, env, extra = "update", "dev", ""
        if action == "promote" and env == "prod":
            prod_history.setdefault(app, []).append((mark, pins[(app, "prod")]))
        pins[(app, env)] = image
        message = (f"envbot: {action} {app} in {env}\n\nEnvbot-Action: {action}\nEnvbot-App: {app}\n"
                   f"Envbot-Env: {env}\n{extra}")
        commit(mark, message, when, [(path(app, env), values_text(texts[env], f"b{image}", digests[image]))])
    proc.stdin.close()
    if proc.wait() != 0:
        raise SystemExit("git fast-import failed")
    answers.close()


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) of PID and its children so far, from /proc (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(c) for c in children.read_text().split()]
    for one in pids:
        fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def fetch(url: str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=600) as response:
        response.read()
        if response.status != 200:
            raise SystemExit(f"{url}: HTTP {response.status}")
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    opts = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="envbot-dashboard-bench-"))
    try:
        with registry_service.start(tmp / "registry") as reg:
            env = {**os.environ, "REQUESTS_CA_BUNDLE": str(reg.ca_file), "ENVBOT_HELM": helm.helm_binary(),
                   "PYTHONPATH": str(REPO_ROOT)}
            for key in [k for k in env if k.startswith(("ARGOCD_", "GITHUB_", "AZURE_DEVOPS_"))]:
                del env[key]
            start = int(time.time()) - DAYS * 86_400
            revisions = source_repo(tmp / "source", start - 86_400, IMAGES)
            # The source repository is named in promotion.yaml (image labels may name only forge hosts).
            digests = [push_image(reg, "ai-app", f"b{i}", {"org.opencontainers.image.revision": revisions[i]})
                       for i in range(IMAGES)]
            remote = tmp / "environments.git"
            began = time.perf_counter()
            generate(remote, opts.commits, f"{reg.host}/ai-app", digests, start, str(tmp / "source"))
            print(f"generated {opts.commits:,} commits, {APPS} apps x {len(ENVS)} environments "
                  f"in {time.perf_counter() - began:.1f} s", flush=True)

            def metrics(*extra: str) -> tuple[float, float]:
                """(wall seconds, CPU seconds of envbot and its git children)."""
                began, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
                proc = subprocess.run([sys.executable, "-m", "bot.main", "metrics", "--repo", str(remote), "--json",
                                       *extra], env=env, cwd=REPO_ROOT, check=True, capture_output=True, text=True)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                prod = json.loads(proc.stdout)["environments"][-1]
                facts[extra] = (prod["deployment_frequency"]["deployments"], prod["lead_time_for_changes"]["commits"],
                                prod["lead_time_for_changes"]["changes_with_unknown_lead_time"],
                                prod["change_failure_rate"]["rate"])
                return (time.perf_counter() - began,
                        after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime)

            facts: dict[tuple[str, ...], tuple] = {}
            for label, extra in (("with registry and source lookups", ()), ("--offline", ("--offline",))):
                runs = [metrics(*extra) for _ in range(opts.runs)]
                deployments, commits, unknown, rate = facts[extra]
                print(f"envbot metrics (30d, all apps) {label}: {statistics.median(r[0] for r in runs):.2f} s wall, "
                      f"{statistics.median(r[1] for r in runs):.2f} s CPU (median of {opts.runs}); prod: "
                      f"{deployments} deployments, lead time over {commits} source commits ({unknown} changes "
                      f"unknown), change failure rate {rate}", flush=True)

            began = time.perf_counter()
            with dashboard_service.start(str(remote), tmp / "dashboard.log", ["--refresh", "3600"],
                                         env=env, timeout=600) as dash:
                print(f"dashboard up (clone + history read) in {time.perf_counter() - began:.1f} s")
                pages = {"release matrix": "/", "prod history": "/env/prod", "staging history": "/env/staging",
                         "metrics": "/metrics", "diff staging..prod": "/diff?app=app007&a=staging&b=prod"}
                pid = dash.process.proc.pid
                print("| page | first load | median after | p95 after | server CPU per request after |\n"
                      "| --- | ---: | ---: | ---: | ---: |")
                for name, page in pages.items():
                    first = fetch(dash.url + page)
                    cpu = process_cpu(pid)
                    times = sorted(fetch(dash.url + page) for _ in range(opts.requests))
                    cpu = (process_cpu(pid) - cpu) / opts.requests
                    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
                    print(f"| {name} | {first * 1000:.0f} ms | {statistics.median(times) * 1000:.0f} ms | "
                          f"{p95 * 1000:.0f} ms | {cpu * 1000:.0f} ms |", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
