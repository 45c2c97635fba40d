"""Packages a chart with a version that names its commit, pushes it to an OCI registry once, prints its pin.

Usage: publish_chart.py --chart charts/ai-app --repository oci://<registry>/helm --revision <sha> --build <n>
Prints `oci://<registry>/helm/<chart>:<version>@sha256:<digest>`, what `envbot update --chart` takes.

The version is `<Chart.yaml version>-<build>.g<12 hex of the commit>`: a SemVer pre-release, so the
build number orders builds and the commit names the source. Not `+<sha>` build metadata: an OCI tag
cannot hold '+', helm would push it as '_' (which Argo CD does not map back), and SemVer ignores
build metadata when comparing, so two commits would be the same version. A version is pushed once:
when the registry already has it (a re-run of the same build), its digest is reported, never replaced.
Azure Pipelines: --vso also sets the output variables chartRef, chartVersion and chartDigest.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from ruamel.yaml import YAML

_DIGEST = re.compile(r"^Digest:\s*(sha256:[0-9a-f]{64})\s*$", re.MULTILINE)
_REVISION = re.compile(r"^[0-9a-f]{12,40}$")


def chart_version(chart_dir: Path, build: str, revision: str) -> str:
    chart = YAML(typ="safe").load((chart_dir / "Chart.yaml").read_text())
    base = str(chart.get("version") or "")
    if not re.match(r"^\d+\.\d+\.\d+$", base):
        raise SystemExit(f"{chart_dir}/Chart.yaml: version {base!r} must be MAJOR.MINOR.PATCH; CI adds the "
                         f"pre-release part")
    if not build.isdigit() or (len(build) > 1 and build.startswith("0")):
        raise SystemExit(f"--build {build!r}: a build number (digits, no leading zero)")
    if not _REVISION.match(revision):
        raise SystemExit(f"--revision {revision!r}: a git commit sha (hex)")
    return f"{base}-{build}.g{revision[:12]}"


def _helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    # helm reports on stderr ("Pushed: ...", "Digest: ..."); both streams are read.
    return subprocess.run([helm, *args], capture_output=True, text=True, check=False, timeout=600)


def _fail(what: str, proc: subprocess.CompletedProcess[str]) -> SystemExit:
    lines = (proc.stderr.strip() or proc.stdout.strip() or "failed").splitlines()
    return SystemExit(f"{what}: {lines[-1].removeprefix('Error: ')}")


def existing_digest(helm: str, reference: str, tls: list[str]) -> str | None:
    """Digest of REFERENCE (oci://.../chart:version) when the registry has it; None when it does not."""
    with tempfile.TemporaryDirectory(prefix="publish-chart-") as tmp:
        repository, _, version = reference.rpartition(":")
        proc = _helm(helm, "pull", "--destination", tmp, "--version", version, *tls, "--", repository)
    if proc.returncode == 0:
        match = _DIGEST.search(proc.stderr + proc.stdout)
        return match.group(1) if match else None
    if "not found" in proc.stderr:
        return None
    raise _fail(f"cannot reach the registry for {reference}", proc)


def publish(chart_dir: Path, repository: str, version: str, ca_file: str | None, helm: str = "helm") -> str:
    """Push CHART_DIR as VERSION under REPOSITORY once; the pinnable oci://...:VERSION@sha256:... reference."""
    if not repository.startswith("oci://"):
        raise SystemExit(f"--repository {repository!r}: must start with oci://")
    name = YAML(typ="safe").load((chart_dir / "Chart.yaml").read_text())["name"]
    target = f"{repository.rstrip('/')}/{name}"
    tls = ["--ca-file", ca_file] if ca_file else []
    digest = existing_digest(helm, f"{target}:{version}", tls)
    if digest is not None:
        print(f"{target}:{version} is already in the registry ({digest}); not pushed again", file=sys.stderr)
        return f"{target}:{version}@{digest}"
    with tempfile.TemporaryDirectory(prefix="publish-chart-") as tmp:
        proc = _helm(helm, "package", "--version", version, "--destination", tmp, "--", str(chart_dir))
        if proc.returncode != 0:
            raise _fail(f"helm package {chart_dir}", proc)
        (package,) = Path(tmp).glob("*.tgz")
        proc = _helm(helm, "push", *tls, "--", str(package), repository.rstrip("/"))
        if proc.returncode != 0:
            raise _fail(f"helm push to {repository}", proc)
    match = _DIGEST.search(proc.stderr + proc.stdout)
    if not match:
        raise SystemExit(f"helm push to {repository} reported no digest:\n{proc.stderr}{proc.stdout}")
    return f"{target}:{version}@{match.group(1)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chart", type=Path, required=True, help="chart directory, e.g. charts/ai-app")
    parser.add_argument("--repository", required=True, help="oci://<registry>/<path> the chart is pushed under")
    parser.add_argument("--revision", required=True, help="the source commit (Build.SourceVersion)")
    parser.add_argument("--build", required=True, help="the build number that orders versions (Build.BuildId)")
    parser.add_argument("--ca-file", help="CA bundle of a private registry (default: $REQUESTS_CA_BUNDLE)")
    parser.add_argument("--helm", default="helm", help="the helm binary (default: helm on PATH)")
    parser.add_argument("--vso", action="store_true", help="also set Azure Pipelines output variables")
    args = parser.parse_args(argv)
    version = chart_version(args.chart, args.build, args.revision)
    ref = publish(args.chart, args.repository, version, args.ca_file or os.environ.get("REQUESTS_CA_BUNDLE"),
                  args.helm)
    print(ref)
    if args.vso:
        print(f"##vso[task.setvariable variable=chartRef;isOutput=true]{ref}")
        print(f"##vso[task.setvariable variable=chartVersion;isOutput=true]{version}")
        print(f"##vso[task.setvariable variable=chartDigest;isOutput=true]{ref.rsplit('@', 1)[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
