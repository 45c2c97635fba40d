"""The local end-to-end delivery run: the whole flow on one machine with real parts.

Azurite stands in for Blob, an OCI registry over TLS for ACR, the Docker engine builds and runs
the image, and a bare Git repository is the environments remote. The stages are those of
azure-pipelines.yml followed by what people do with envbot:

  train + publish model v1 -> platform team: publish the chart, seed the environments repo (the
  separate-repository layout of docs/bootstrap-aks.md: environments/ only, no charts/ beside it), every
  environment pinning that chart and model v1 -> CI: fetch model by digest, build, push image and chart,
  envbot update dev
  -> promote dev->staging (PR branch + rendered diff), merge -> promote staging->prod, merge
  -> chart-only release: change a template, CI publishes the chart, dev gets it; prod renders the
     same manifests until the promotion PR (whose diff shows the template change) is merged
  -> publish model v2 -> update dev -> promote to staging and prod
  -> roll prod back with git revert
  -> proposals on: update dev (model only) -> envbot propose opens staging red, soak passes, green,
     reviewer merges -> propose opens prod and merges it itself once green (autoMerge)
  -> model gates on for staging (evaluation set measured by envbot): model v3 (input renamed) refused
     with the signature diff, v4 (worse) refused with both figures, v5 (compatible) promoted and merged
  -> status, history
  -> run the release prod pins, as its pinned chart renders it, and predict
  -> start `envbot dashboard` over the environments remote, print its address, check it answers
     (stopped with the run unless --serve-dashboard keeps it up).

Run it with `scripts/e2e` (or `python -m devenv.delivery --workdir DIR`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from devenv import REPO_ROOT, STATE_DIR, baseimage, docker, helm, model_gate_stages, propose_stages
from devenv import azurite as azurite_service
from devenv import dashboard as dashboard_service
from devenv import registry as registry_service
from devenv.image import build_app_image
from devenv.podrunner import Pod, pod_spec_of
from devenv.process import free_port
from devenv.stages import StageFailed, StageRunner, run_command

# Who edits promotion.yaml in the local run's platform stages.
PLATFORM_TEAM = ("Platform Team", "platform@example.invalid")

APP = "ai-app"
MODEL_NAME = "iris-logreg"
CONTAINER = "models"
IMAGE_REPOSITORY = "ai-app"
# The people of the story: who merges pull requests in the environments repo.
REVIEWER = ("Riley Reviewer", "riley@example.invalid")
SAMPLE = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
# The chart-only release's template change: one more pod annotation.
CHART_CHANGE = 'ai-app.io/rollout-note: "chart-only release"'


@dataclass
class DeliveryRun:
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    registry: registry_service.Registry | None = None
    azurite: azurite_service.Azurite | None = None
    dockerd: object | None = None
    remote: Path | None = None
    models: dict[str, dict[str, str]] = field(default_factory=dict)
    image_ref: str = ""
    chart_refs: dict[str, str] = field(default_factory=dict)   # build number -> oci://...:version@digest
    revision: str = field(default_factory=lambda: _git_head())  # the source commit CI builds
    runner: StageRunner = field(default_factory=StageRunner)
    prediction: dict | None = None
    staging_proposal: dict | None = None   # the proposal envbot propose opened (propose_stages)
    dashboard: dashboard_service.Dashboard | None = None

    # --- helpers ----------------------------------------------------------------------------------

    def python(self, *args: str | Path) -> str:
        return run_command([sys.executable, *args], env=self.env)

    def envbot(self, *args: str | Path) -> str:
        envbot = Path(sys.executable).with_name("envbot")
        return run_command([envbot, *args, "--repo", self.remote_url], env=self.env)

    @property
    def remote_url(self) -> str:
        assert self.remote is not None
        return str(self.remote)

    def git(self, *args: str | Path, cwd: Path) -> str:
        return run_command(["git", *args], cwd=cwd, env=self.env, show=False)

    @contextmanager
    def platform_change(self, message: str) -> Iterator[Path]:
        """A clone of the environments repo the platform team edits; committed as them and pushed on exit."""
        clone = Path(tempfile.mkdtemp(prefix="platform-", dir=self.workdir))
        try:
            self.git("clone", "--quiet", self.remote_url, clone, cwd=self.workdir)
            yield clone
            name, email = PLATFORM_TEAM
            self.git("add", "-A", cwd=clone)
            self.git("-c", f"user.name={name}", "-c", f"user.email={email}", "commit", "--quiet", "-m", message,
                     cwd=clone)
            self.git("push", "--quiet", "origin", "main", cwd=clone)
        finally:
            shutil.rmtree(clone, ignore_errors=True)

    def model_uri(self, version: str) -> str:
        assert self.azurite is not None
        return f"{self.azurite.blob_endpoint}/{CONTAINER}/{MODEL_NAME}/{version}/model.onnx"

    # --- stages -----------------------------------------------------------------------------------

    def start_services(self) -> None:
        self.dockerd = docker.ensure_engine()
        self.registry = registry_service.start(self.workdir / "registry")
        self.azurite = azurite_service.start(self.workdir / "azurite")
        # What CI's service connections provide in Azure: storage access and registry trust.
        self.env = {
            **os.environ,
            "AZURE_STORAGE_CONNECTION_STRING": self.azurite.connection_string,
            "REQUESTS_CA_BUNDLE": str(self.registry.ca_file),
            "ENVBOT_GIT_NAME": "envbot",
            "ENVBOT_GIT_EMAIL": "envbot@example.invalid",
            "GIT_TERMINAL_PROMPT": "0",
            "ENVBOT_HELM": helm.helm_binary(),
        }
        for key in ("GITHUB_TOKEN", "SYSTEM_ACCESSTOKEN", "AZURE_DEVOPS_EXT_PAT", "ARGOCD_SERVER"):
            self.env.pop(key, None)  # a plain git remote: no forge, no Argo CD in this run
        print(f"    OCI registry (ACR stand-in): {self.registry.url}  (TLS, CA {self.registry.ca_file})")
        print(f"    Azurite Blob:                {self.azurite.blob_endpoint}")
        from azure.storage.blob import BlobServiceClient

        BlobServiceClient.from_connection_string(self.azurite.connection_string).create_container(CONTAINER)

    def publish_chart(self, build: str, chart_dir: Path = REPO_ROOT / "charts" / APP,
                      revision: str | None = None) -> None:
        """What CI's pushChart step runs: package, `helm push` to the registry once, record the digest."""
        assert self.registry is not None
        publish_chart = _pipeline_script("publish_chart")
        version = publish_chart.chart_version(chart_dir, build, revision or self.revision)
        print(f"    $ pipelines/scripts/publish_chart.py --chart {chart_dir.name} --build {build} (version {version})")
        try:
            ref = publish_chart.publish(chart_dir, f"oci://{self.registry.host}/helm", version,
                                        str(self.registry.ca_file), helm.helm_binary())
        except SystemExit as exc:
            raise StageFailed(str(exc)) from exc
        self.chart_refs[build] = ref
        print(f"    pushed {ref}")

    def create_environments_remote(self) -> None:
        """A bare repo seeded from environments/ alone, as docs/bootstrap-aks.md has a platform team do it.

        The separate-repository layout: no charts/ beside it, so every environment renders only the
        chart it pins; the seed pins the chart the platform team published first. Soak times and freeze
        windows are switched off here so the whole flow runs in minutes on any day of the week;
        everything else is the template as committed.
        """
        from bot.charts import parse_chart_ref
        from bot.values import ModelPin, ReleasePin, edit_chart_pin_text, edit_pin_text, read_pin_text

        self.publish_chart("1")
        self.remote = self.workdir / "environments.git"
        seed = self.workdir / "seed"
        shutil.copytree(REPO_ROOT / "environments", seed / "environments")
        promotion = seed / "environments" / "promotion.yaml"
        lines = promotion.read_text().splitlines(keepends=True)
        # The placeholder registry replaced by this one, as docs/bootstrap-aks.md has people do.
        text = "".join(_without_gates(lines)).replace("oci://aiappacr.azurecr.io/helm", f"oci://{self.registry.host}/helm")
        promotion.write_text(text)
        first = parse_chart_ref(self.chart_refs["1"])
        for pin_file in sorted((seed / "environments").glob("*/chart.yaml")):
            pin_file.write_text(edit_chart_pin_text(pin_file.read_text(), first, pin_file.name))
        # Every environment starts on the first published model (promotions read the model they replace).
        model = self.models["1"]
        for values_file in sorted((seed / "environments").glob("*/values.yaml")):
            current = read_pin_text(values_file.read_text(), values_file.name)
            seeded = ReleasePin(current.image, ModelPin("blob", MODEL_NAME, "1", model["uri"], model["sha256"]))
            values_file.write_text(edit_pin_text(values_file.read_text(), seeded, values_file.name))
        self.git("init", "--quiet", "--initial-branch=main", cwd=seed)
        self.git("add", ".", cwd=seed)
        self.git("-c", "user.name=Platform Team", "-c", "user.email=platform@example.invalid",
                 "commit", "--quiet", "-m", "Environments repo: dev, staging, prod", cwd=seed)
        self.git("clone", "--quiet", "--bare", seed, self.remote, cwd=self.workdir)
        shutil.rmtree(seed)
        print(f"    environments remote: {self.remote} (bare)")

    def publish_model(self, version: str) -> None:
        out = self.workdir / "models"
        trained = json.loads(self.python("-m", "app", "train", "--out", out, "--model-name", MODEL_NAME,
                                         "--model-version", version, "--json"))
        published = json.loads(self.python("-m", "app", "publish-model", trained["path"],
                                           "--uri", self.model_uri(version), "--json"))
        self.models[version] = published

    def ci_fetch_model(self) -> None:
        model = self.models["1"]
        self.python("-m", "app", "fetch-model", "--uri", model["uri"], "--sha256", model["sha256"],
                    "--dest", self.workdir / "ci-model")

    def ci_build_image(self) -> None:
        revision = self.revision
        image_id = build_app_image(
            f"{IMAGE_REPOSITORY}:{revision[:12]}",
            baseimage.ensure_base_image(),
            model_file=self.workdir / "ci-model" / "model.onnx",
            model_name=MODEL_NAME,
            model_version="1",
            revision=revision,
            version=_project_version(),
            source=str(REPO_ROOT),
        )
        print(f"    built {IMAGE_REPOSITORY}:{revision[:12]} ({image_id[:19]}), model {MODEL_NAME}@1 baked in")

    def ci_push_image(self) -> None:
        assert self.registry is not None
        revision = self.revision[:12]
        build_id = time.strftime("%Y%m%d.%H%M%S")
        target = f"{self.registry.host}/{IMAGE_REPOSITORY}"
        for tag in (revision, build_id):
            docker.run("tag", f"{IMAGE_REPOSITORY}:{revision}", f"{target}:{tag}")
            run_command(["docker", "push", "--quiet", f"{target}:{tag}"])
        digest = docker.run("image", "inspect", "--format", "{{json .RepoDigests}}", f"{target}:{revision}").stdout
        pinned = [d for d in json.loads(digest) if d.startswith(target + "@")]
        if not pinned:
            raise StageFailed(f"the registry reported no digest for {target}:{revision}")
        self.image_ref = pinned[0]
        print(f"    pushed {target}:{revision} and :{build_id} -> {self.image_ref}")

    def update_dev(self, model_version: str, chart_build: str = "2") -> None:
        self.envbot("update", "dev", "--image", self.image_ref, "--model", self.models[model_version]["uri"],
                    "--chart", self.chart_refs[chart_build], "--source-repo", REPO_ROOT)

    def ci_publish_changed_chart(self) -> None:
        """A commit that changes only a chart template; CI publishes it as a new chart version."""
        source = self.workdir / "chart-change"
        chart = source / "charts" / APP
        shutil.copytree(REPO_ROOT / "charts" / APP, chart)
        deployment = chart / "templates" / "deployment.yaml"
        deployment.write_text(_with_pod_annotation(deployment.read_text(), CHART_CHANGE))
        self.git("init", "--quiet", "--initial-branch=main", cwd=source)
        self.git("add", ".", cwd=source)
        self.git("-c", "user.name=App Developer", "-c", "user.email=dev@example.invalid", "commit", "--quiet",
                 "-m", "chart: annotate the pods with a rollout note", cwd=source)
        revision = self.git("rev-parse", "HEAD", cwd=source).strip()
        self.publish_chart("3", chart, revision)

    def chart_only_release(self) -> None:
        """dev gets the new chart at once; prod renders the same manifests until its promotion is merged."""
        prod_before = self.git("ls-remote", self.remote_url, "refs/heads/main", cwd=self.workdir).split()[0]
        self.envbot("update", "dev", "--image", self.image_ref, "--chart", self.chart_refs["3"])
        self.promote_and_merge("dev", "staging")
        description = self.envbot("promote", "staging", "prod", "--source-repo", REPO_ROOT)
        if f"+        {CHART_CHANGE}" not in description or "`chart.version`" not in description:
            raise StageFailed("the prod promotion's pull request does not show the chart row and the template change")
        unchanged = self.envbot("diff", f"prod@{prod_before}", "prod")
        if unchanged.strip() != "No rendered change.":
            raise StageFailed(f"prod's rendered manifests changed before the promotion was merged:\n{unchanged}")
        print("    prod renders the same manifests while the promotion pull request is open")
        self.merge_pull_request(f"envbot/promote-{APP}-prod", "promotion to prod")
        merged = self.envbot("diff", f"prod@{prod_before}", "prod")
        if f"+        {CHART_CHANGE}" not in merged:
            raise StageFailed("prod does not render the template change after the merge")

    def promote_and_merge(self, src: str, dst: str) -> None:
        self.envbot("promote", src, dst, "--source-repo", REPO_ROOT)
        self.merge_pull_request(f"envbot/promote-{APP}-{dst}", f"promotion to {dst}")

    def rollback_and_merge(self, env: str) -> None:
        self.envbot("rollback", env)
        self.merge_pull_request(f"envbot/rollback-{APP}-{env}", f"rollback of {env}")

    def merge_pull_request(self, branch: str, what: str) -> None:
        """What a reviewer does on a plain git remote: merge the pushed branch into main."""
        clone = Path(tempfile.mkdtemp(prefix="review-", dir=self.workdir))
        try:
            self.git("clone", "--quiet", self.remote_url, clone, cwd=self.workdir)
            name, email = REVIEWER
            self.git("-c", f"user.name={name}", "-c", f"user.email={email}", "merge", "--no-ff", "--quiet",
                     "-m", f"Merge {branch}: {what}", f"origin/{branch}", cwd=clone)
            self.git("push", "--quiet", "origin", "main", f":{branch}", cwd=clone)
        finally:
            shutil.rmtree(clone, ignore_errors=True)
        print(f"    {name} reviewed the diff and merged {branch} into main")

    def show_status_and_history(self) -> None:
        self.envbot("status")
        self.envbot("history", "prod")

    def run_prod_release(self) -> None:
        """Render prod's pinned chart with prod's values as Argo CD would, then run that pod in Docker."""
        from bot.values import read_chart_pin_text

        assert self.azurite is not None and self.registry is not None
        checkout = self.workdir / "prod-checkout"
        self.git("clone", "--quiet", "--depth", "1", self.remote_url, checkout, cwd=self.workdir)
        chart = read_chart_pin_text((checkout / "environments" / "prod" / "chart.yaml").read_text(), "prod/chart.yaml")
        pulled = self.workdir / "prod-chart"
        pulled.mkdir()
        # Argo CD's OCI source: the chart by the digest prod pins.
        run_command([helm.helm_binary(), "pull", "--destination", pulled, "--ca-file", self.registry.ca_file,
                     "--", f"{chart.repository}@{chart.digest}"], env=self.env)
        (package,) = pulled.glob("*.tgz")
        print(f"    prod pins chart {chart.repository}:{chart.version}@{chart.digest}")
        port = free_port()
        secret = "ai-app-storage"
        rendered = run_command([
            helm.helm_binary(), "template", APP, package,
            "--namespace", "ai-app-prod",
            "-f", checkout / "environments" / "prod" / "values.yaml",
            # Local differences from AKS: no workload identity here, so the Azurite connection string
            # comes from a Secret the way a user would inject one; the pod listens on a free port.
            "--set", "workloadIdentity.enabled=false",
            "--set-json", f'extraEnvFrom=[{{"secretRef":{{"name":"{secret}"}}}}]',
            "--set", f"server.port={port}",
        ], env=self.env, show=False)
        deployment = _find(rendered, "Deployment")
        if CHART_CHANGE.split(": ")[0] not in deployment["spec"]["template"]["metadata"].get("annotations", {}):
            raise StageFailed("prod's pinned chart is not the chart-only release (its annotation is missing)")
        spec = pod_spec_of(deployment)
        pin_image = spec["containers"][0]["image"]
        print(f"    prod pins {pin_image}")
        docker.run("pull", pin_image)
        with Pod(spec, self.workdir / "pod", name="ai-app-prod",
                 secrets={secret: {"AZURE_STORAGE_CONNECTION_STRING": self.azurite.connection_string}}) as pod:
            pod.wait_ready()
            host_port = pod.port(spec["containers"][0]["name"], port)
            with urllib.request.urlopen(f"http://127.0.0.1:{host_port}/version", timeout=10) as resp:
                version = json.load(resp)
            body = json.dumps({"id": "e2e-1", "inputs": [
                {"name": "input", "shape": [len(SAMPLE), 4], "datatype": "FP32", "data": SAMPLE}]}).encode()
            request = urllib.request.Request(
                f"http://127.0.0.1:{host_port}/v2/models/{version['model']['name']}/infer", data=body,
                headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as resp:
                self.prediction = json.load(resp)
        print(f"    /version: {json.dumps(version)}")
        print(f"    prediction: {json.dumps(self.prediction)}")
        # After the rollback prod must serve model v1 again, by the digest that was published.
        expected = self.models["1"]
        if (version["model"]["version"], version["model"]["sha256"]) != ("1", expected["sha256"]):
            raise StageFailed(f"prod serves model {version['model']}, expected {MODEL_NAME} v1 "
                              f"sha256 {expected['sha256']} after the rollback")

    def start_dashboard(self) -> None:
        """`envbot dashboard` over the environments remote; checks that its pages answer."""
        self.dashboard = dashboard_service.start(self.remote_url, self.workdir / "dashboard.log",
                                                 ["--since", "1d"], env=self.env)
        for page in ("/", "/env/prod", "/metrics"):
            with urllib.request.urlopen(self.dashboard.url + page, timeout=60) as response:
                if response.status != 200:
                    raise StageFailed(f"dashboard {page} answered HTTP {response.status}")
        print(f"    dashboard: {self.dashboard.url}/  (release matrix, history, diffs, DORA metrics)")

    # --- the run ----------------------------------------------------------------------------------

    def stages(self) -> list[tuple[str, object]]:
        return [
            ("Start the local Azure stand-ins (Docker engine, OCI registry over TLS, Azurite)", self.start_services),
            ("Data scientist: train and publish model v1 to Blob", lambda: self.publish_model("1")),
            ("Create the environments repo (bare Git remote)", self.create_environments_remote),
            ("CI: fetch the pinned model by digest", self.ci_fetch_model),
            ("CI: build the image with the model baked in", self.ci_build_image),
            ("CI: push the image to the registry", self.ci_push_image),
            ("CI: push the chart to the registry (helm push), record its digest", lambda: self.publish_chart("2")),
            ("CI: envbot update dev", lambda: self.update_dev("1")),
            ("Promote dev -> staging (pull request) and merge", lambda: self.promote_and_merge("dev", "staging")),
            ("Promote staging -> prod (pull request) and merge", lambda: self.promote_and_merge("staging", "prod")),
            ("Chart-only change: CI publishes the changed chart", self.ci_publish_changed_chart),
            ("Chart-only release: dev gets it, prod only when its promotion is merged", self.chart_only_release),
            ("Data scientist: publish model v2", lambda: self.publish_model("2")),
            ("Model release: envbot update dev with model v2", lambda: self.update_dev("2", chart_build="3")),
            ("Promote model v2 dev -> staging, merge", lambda: self.promote_and_merge("dev", "staging")),
            ("Promote model v2 staging -> prod, merge", lambda: self.promote_and_merge("staging", "prod")),
            ("Roll prod back with git revert, merge", lambda: self.rollback_and_merge("prod")),
            *propose_stages.stages(self),
            *model_gate_stages.stages(self),
            ("envbot status and history", self.show_status_and_history),
            ("Run the release prod pins, as the chart renders it, and predict", self.run_prod_release),
            ("Start the delivery dashboard (envbot dashboard)", self.start_dashboard),
        ]

    def stop(self) -> None:
        for service in (self.dashboard, self.registry, self.azurite, self.dockerd):
            if service is not None:
                service.stop()


def _without_gates(lines: list[str]) -> list[str]:
    """promotion.yaml with soak times zeroed and freeze windows dropped (local run only)."""
    out: list[str] = []
    skipping_indent: int | None = None
    for line in lines:
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if skipping_indent is not None:
            if stripped and indent <= skipping_indent:
                skipping_indent = None
            else:
                continue
        if stripped.startswith("soak:"):
            out.append(f"{' ' * indent}soak: 0s  # local run: no soak time\n")
        elif stripped.startswith("freeze:"):
            out.append(f"{' ' * indent}freeze: []  # local run: no freeze windows\n")
            skipping_indent = indent
        else:
            out.append(line)
    return out


def _pipeline_script(name: str):  # -> module
    """A script of pipelines/scripts (what CI runs), loaded by path: they are not a package."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "pipelines" / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _with_pod_annotation(deployment: str, annotation: str) -> str:
    """The chart's Deployment template with ANNOTATION as one more pod annotation."""
    index = deployment.index("ai-app.io/model-sha256:")
    line_start = deployment.rindex("\n", 0, index) + 1
    return deployment[:line_start] + deployment[line_start:index] + annotation + "\n" + deployment[line_start:]


def _find(rendered: str, kind: str) -> dict:
    from ruamel.yaml import YAML

    for doc in YAML(typ="safe").load_all(rendered):
        if doc and doc.get("kind") == kind:
            return doc
    raise StageFailed(f"helm template rendered no {kind}")


def _git_head() -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()


def _project_version() -> str:
    from importlib.metadata import version

    return version("ai-app-gitops")


def _serve_until_interrupted(url: str) -> None:
    print(f"\nThe dashboard stays up at {url}/ ; Ctrl-C stops it and the local services.", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("stopping", flush=True)


LEAD_TIME_STAGES = ("CI: fetch", "CI: build", "CI: push", "CI: envbot update dev")


def _print_summary(run: DeliveryRun, timings: Path | None) -> None:
    lead = sum(t.seconds for t in run.runner.timings if t.name.startswith(LEAD_TIME_STAGES))
    print("\nStage timings:\n" + run.runner.timing_table())
    print(f"\nLead time from a commit to dev pinned (fetch model + build + push + envbot update): {lead:.1f}s")
    if timings:
        timings.write_text(json.dumps(
            {"stages": [t.__dict__ for t in run.runner.timings], "lead_time_seconds": lead}, indent=2))
    dashboard = run.dashboard.url if run.dashboard else "-"
    print(f"""
Done. prod runs {MODEL_NAME} v1 again after the rollback (v2 was reverted with git revert), with the
chart-only release it was promoted (the rollback reverted the model release, not the chart).
Next steps:
  - inspect the environments repo: git clone {run.remote_url} && git -C environments log --stat
  - try envbot yourself: .venv/bin/envbot status --repo {run.remote_url}
  - the dashboard: {dashboard}/ (stopped with the run; scripts/e2e --serve-dashboard keeps it up)
  - on AKS: docs/bootstrap-aks.md; CI: docs/pipelines.md""")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/e2e", description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=STATE_DIR / "delivery",
                        help="where the run keeps its registry, blobs, repos and pod volumes (emptied first)")
    parser.add_argument("--timings", type=Path, help="write the stage timings as JSON to this file")
    parser.add_argument("--serve-dashboard", action="store_true",
                        help="keep the dashboard (and the registry and Azurite it reads) running until Ctrl-C")
    args = parser.parse_args(argv)
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    run = DeliveryRun(workdir=args.workdir.resolve())
    try:
        try:
            run.runner.run(run.stages())
        except StageFailed:
            return 1
        _print_summary(run, args.timings)
        if args.serve_dashboard and run.dashboard is not None:
            _serve_until_interrupted(run.dashboard.url)
    finally:
        run.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
