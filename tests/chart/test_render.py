"""What the chart renders for each feature: the contract the environments and envbot rely on."""

from __future__ import annotations

import re

import pytest

from tests.chart.helmchart import (
    CHART_DIR,
    CLIENT_ID,
    ENVIRONMENTS,
    IMAGE_DIGEST,
    MODEL_SHA256,
    Rendered,
    RenderError,
    environment_values,
    helm,
    load_yaml,
    render,
)

LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
BLOB_URI = "https://aiappmodels.blob.core.windows.net/models/iris-logreg/1/model.onnx"
BLOB = {"source": "blob", "uri": BLOB_URI, "sha256": MODEL_SHA256}


def selector(rendered: Rendered) -> dict[str, str]:
    return rendered.deployment()["spec"]["selector"]["matchLabels"]


# --- image -------------------------------------------------------------------------------------


def test_digest_wins_over_tag(helm_bin: str) -> None:
    rendered = render(helm_bin, {"image": {"tag": "1a2b3c4", "digest": IMAGE_DIGEST}})
    assert rendered.app_container()["image"] == f"aiappacr.azurecr.io/ai-app@{IMAGE_DIGEST}"
    # People still see the tag, as the version label.
    assert rendered.deployment()["metadata"]["labels"]["app.kubernetes.io/version"] == "1a2b3c4"


def test_tag_then_app_version_without_digest(helm_bin: str) -> None:
    assert render(helm_bin, {"image": {"tag": "1a2b3c4"}}).app_container()["image"].endswith(":1a2b3c4")
    app_version = load_yaml(CHART_DIR / "Chart.yaml")["appVersion"]
    assert render(helm_bin).app_container()["image"].endswith(f":{app_version}")


def test_every_container_runs_the_same_image(helm_bin: str) -> None:
    rendered = render(helm_bin, {"image": {"digest": IMAGE_DIGEST}, "model": BLOB})
    pod = rendered.pod_spec()
    images = {c["image"] for c in [*pod["initContainers"], *pod["containers"]]}
    images |= {c["image"] for p in rendered.of_kind("Pod") for c in p["spec"]["containers"]}
    assert images == {f"aiappacr.azurecr.io/ai-app@{IMAGE_DIGEST}"}


# --- model -------------------------------------------------------------------------------------


def test_image_mode_verifies_the_baked_model(helm_bin: str) -> None:
    rendered = render(helm_bin, {"model": {"sha256": MODEL_SHA256, "name": "iris-forest", "version": "3"}})
    assert "initContainers" not in rendered.pod_spec()
    env = rendered.env()
    assert env["MODEL_SHA256"] == MODEL_SHA256
    assert env["MODEL_NAME"] == "iris-forest" and env["MODEL_VERSION"] == "3"
    assert "MODEL_PATH" not in env  # the image's own MODEL_PATH points at the baked file
    assert {v["name"] for v in rendered.pod_spec()["volumes"]} == {"tmp"}


@pytest.mark.parametrize(
    ("source", "uri"), [("blob", BLOB_URI), ("s3", "s3://models/iris-logreg/1/model.onnx")]
)
def test_fetch_mode_downloads_into_a_read_only_emptydir(helm_bin: str, source: str, uri: str) -> None:
    rendered = render(helm_bin, {"model": {"source": source, "uri": uri, "sha256": MODEL_SHA256}})
    pod = rendered.pod_spec()
    (init,) = pod["initContainers"]
    assert init["args"] == ["fetch-model", "--uri", uri, "--sha256", MODEL_SHA256, "--dest", "/models"]
    assert "command" not in init  # the image's entrypoint, python -m app
    init_mounts = {m["name"]: m for m in init["volumeMounts"]}
    assert init_mounts["model"]["mountPath"] == "/models" and not init_mounts["model"].get("readOnly")
    app_mounts = {m["name"]: m for m in rendered.app_container()["volumeMounts"]}
    assert app_mounts["model"]["readOnly"] is True
    assert rendered.env()["MODEL_PATH"] == "/models/model.onnx"
    assert rendered.env()["MODEL_SHA256"] == MODEL_SHA256
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["model"]["emptyDir"]["sizeLimit"] == "2Gi"


def test_a_new_model_digest_rolls_the_pods(helm_bin: str) -> None:
    before = render(helm_bin, {"model": BLOB}).deployment()["spec"]["template"]
    after = render(helm_bin, {"model": {**BLOB, "sha256": "ef" * 32}}).deployment()["spec"]["template"]
    assert before["metadata"]["annotations"]["ai-app.io/model-sha256"] == MODEL_SHA256
    assert after["metadata"]["annotations"]["ai-app.io/model-sha256"] == "ef" * 32


def test_model_labels_are_sanitised(helm_bin: str) -> None:
    name = "Iris.Forest_" + "x" * 70 + "-"
    labels = render(helm_bin, {"model": {"name": name, "version": "2024.06-rc1"}}).deployment()["spec"][
        "template"]["metadata"]["labels"]
    assert LABEL_VALUE.match(labels["ai-app.io/model-name"]) and len(labels["ai-app.io/model-name"]) <= 63
    assert labels["ai-app.io/model-name"].startswith("Iris.Forest_x")
    assert labels["ai-app.io/model-version"] == "2024.06-rc1"


def test_extra_env_reaches_the_init_and_app_containers(helm_bin: str) -> None:
    values = {"model": BLOB, "extraEnvFrom": [{"secretRef": {"name": "storage"}}],
              "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}]}
    pod = render(helm_bin, values).pod_spec()
    for container in [*pod["initContainers"], *pod["containers"]]:
        assert container["envFrom"] == [{"secretRef": {"name": "storage"}}]
        assert {"name": "HTTPS_PROXY", "value": "http://proxy:3128"} in container["env"]


# --- identity ----------------------------------------------------------------------------------


def test_workload_identity(helm_bin: str) -> None:
    rendered = render(helm_bin, {"workloadIdentity": {"enabled": True, "clientId": CLIENT_ID},
                                 "serviceAccount": {"name": "ai-app-sa"}})
    account = rendered.one("ServiceAccount")
    assert account["metadata"]["name"] == "ai-app-sa"
    assert account["metadata"]["annotations"]["azure.workload.identity/client-id"] == CLIENT_ID
    template = rendered.deployment()["spec"]["template"]
    assert template["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert template["spec"]["serviceAccountName"] == "ai-app-sa"
    # The webhook projects its own token; the Kubernetes API token stays unmounted.
    assert template["spec"]["automountServiceAccountToken"] is False
    assert account["automountServiceAccountToken"] is False


def test_without_workload_identity(helm_bin: str) -> None:
    rendered = render(helm_bin)
    assert "azure.workload.identity/use" not in rendered.deployment()["spec"]["template"]["metadata"]["labels"]
    assert "annotations" not in rendered.one("ServiceAccount")["metadata"]


def test_no_secret_material_in_any_values_file() -> None:
    for path in [CHART_DIR / "values.yaml", *(environment_values(e) for e in ENVIRONMENTS)]:
        text = path.read_text()
        for marker in ("AccountKey=", "AZURE_STORAGE_CONNECTION_STRING", "SharedAccessSignature", "sig=",
                       "AWS_SECRET_ACCESS_KEY", "clientSecret"):
            assert marker not in text, f"{path.name} holds {marker}"


# --- workload and availability -----------------------------------------------------------------


def test_rolling_update_never_drops_capacity(helm_bin: str) -> None:
    strategy = render(helm_bin).deployment()["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0
    assert strategy["rollingUpdate"]["maxSurge"] == "25%"


def test_probes_use_the_v2_health_endpoints(helm_bin: str) -> None:
    container = render(helm_bin).app_container()
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    startup = container["startupProbe"]
    assert startup["httpGet"]["path"] == "/v2/health/ready"
    # Room to load a model: at least 3 minutes before the kubelet gives up.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 180
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]


def test_topology_spread_over_zones_and_nodes(helm_bin: str) -> None:
    rendered = render(helm_bin)
    constraints = rendered.pod_spec()["topologySpreadConstraints"]
    assert [c["topologyKey"] for c in constraints] == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]
    for constraint in constraints:
        assert constraint["labelSelector"]["matchLabels"] == selector(rendered)
        assert constraint["matchLabelKeys"] == ["pod-template-hash"]


def test_hpa_owns_the_replica_count(helm_bin: str) -> None:
    rendered = render(helm_bin, {"autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 9}})
    assert "replicas" not in rendered.deployment()["spec"]
    hpa = rendered.one("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": rendered.deployment()["metadata"]["name"]}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 9)
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    assert "HorizontalPodAutoscaler" not in render(helm_bin).kinds()


def test_pdb_takes_min_available_or_max_unavailable(helm_bin: str) -> None:
    assert render(helm_bin).one("PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    spec = render(helm_bin, {"pdb": {"minAvailable": "50%"}}).one("PodDisruptionBudget")["spec"]
    assert spec["minAvailable"] == "50%" and "maxUnavailable" not in spec


def test_resources_have_defaults(helm_bin: str) -> None:
    resources = render(helm_bin).app_container()["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"} and resources["limits"]["memory"]


# --- traffic -----------------------------------------------------------------------------------


def test_service_defaults_to_cluster_ip(helm_bin: str) -> None:
    rendered = render(helm_bin)
    service = rendered.one("Service")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"] == selector(rendered)
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert "annotations" not in service["metadata"]


def test_load_balancer_with_azure_dns_label(helm_bin: str) -> None:
    service = render(helm_bin, {"service": {"type": "LoadBalancer", "azureDnsLabel": "ai-app-demo",
                                            "loadBalancerSourceRanges": ["203.0.113.0/24"]}}).one("Service")
    annotations = service["metadata"]["annotations"]
    assert annotations["service.beta.kubernetes.io/azure-dns-label-name"] == "ai-app-demo"
    assert annotations["service.beta.kubernetes.io/port_80_health-probe_request-path"] == "/v2/health/ready"
    assert "service.beta.kubernetes.io/azure-load-balancer-internal" not in annotations
    assert service["spec"]["loadBalancerSourceRanges"] == ["203.0.113.0/24"]


def test_ingress(helm_bin: str) -> None:
    values = {"ingress": {"enabled": True, "className": "nginx",
                          "hosts": [{"host": "ai.example.com", "paths": [{"path": "/v2", "pathType": "Prefix"}]}],
                          "tls": [{"secretName": "ai-tls", "hosts": ["ai.example.com"]}]}}
    rendered = render(helm_bin, values)
    ingress = rendered.one("Ingress")
    assert ingress["apiVersion"] == "networking.k8s.io/v1"
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"secretName": "ai-tls", "hosts": ["ai.example.com"]}]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "ai.example.com"
    assert rule["http"]["paths"][0]["backend"]["service"] == {
        "name": rendered.one("Service")["metadata"]["name"], "port": {"name": "http"}}
    assert "Ingress" not in render(helm_bin).kinds()


def network_policies(rendered: Rendered) -> tuple[dict, dict]:
    """(the inference pods' policy, the check pods' policy)."""
    by_name = {p["metadata"]["name"]: p for p in rendered.of_kind("NetworkPolicy")}
    assert set(by_name) == {"ai-app", "ai-app-checks"}
    return by_name["ai-app"], by_name["ai-app-checks"]


def test_network_policy(helm_bin: str) -> None:
    rendered = render(helm_bin)
    policy = network_policies(rendered)[0]["spec"]
    assert policy["podSelector"]["matchLabels"] == selector(rendered)
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = policy["ingress"]
    namespaces = [p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                  for p in ingress["from"] if "namespaceSelector" in p]
    assert namespaces == ["app-routing-system", "monitoring"]
    # The check pods (helm test pod, smoke-check Job) and only they from the release namespace.
    (test_peer,) = [p for p in ingress["from"] if "podSelector" in p]
    job_labels = rendered.one("Job")["spec"]["template"]["metadata"]["labels"]
    for labels in (rendered.one("Pod")["metadata"]["labels"], job_labels):
        assert test_peer["podSelector"]["matchLabels"].items() <= labels.items()
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
    dns, storage = policy["egress"]
    assert {(p["port"], p["protocol"]) for p in dns["ports"]} == {(53, "UDP"), (53, "TCP")}
    assert storage["ports"] == [{"port": 443, "protocol": "TCP"}]
    assert storage["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}}]


def test_check_pods_reach_only_dns_and_the_inference_pods(helm_bin: str) -> None:
    rendered = render(helm_bin, {"server": {"port": 8081}})
    checks = network_policies(rendered)[1]["spec"]
    assert checks["policyTypes"] == ["Ingress", "Egress"] and checks["ingress"] == []
    dns, app = checks["egress"]
    assert {(p["port"], p["protocol"]) for p in dns["ports"]} == {(53, "UDP"), (53, "TCP")}
    assert app["to"] == [{"podSelector": {"matchLabels": selector(rendered)}}]
    assert app["ports"] == [{"port": 8081, "protocol": "TCP"}]


def test_smoke_check_job_is_a_post_sync_hook(helm_bin: str) -> None:
    rendered = render(helm_bin, {"model": {"name": "iris-forest"}, "smokeCheck": {"timeoutSeconds": 90}})
    job = rendered.one("Job")
    annotations = job["metadata"]["annotations"]
    assert annotations["argocd.argoproj.io/hook"] == "PostSync"
    assert annotations["argocd.argoproj.io/hook-delete-policy"] == "BeforeHookCreation"
    assert annotations["helm.sh/hook"] == "post-install,post-upgrade"
    assert job["spec"]["backoffLimit"] == 0 and job["spec"]["activeDeadlineSeconds"] == 150
    # The same check as the helm test pod: one source for the script, the model and the deadline passed.
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["command"] == rendered.one("Pod")["spec"]["containers"][0]["command"]
    assert pod["containers"][0]["args"][1:] == ["iris-forest", "90"]
    assert "Job" not in render(helm_bin, {"smokeCheck": {"enabled": False}}).kinds()


def test_network_policy_is_configurable(helm_bin: str) -> None:
    values = {"networkPolicy": {"ingressNamespace": "ingress-nginx", "egressPorts": [443, 10000],
                                "egressCIDRs": [{"cidr": "10.240.8.0/24"}]},
              "service": {"type": "LoadBalancer"}}
    policy = network_policies(render(helm_bin, values))[0]["spec"]
    assert policy["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "ingress-nginx"}
    # A LoadBalancer Service receives traffic from outside the cluster.
    assert policy["ingress"][1]["from"] == [{"ipBlock": {"cidr": "0.0.0.0/0"}}]
    storage = policy["egress"][1]
    assert storage["to"] == [{"ipBlock": {"cidr": "10.240.8.0/24"}}]
    assert [p["port"] for p in storage["ports"]] == [443, 10000]


def test_service_monitor_scrapes_metrics(helm_bin: str) -> None:
    rendered = render(helm_bin, {"metrics": {"serviceMonitor": {"enabled": True,
                                                               "labels": {"release": "kube-prometheus-stack"}}}})
    monitor = rendered.one("ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert "ServiceMonitor" not in render(helm_bin).kinds()


# --- helm test -----------------------------------------------------------------------------------


def test_helm_test_pod(helm_bin: str) -> None:
    rendered = render(helm_bin, {"model": {"name": "iris-forest"}, "service": {"port": 8000}},
                      namespace="ai-app-dev")
    pod = rendered.one("Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["restartPolicy"] == "Never"
    (container,) = pod["spec"]["containers"]
    assert container["image"] == rendered.app_container()["image"]
    assert container["command"][:2] == ["python", "-c"]
    assert container["args"] == ["http://ai-app.ai-app-dev.svc:8000", "iris-forest", "120"]
    # Not a Service endpoint: its labels miss the inference component.
    assert not selector(rendered).items() <= pod["metadata"]["labels"].items()


def test_notes_show_pin_and_identity(helm_bin: str) -> None:
    result = helm(helm_bin, "install", "ai-app", str(CHART_DIR), "--dry-run=client", "--namespace", "ai-app-prod",
                  "--values", str(environment_values("prod")))
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    prod = load_yaml(environment_values("prod"))
    assert f"ai-app@{prod['image']['digest']}" in notes
    assert prod["model"]["sha256"] in notes
    assert "system:serviceaccount:ai-app-prod:ai-app" in notes


# --- environments --------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_environment_pin_lands_in_the_pod(renders: dict[str, Rendered], env: str) -> None:
    values = load_yaml(environment_values(env))
    rendered = renders[f"env-{env}"]
    image, model = values["image"], values["model"]
    assert rendered.app_container()["image"] == f"{image['repository']}@{image['digest']}"
    assert rendered.env()["MODEL_SHA256"] == model["sha256"]
    assert rendered.env()["MODEL_NAME"] == model["name"]
    assert rendered.env()["MODEL_VERSION"] == model["version"]
    if model["source"] != "image":
        assert model["uri"] in rendered.pod_spec()["initContainers"][0]["args"]
    assert rendered.deployment()["metadata"]["namespace"] == f"ai-app-{env}"


def test_environments_differ_where_they_should(renders: dict[str, Rendered]) -> None:
    dev, staging, prod = (renders[f"env-{env}"] for env in ENVIRONMENTS)
    assert dev.deployment()["spec"]["replicas"] == 1
    assert staging.deployment()["spec"]["replicas"] >= 2
    assert "replicas" not in prod.deployment()["spec"] and prod.one("HorizontalPodAutoscaler")
    hosts = {r["spec"]["rules"][0]["host"] for r in (dev.one("Ingress"), staging.one("Ingress"), prod.one("Ingress"))}
    assert len(hosts) == 3
    assert prod.pod_spec()["topologySpreadConstraints"][0]["whenUnsatisfiable"] == "DoNotSchedule"
    client_ids = {r.one("ServiceAccount")["metadata"]["annotations"]["azure.workload.identity/client-id"]
                  for r in (dev, staging, prod)}
    assert len(client_ids) == 3


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_environment_release_pin_has_the_shared_shape(env: str) -> None:
    values = load_yaml(environment_values(env))
    assert list(values)[:2] == ["image", "model"]
    assert {"repository", "tag", "digest"} <= set(values["image"])
    assert set(values["model"]) == {"source", "name", "version", "uri", "sha256"}
    assert re.fullmatch(r"sha256:[a-f0-9]{64}", values["image"]["digest"])
    assert re.fullmatch(r"[a-f0-9]{64}", values["model"]["sha256"])
    assert values["image"]["repository"] == "aiappacr.azurecr.io/ai-app"
    assert values["model"]["uri"].startswith("https://aiappmodels.blob.core.windows.net/")


# --- gRPC ----------------------------------------------------------------------------------------


def test_grpc_is_off_by_default(helm_bin: str) -> None:
    rendered = render(helm_bin)
    assert [p["name"] for p in rendered.app_container()["ports"]] == ["http"]
    assert "GRPC_PORT" not in rendered.env()
    assert [p["name"] for p in rendered.one("Service")["spec"]["ports"]] == ["http"]
    assert "httpGet" in rendered.app_container()["readinessProbe"]


def test_grpc_port_on_the_container_service_networkpolicy_and_helm_test(helm_bin: str) -> None:
    rendered = render(helm_bin, {"grpc": {"enabled": True, "workers": 3}})
    container = rendered.app_container()
    assert {"name": "grpc", "containerPort": 8081, "protocol": "TCP"} in container["ports"]
    assert rendered.env()["GRPC_PORT"] == "8081"
    assert rendered.env()["GRPC_WORKERS"] == "3"
    service_ports = {p["name"]: p for p in rendered.one("Service")["spec"]["ports"]}
    assert service_ports["grpc"] == {
        "name": "grpc", "port": 8081, "targetPort": "grpc", "protocol": "TCP", "appProtocol": "grpc"
    }
    assert service_ports["http"]["appProtocol"] == "http"
    policies = {p["metadata"]["name"]: p for p in rendered.of_kind("NetworkPolicy")}
    for rule in policies["ai-app"]["spec"]["ingress"]:
        assert {"port": "grpc", "protocol": "TCP"} in rule["ports"]
    # The check pods (helm test, smoke check) may reach the gRPC port too.
    to_app = policies["ai-app-checks"]["spec"]["egress"][-1]["ports"]
    assert {"port": 8081, "protocol": "TCP"} in to_app
    # Probes stay on HTTP unless asked for.
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    test_args = rendered.one("Pod")["spec"]["containers"][0]["args"]
    assert test_args[-1] == "ai-app.ai-app-test.svc:8081"


def test_grpc_probes_use_the_kubelet_grpc_health_check(helm_bin: str) -> None:
    rendered = render(helm_bin, {"grpc": {"enabled": True, "port": 9000, "probes": {"enabled": True}}})
    container = rendered.app_container()
    expected = {"port": 9000, "service": "inference.GRPCInferenceService"}
    assert container["startupProbe"]["grpc"] == expected
    assert container["readinessProbe"]["grpc"] == expected
    assert "httpGet" not in container["readinessProbe"]
    # Liveness is the process, on HTTP either way.
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    overall = render(helm_bin, {"grpc": {"enabled": True, "probes": {"enabled": True, "service": ""}}})
    assert overall.app_container()["readinessProbe"]["grpc"] == {"port": 8081, "service": ""}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"grpc": {"probes": {"enabled": True}}}, "grpc.probes.enabled needs grpc.enabled"),
        ({"grpc": {"enabled": True, "port": 8080}}, "grpc.port and server.port are both 8080"),
        ({"grpc": {"enabled": True, "servicePort": 80}}, "grpc.servicePort and service.port are both 80"),
    ],
)
def test_inconsistent_grpc_values_are_refused(helm_bin: str, values: dict[str, object], message: str) -> None:
    with pytest.raises(RenderError, match=re.escape(message)):
        render(helm_bin, values)
