"""Build the app image (app/Dockerfile) offline: stage a wheelhouse and the project wheel, then `docker build`.

The Dockerfile installs only from build/wheelhouse and build/dist, so `docker build` needs no
network; the wheels come from the package index beforehand with `pip download`, for the image's
platform (manylinux x86_64, CPython 3.11) rather than this machine's. The wheelhouse is reused
while app/requirements.lock is unchanged.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.modelstore.digest import file_sha256
from devenv import REPO_ROOT, docker
from devenv.process import ServiceError

BUILD_DIR = REPO_ROOT / "build"
WHEELHOUSE = BUILD_DIR / "wheelhouse"
DIST_DIR = BUILD_DIR / "dist"
MODEL_DIR = BUILD_DIR / "model"
LOCK_FILE = REPO_ROOT / "app" / "requirements.lock"
DOCKERFILE = REPO_ROOT / "app" / "Dockerfile"
# The image's interpreter and platform: the official python:3.11 images and Debian bookworm (glibc 2.36).
PYTHON_VERSION = "3.11"
PLATFORMS = ("manylinux_2_36_x86_64", "manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
# A fixed mtime for the staged model file: the COPY layer's tar is then byte-identical on every
# machine, so registries deduplicate it even when the build cache is cold.
MODEL_MTIME = 315532800  # 1980-01-01, the earliest time a zip/wheel can hold
_STAMP = ".requirements-lock.sha256"
# What a copy of the checkout leaves out: state, caches, build output and models.
SOURCE_IGNORE = shutil.ignore_patterns(".git", ".venv*", ".devenv", "build", "node_modules", "*.egg-info",
                                       "__pycache__", ".*_cache", "*.onnx")


def _sha256_text(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_wheelhouse(dest: Path = WHEELHOUSE) -> Path:
    """Download the wheels of app/requirements.lock for the image into `dest`; reused while the lock is unchanged."""
    lock_digest = _sha256_text(LOCK_FILE)
    stamp = dest / _STAMP
    if stamp.is_file() and stamp.read_text().strip() == lock_digest:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".wheelhouse-", dir=dest.parent))
    try:
        platform_args = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
        command = [
            sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
            "--only-binary=:all:", "--no-deps", *platform_args,
            "--python-version", PYTHON_VERSION, "--implementation", "cp",
            "--dest", str(staging), "-r", str(LOCK_FILE),
        ]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise ServiceError(f"pip download of {LOCK_FILE.name} failed:\n{result.stderr[-4000:]}")
        (staging / _STAMP).write_text(lock_digest + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def build_project_wheel(dest: Path = DIST_DIR, source_dir: Path = REPO_ROOT) -> Path:
    """This project's wheel (app + bot packages) built from `source_dir`, alone in `dest`."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="wheel-build-") as tmp:
        # Build from a copy: setuptools writes build/ and *.egg-info next to the sources otherwise.
        source = Path(tmp) / "src"
        shutil.copytree(source_dir, source, ignore=SOURCE_IGNORE)
        result = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
             "--wheel-dir", str(dest), str(source)],
            capture_output=True, text=True,
        )
    if result.returncode != 0:
        raise ServiceError(f"building the project wheel failed:\n{result.stderr[-4000:]}")
    wheels = list(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise ServiceError(f"expected one wheel in {dest}, found {[w.name for w in wheels]}")
    return wheels[0]


def _stage_model(model_file: Path) -> str:
    if MODEL_DIR.exists():
        shutil.rmtree(MODEL_DIR)
    MODEL_DIR.mkdir(parents=True)
    staged = MODEL_DIR / "model.onnx"
    shutil.copyfile(model_file, staged)
    staged.chmod(0o644)
    os.utime(staged, (MODEL_MTIME, MODEL_MTIME))
    return file_sha256(staged)


@contextmanager
def _build_lock() -> Iterator[None]:
    """One image build at a time per checkout: builds share build/dist and build/model."""
    BUILD_DIR.mkdir(exist_ok=True)
    with (BUILD_DIR / ".image-build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def build_app_image(
    tag: str,
    base_image: str,
    model_file: Path | None = None,
    model_name: str = "model",
    model_version: str = "1",
    revision: str = "unknown",
    version: str = "0.0.0",
    source: str = "",
    source_dir: Path = REPO_ROOT,
) -> str:
    """Build app/Dockerfile as `tag` and return the image id (sha256:...).

    With `model_file` the model is baked in (target app-with-model), otherwise the image expects
    the model to be fetched at pod start (target app). `source_dir` is the checkout the app's
    code comes from.
    """
    build_wheelhouse()
    build_args = {"BASE_IMAGE": base_image, "REVISION": revision, "VERSION": version, "SOURCE": source}
    with _build_lock():
        build_project_wheel(DIST_DIR, source_dir)
        if model_file is not None:
            build_args.update(MODEL_SHA256=_stage_model(model_file), MODEL_NAME=model_name,
                              MODEL_VERSION=model_version)
            target = "app-with-model"
        else:
            # Keep a stale model out of the build context (and its upload to the engine).
            shutil.rmtree(MODEL_DIR, ignore_errors=True)
            target = "app"
        with tempfile.TemporaryDirectory(prefix="iid-") as tmp:
            iidfile = Path(tmp) / "iid"
            command = ["docker", "build", "--file", str(DOCKERFILE), "--target", target, "--tag", tag,
                       "--iidfile", str(iidfile)]
            for key, value in build_args.items():
                command += ["--build-arg", f"{key}={value}"]
            command.append(str(REPO_ROOT))
            # The classic builder: Debian's engine has no buildx; the Dockerfile suits BuildKit too.
            result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "DOCKER_BUILDKIT": "0"})
            if result.returncode != 0:
                raise ServiceError(f"docker build of {tag} failed:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}")
            return iidfile.read_text().strip()


def image_layers(ref: str) -> list[str]:
    """The image's layer digests (diff ids), base first."""
    result = docker.run("image", "inspect", "--format", "{{json .RootFS.Layers}}", ref)
    return json.loads(result.stdout)


if __name__ == "__main__":
    import argparse

    from app.cli import add_renamed_option
    from devenv import baseimage

    parser = argparse.ArgumentParser(
        prog="python -m devenv.image",
        description="Build the app image offline from a local wheelhouse. With --model-file the model is baked "
                    "in (Dockerfile target app-with-model); without, the pod's init container fetches it (target app).")
    parser.add_argument("--tag", default="ai-app:dev")
    parser.add_argument("--base-image", help="default: the debootstrap Debian base (devenv/baseimage.py)")
    add_renamed_option(parser, "--model-file", "--model", dest="model", type=Path, metavar="FILE",
                       help="bake this model file in (target app-with-model)")
    parser.add_argument("--model-name", default="model")
    parser.add_argument("--model-version", default="1")
    parser.add_argument("--revision", default="unknown")
    add_renamed_option(parser, "--app-version", "--version", dest="version", default="0.0.0",
                       help="the app's version label (default 0.0.0)")
    options = parser.parse_args()
    docker.ensure_engine()
    base = options.base_image or baseimage.ensure_base_image()
    print(build_app_image(options.tag, base, options.model, options.model_name, options.model_version,
                          options.revision, options.version))
