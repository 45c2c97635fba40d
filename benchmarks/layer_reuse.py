"""Bytes pushed by a code-only rebuild of the image with a baked-in model of at least 100 MB.

The Dockerfile puts the model layer before the code layers, so a rebuild after a code change must
push only the code layer, the image config and the manifest. This script builds the image with a
large model, pushes it to the local OCI registry (the ACR stand-in), changes one source file,
rebuilds, pushes again, and reads both manifests from the registry: every layer of the second image
whose digest the first already had was not uploaded.

    .venv/bin/python benchmarks/layer_reuse.py [--model-mb 120]
"""

from __future__ import annotations

import argparse
import json
import shutil
import ssl
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devenv import REPO_ROOT, baseimage, docker
from devenv import registry as registry_service
from devenv.image import build_app_image

MANIFEST_TYPES = ", ".join((
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
))


def manifest(registry: registry_service.Registry, repository: str, tag: str) -> tuple[dict, int]:
    request = urllib.request.Request(f"{registry.url}/v2/{repository}/manifests/{tag}",
                                     headers={"Accept": MANIFEST_TYPES})
    context = ssl.create_default_context(cafile=str(registry.ca_file))
    with urllib.request.urlopen(request, context=context) as resp:
        body = resp.read()
    return json.loads(body), len(body)


def push(ref: str) -> str:
    return subprocess.run(["docker", "push", ref], capture_output=True, text=True, check=True).stdout


def code_only_change(dest: Path) -> Path:
    """A copy of the source with one line of app code changed, as a developer's commit would."""
    for part in ("app", "bot", "pyproject.toml", "README.md"):
        src = REPO_ROOT / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, dest / part)
    init = dest / "app" / "__init__.py"
    init.write_text(init.read_text() + "\n# code-only change for the layer-reuse benchmark\n")
    return dest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-mb", type=int, default=120, help="size of the baked-in model (MiB)")
    args = parser.parse_args()
    started = docker.ensure_engine()
    base = baseimage.ensure_base_image()
    with tempfile.TemporaryDirectory(prefix="layer-reuse-") as tmp:
        work = Path(tmp)
        subprocess.run([sys.executable, "-m", "app", "train", "--out", str(work / "models"), "--model-name",
                        "iris-big", "--size-mb", str(args.model_mb)], check=True, capture_output=True)
        model = work / "models" / "iris-big" / "1" / "model.onnx"
        print(f"model: {model.stat().st_size / 2**20:.1f} MiB")
        with registry_service.start(work / "registry") as registry:
            repo = f"{registry.host}/ai-app-bench"
            build_app_image(f"{repo}:v1", base, model_file=model, model_name="iris-big", revision="v1")
            push(f"{repo}:v1")
            build_app_image(f"{repo}:v2", base, model_file=model, model_name="iris-big", revision="v2",
                            source_dir=code_only_change(work / "src"))
            second_push = push(f"{repo}:v2")
            first, _ = manifest(registry, "ai-app-bench", "v1")
            second, second_manifest_bytes = manifest(registry, "ai-app-bench", "v2")
    if started is not None:
        started.stop()
    known = {layer["digest"] for layer in first["layers"]}
    image_bytes = second["config"]["size"] + sum(layer["size"] for layer in second["layers"])
    new_layers = [layer for layer in second["layers"] if layer["digest"] not in known]
    pushed = second["config"]["size"] + second_manifest_bytes + sum(layer["size"] for layer in new_layers)
    print(f"image (compressed layers + config): {image_bytes / 2**20:.1f} MiB in {len(second['layers'])} layers")
    print(f"code-only rebuild pushed: {pushed / 2**20:.2f} MiB ({len(new_layers)} new layer(s) + config + "
          f"manifest) = {100 * pushed / image_bytes:.2f}% of the image")
    print(f"docker push reported {second_push.count('Layer already exists')} layers already present")
    return 0


if __name__ == "__main__":
    sys.exit(main())
