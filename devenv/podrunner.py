"""Run a rendered Kubernetes pod spec in the Docker engine, the way the kubelet would run it.

Stands in for a cluster node in tests and the local end-to-end run: the pod's init containers run
one after the other to completion, then its containers start; each keeps the rendered image, user,
groups, read-only root filesystem, dropped capabilities, no-new-privileges, env (with Secret and
ConfigMap references resolved from what the caller supplies), command/args and resource limits.
emptyDir volumes are host directories shared by the pod's containers, created as the kubelet does
(mode 0777, group fsGroup, setgid). Probes are evaluated from the rendered spec (httpGet, tcpSocket,
grpc).

Containers share the host network (`--network host`), so services on 127.0.0.1 such as Azurite
are reachable and probes hit 127.0.0.1:<containerPort>. Render the chart with a free port.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devenv import docker

POD_KINDS_WITH_TEMPLATE = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")
_LABEL = "ai-app.podrunner"
_BINARY_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_DECIMAL_SUFFIXES = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_ENV_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class PodError(RuntimeError):
    """The pod could not be run as rendered: an init container failed, a container exited, a probe failed."""


def pod_spec_of(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The pod spec inside a rendered Pod or workload (Deployment, Job, ...)."""
    kind = manifest.get("kind")
    if kind == "Pod":
        return dict(manifest["spec"])
    if kind in POD_KINDS_WITH_TEMPLATE:
        return dict(manifest["spec"]["template"]["spec"])
    raise PodError(f"{kind} {manifest.get('metadata', {}).get('name')!r} has no pod spec")


def memory_bytes(quantity: str | int) -> int:
    """Kubernetes memory quantity ("512Mi", "1G", 1048576) in bytes."""
    text = str(quantity)
    for suffix, factor in {**_BINARY_SUFFIXES, **_DECIMAL_SUFFIXES}.items():
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(float(text))


def cpu_cores(quantity: str | int | float) -> float:
    """Kubernetes CPU quantity ("250m", "2", 0.5) in cores."""
    text = str(quantity)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def _expand(value: str, env: Mapping[str, str]) -> str:
    # Kubernetes' $(VAR) expansion from variables defined earlier; unknown references stay as written.
    return _ENV_REF.sub(lambda m: env.get(m.group(1), m.group(0)), value)


@dataclass
class Pod:
    """One rendered pod run in Docker; use as a context manager or call start() and stop()."""

    spec: Mapping[str, Any]
    state_dir: Path
    name: str = "pod"
    # Secrets and ConfigMaps the pod references: name -> {key: value}.
    secrets: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    config_maps: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # Rendered image reference -> local image reference, for images not pulled from their registry.
    images: Mapping[str, str] = field(default_factory=dict)
    # Variables a cluster would inject (e.g. by the workload identity webhook), added to every container.
    injected_env: Mapping[str, str] = field(default_factory=dict)
    # Names the cluster's DNS would resolve (e.g. "<service>.<namespace>.svc") -> address.
    hosts: Mapping[str, str] = field(default_factory=dict)
    containers: dict[str, str] = field(default_factory=dict, init=False)
    _run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8], init=False)

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self, init_timeout: float = 600.0) -> None:
        """Prepare volumes, run the init containers to completion, start the containers."""
        self._check_pod_security()
        self.make_volumes()
        try:
            for container in self.spec.get("initContainers") or []:
                self._run_init(container, init_timeout)
            for container in self.spec["containers"]:
                self.containers[container["name"]] = docker.run(
                    "run", "--detach", *self.docker_args(container), *self.command_line(container)
                ).stdout.strip()
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
        """Remove the containers (SIGTERM, then SIGKILL after the grace period) and the volumes."""
        grace = str(int(self.spec.get("terminationGracePeriodSeconds", 30)))
        for container_id in self.containers.values():
            docker.run("stop", "--time", grace, container_id, check=False)
            docker.run("rm", "--force", "--volumes", container_id, check=False)
        self.containers.clear()
        shutil.rmtree(self._volume_root, ignore_errors=True)

    def __enter__(self) -> Pod:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- observation ---------------------------------------------------------------------------

    def logs(self, container: str) -> str:
        result = docker.run("logs", self.containers[container], check=False)
        return result.stdout + result.stderr

    def running(self, container: str) -> bool:
        state = docker.run("inspect", "--format", "{{.State.Running}}", self.containers[container], check=False)
        return state.stdout.strip() == "true"

    def port(self, container: str, port: int | str) -> int:
        """Number of a container port given by number or by name."""
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        for spec_port in self._container(container).get("ports") or []:
            if spec_port.get("name") == port:
                return int(spec_port["containerPort"])
        raise PodError(f"container {container!r} has no port named {port!r}")

    def probe(self, container: str, kind: str) -> bool:
        """One check of the rendered startupProbe / livenessProbe / readinessProbe; True when it passes."""
        probe = self._container(container).get(f"{kind}Probe")
        if probe is None:
            return self.running(container)  # the kubelet treats a missing probe as passing
        timeout = float(probe.get("timeoutSeconds", 1))
        if "httpGet" in probe:
            get = probe["httpGet"]
            scheme = get.get("scheme", "HTTP").lower()
            url = f"{scheme}://127.0.0.1:{self.port(container, get['port'])}{get.get('path', '/')}"
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    return 200 <= response.status < 400
            except (urllib.error.URLError, OSError):
                return False
        if "tcpSocket" in probe:
            with socket.socket() as sock:
                sock.settimeout(timeout)
                return sock.connect_ex(("127.0.0.1", self.port(container, probe["tcpSocket"]["port"]))) == 0
        if "grpc" in probe:
            return _grpc_health_check(int(probe["grpc"]["port"]), probe["grpc"].get("service", ""), timeout)
        raise PodError(f"{kind}Probe of {container!r}: only httpGet, tcpSocket and grpc probes are supported")

    def wait_exit(self, container: str, timeout: float = 300.0) -> int:
        """Wait for a container of a run-to-completion pod (a Job, a `helm test` Pod); its exit code."""
        try:
            result = subprocess.run(["docker", "wait", self.containers[container]], capture_output=True,
                                    text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise PodError(f"container {container!r} still running after {timeout:.0f}s") from exc
        if result.returncode != 0:
            raise PodError(f"docker wait {container!r} failed: {result.stderr}")
        return int(result.stdout.strip())

    def wait_ready(self, timeout: float = 300.0) -> None:
        """Poll every container's readinessProbe at its rendered period until all pass."""
        deadline = time.monotonic() + timeout
        pending = set(self.containers)
        while pending:
            for name in sorted(pending):
                if not self.running(name):
                    raise PodError(f"container {name!r} exited before it was ready:\n{self.logs(name)[-4000:]}")
                if self.probe(name, "readiness"):
                    pending.discard(name)
            if not pending:
                return
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {n}\n{self.logs(n)[-2000:]}" for n in sorted(pending))
                raise PodError(f"not ready after {timeout:.0f}s: {sorted(pending)}\n{logs}")
            period = min(
                float((self._container(n).get("readinessProbe") or {}).get("periodSeconds", 10)) for n in pending
            )
            time.sleep(min(period, 1.0))

    # --- translation ---------------------------------------------------------------------------

    @property
    def _volume_root(self) -> Path:
        return self.state_dir / f"{self.name}-{self._run_id}"

    def _container(self, name: str) -> Mapping[str, Any]:
        for container in [*(self.spec.get("initContainers") or []), *self.spec["containers"]]:
            if container["name"] == name:
                return container
        raise PodError(f"no container named {name!r}")

    def _security(self, container: Mapping[str, Any]) -> dict[str, Any]:
        return {**(self.spec.get("securityContext") or {}), **(container.get("securityContext") or {})}

    def _check_pod_security(self) -> None:
        # The kubelet refuses runAsNonRoot with uid 0; do the same instead of running as root.
        for container in [*(self.spec.get("initContainers") or []), *self.spec["containers"]]:
            security = self._security(container)
            if security.get("runAsNonRoot") and security.get("runAsUser", 0) == 0:
                raise PodError(f"container {container['name']!r}: runAsNonRoot needs a non-zero runAsUser")

    def make_volumes(self) -> None:
        """Create the pod's emptyDir volumes as host directories."""
        fs_group = (self.spec.get("securityContext") or {}).get("fsGroup")
        for volume in self.spec.get("volumes") or []:
            if "emptyDir" not in volume:
                raise PodError(f"volume {volume['name']!r}: only emptyDir volumes can run here")
            path = self._volume_root / volume["name"]
            path.mkdir(parents=True)
            # The kubelet's emptyDir: world-writable; with fsGroup, group-owned and setgid.
            path.chmod(0o777)
            if fs_group is not None:
                shutil.chown(path, group=int(fs_group))
                path.chmod(0o2777)

    def _env(self, container: Mapping[str, Any]) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            if "secretRef" in source:
                found = self._lookup(self.secrets, "Secret", source["secretRef"])
                env.update({prefix + k: v for k, v in found.items()})
            if "configMapRef" in source:
                found = self._lookup(self.config_maps, "ConfigMap", source["configMapRef"])
                env.update({prefix + k: v for k, v in found.items()})
        env.update(self.injected_env)
        for var in container.get("env") or []:
            if "value" in var:
                env[var["name"]] = _expand(str(var["value"]), env)
            elif "valueFrom" in var:
                ref = var["valueFrom"]
                if "secretKeyRef" in ref:
                    value = self._lookup(self.secrets, "Secret", ref["secretKeyRef"]).get(ref["secretKeyRef"]["key"])
                elif "configMapKeyRef" in ref:
                    value = self._lookup(self.config_maps, "ConfigMap", ref["configMapKeyRef"]).get(
                        ref["configMapKeyRef"]["key"]
                    )
                else:
                    raise PodError(f"env {var['name']!r}: only secretKeyRef and configMapKeyRef can run here")
                if value is None:
                    raise PodError(f"env {var['name']!r}: key missing in the referenced object")
                env[var["name"]] = value
            else:
                env[var["name"]] = ""
        return env

    @staticmethod
    def _lookup(
        store: Mapping[str, Mapping[str, str]], kind: str, ref: Mapping[str, Any]
    ) -> Mapping[str, str]:
        if ref["name"] in store:
            return store[ref["name"]]
        if ref.get("optional"):
            return {}
        raise PodError(f"{kind} {ref['name']!r} is referenced by the pod but was not supplied")

    def docker_args(self, container: Mapping[str, Any]) -> list[str]:
        """The `docker run` options that reproduce one container of the spec (before the image)."""
        security = self._security(container)
        pod_security = self.spec.get("securityContext") or {}
        args = [
            "--name", f"{self.name}-{self._run_id}-{container['name']}",
            "--label", f"{_LABEL}={self.name}-{self._run_id}",
            "--network", "host",
        ]
        for name, address in self.hosts.items():
            args += ["--add-host", f"{name}:{address}"]
        if "runAsUser" in security:
            group = security.get("runAsGroup")
            args += ["--user", f"{security['runAsUser']}" + (f":{group}" if group is not None else "")]
        for group in [pod_security.get("fsGroup"), *(pod_security.get("supplementalGroups") or [])]:
            if group is not None:
                args += ["--group-add", str(group)]
        if security.get("readOnlyRootFilesystem"):
            args.append("--read-only")
        capabilities = security.get("capabilities") or {}
        args += [f"--cap-drop={cap}" for cap in capabilities.get("drop") or []]
        args += [f"--cap-add={cap}" for cap in capabilities.get("add") or []]
        if security.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        if security.get("privileged"):
            args.append("--privileged")
        # seccompProfile RuntimeDefault is Docker's default profile: nothing to add.
        limits = (container.get("resources") or {}).get("limits") or {}
        if "memory" in limits:
            args += ["--memory", str(memory_bytes(limits["memory"]))]
        if "cpu" in limits:
            args += ["--cpus", f"{cpu_cores(limits['cpu']):g}"]
        for mount in container.get("volumeMounts") or []:
            source = self._volume_root / mount["name"]
            if not source.is_dir():
                raise PodError(f"container {container['name']!r} mounts unknown volume {mount['name']!r}")
            if mount.get("subPath"):
                source = source / mount["subPath"]
                source.mkdir(parents=True, exist_ok=True)
            options = ",readonly" if mount.get("readOnly") else ""
            args += ["--mount", f"type=bind,source={source},target={mount['mountPath']}{options}"]
        for name, value in self._env(container).items():
            args += ["--env", f"{name}={value}"]
        if container.get("workingDir"):
            args += ["--workdir", container["workingDir"]]
        if container.get("command"):
            args += ["--entrypoint", container["command"][0]]
        return args

    def command_line(self, container: Mapping[str, Any]) -> list[str]:
        """Image and arguments after the `docker run` options (command[1:] then args, $(VAR) expanded)."""
        image = self.images.get(container["image"], container["image"])
        env = self._env(container)
        command = list(container.get("command") or [])[1:]
        return [image, *(_expand(str(a), env) for a in [*command, *(container.get("args") or [])])]

    def _run_init(self, container: Mapping[str, Any], timeout: float) -> None:
        name = container["name"]
        argv = ["docker", "run", "--rm", *self.docker_args(container), *self.command_line(container)]
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            docker.run("rm", "--force", f"{self.name}-{self._run_id}-{name}", check=False)
            raise PodError(f"init container {name!r} still running after {timeout:.0f}s") from exc
        if result.returncode != 0:
            output = result.stdout[-2000:] + result.stderr[-4000:]
            raise PodError(f"init container {name!r} exited with {result.returncode}:\n{output}")


def _grpc_health_check(port: int, service: str, timeout: float) -> bool:
    """The kubelet's grpc probe: grpc.health.v1.Health/Check for `service`; passes on SERVING only."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError:
            return False
    return response.status == health_pb2.HealthCheckResponse.SERVING
