{{/*
Names, labels and the few computed values every template shares.
*/}}

{{/* Chart name, overridable. */}}
{{- define "ai-app.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: "<release>-<chart>", or the release name alone when it already contains the chart name. */}}
{{- define "ai-app.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "name-version" of the chart, for the helm.sh/chart label. */}}
{{- define "ai-app.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
A string made a valid label value: characters outside [A-Za-z0-9_.-] become "-", at most 63
characters, starting and ending with an alphanumeric.
*/}}
{{- define "ai-app.labelValue" -}}
{{- regexReplaceAll "[^A-Za-z0-9_.-]" (toString .) "-" | trunc 63 | trimAll "-_." -}}
{{- end -}}

{{/* Labels that select the inference pods; never change them after the first install. */}}
{{- define "ai-app.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ai-app.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: inference
{{- end -}}

{{/* Labels of every object. */}}
{{- define "ai-app.labels" -}}
helm.sh/chart: {{ include "ai-app.chart" . }}
app.kubernetes.io/name: {{ include "ai-app.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ include "ai-app.labelValue" (include "ai-app.imageTag" .) | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ai-app
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels naming the served model (sanitised to label syntax). */}}
{{- define "ai-app.modelLabels" -}}
ai-app.io/model-name: {{ include "ai-app.labelValue" .Values.model.name | quote }}
ai-app.io/model-version: {{ include "ai-app.labelValue" .Values.model.version | quote }}
{{- end -}}

{{/* ServiceAccount name: the fixed name, else the full name (created) or "default" (not created). */}}
{{- define "ai-app.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ai-app.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The tag people read: image.tag, else the chart's appVersion. */}}
{{- define "ai-app.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag -}}
{{- end -}}

{{/*
Image reference. The digest wins over the tag ("repo@sha256:..."); with image.requireDigest a
missing digest stops the render.
*/}}
{{- define "ai-app.image" -}}
{{- $image := .Values.image -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else if $image.requireDigest -}}
{{- fail "image.digest is required: image.requireDigest is true, so this environment deploys only by digest (set image.digest to \"sha256:<64 hex>\")" -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (include "ai-app.imageTag" .) -}}
{{- end -}}
{{- end -}}

{{/*
Checks the values the schema cannot express (they depend on each other); renders nothing.
*/}}
{{- define "ai-app.validateValues" -}}
{{- $model := .Values.model -}}
{{- if has $model.source (list "blob" "s3") -}}
{{- if not $model.uri -}}
{{- fail (printf "model.uri is required when model.source is %q" $model.source) -}}
{{- end -}}
{{- if not $model.sha256 -}}
{{- fail (printf "model.sha256 is required when model.source is %q: the init container verifies the download against it" $model.source) -}}
{{- end -}}
{{- end -}}
{{- if and (eq $model.source "blob") (not (regexMatch "^https?://" $model.uri)) -}}
{{- fail (printf "model.uri %q: model.source blob needs an https:// blob URL (http:// only for Azurite)" $model.uri) -}}
{{- end -}}
{{- if and (eq $model.source "s3") (not (hasPrefix "s3://" $model.uri)) -}}
{{- fail (printf "model.uri %q: model.source s3 needs an s3://<bucket>/<key> URI" $model.uri) -}}
{{- end -}}
{{- if and (eq $model.source "image") $model.uri -}}
{{- fail (printf "model.uri %q is set but model.source is \"image\": set model.source to blob or s3, or empty model.uri" $model.uri) -}}
{{- end -}}
{{- if and .Values.workloadIdentity.enabled (not .Values.workloadIdentity.clientId) -}}
{{- fail "workloadIdentity.clientId is required when workloadIdentity.enabled is true (the managed identity's client ID)" -}}
{{- end -}}
{{- if and .Values.workloadIdentity.enabled (not .Values.serviceAccount.create) -}}
{{- fail "workloadIdentity.enabled needs serviceAccount.create: the chart annotates the ServiceAccount with the client ID" -}}
{{- end -}}
{{- if and .Values.service.azureDnsLabel (ne .Values.service.type "LoadBalancer") -}}
{{- fail (printf "service.azureDnsLabel is set but service.type is %q: the DNS label applies only to a LoadBalancer" .Values.service.type) -}}
{{- end -}}
{{- if and .Values.grpc.enabled (eq (int .Values.grpc.port) (int .Values.server.port)) -}}
{{- fail (printf "grpc.port and server.port are both %v: gRPC needs a container port of its own" .Values.server.port) -}}
{{- end -}}
{{- if and .Values.grpc.enabled (eq (int .Values.grpc.servicePort) (int .Values.service.port)) -}}
{{- fail (printf "grpc.servicePort and service.port are both %v: the Service needs a port for each" .Values.service.port) -}}
{{- end -}}
{{- if and .Values.grpc.probes.enabled (not .Values.grpc.enabled) -}}
{{- fail "grpc.probes.enabled needs grpc.enabled: the probes call the gRPC server" -}}
{{- end -}}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) -}}
{{- fail (printf "autoscaling.minReplicas (%v) is above autoscaling.maxReplicas (%v)" .Values.autoscaling.minReplicas .Values.autoscaling.maxReplicas) -}}
{{- end -}}
{{- end -}}

{{/* Restricted Pod Security Standard, pod level. */}}
{{- define "ai-app.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Restricted Pod Security Standard, container level (every container, init and test pods included). */}}
{{- define "ai-app.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Model file path inside the app container in blob/s3 mode. */}}
{{- define "ai-app.fetchedModelPath" -}}
{{- printf "%s/model.onnx" (trimSuffix "/" .Values.model.mountPath) -}}
{{- end -}}

{{/* In-cluster URL of the Service (what the test pod and the smoke check call). */}}
{{- define "ai-app.serviceURL" -}}
{{- printf "http://%s.%s.svc:%v" (include "ai-app.fullname" .) .Release.Namespace .Values.service.port -}}
{{- end -}}

{{/*
Pod spec of the inference check shared by the `helm test` pod and the post-sync smoke-check Job:
wait for /v2/health/ready, then one V2 inference built from the model's own metadata (zeros of each
input's datatype and shape). Call with (dict "root" $ "timeoutSeconds" N).
*/}}
{{- define "ai-app.inferenceCheckPodSpec" -}}
restartPolicy: Never
automountServiceAccountToken: false
enableServiceLinks: false
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- include "ai-app.podSecurityContext" .root | nindent 2 }}
containers:
  - name: inference-check
    # The app image itself (it has Python): no extra image to mirror, scan or pin.
    image: {{ include "ai-app.image" .root }}
    imagePullPolicy: {{ .root.Values.image.pullPolicy }}
    command:
      - python
      - -c
      - |
        import json, sys, time, urllib.request
        base, model, deadline = sys.argv[1], sys.argv[2], time.monotonic() + float(sys.argv[3])
        def call(path, body=None):
            data = None if body is None else json.dumps(body).encode()
            req = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as resp:
                return json.load(resp)
        while True:
            try:
                call("/v2/health/ready")
                break
            except OSError as exc:
                if time.monotonic() > deadline:
                    sys.exit(f"{base}/v2/health/ready not ready: {exc}")
                time.sleep(2)
        meta = call(f"/v2/models/{model}")
        zero = {"BYTES": ""}
        inputs = []
        for spec in meta["inputs"]:
            shape = [1 if dim < 0 else dim for dim in spec["shape"]]
            count = 1
            for dim in shape:
                count *= dim
            inputs.append({"name": spec["name"], "shape": shape, "datatype": spec["datatype"],
                           "data": [zero.get(spec["datatype"], 0)] * count})
        result = call(f"/v2/models/{model}/infer", {"inputs": inputs})
        if not result.get("outputs"):
            sys.exit(f"inference on {model} returned no outputs: {result}")
        print(f"ready and inferred on {model}: outputs {[o['name'] for o in result['outputs']]}")
        if len(sys.argv) > 4 and sys.argv[4]:
            # The same over gRPC, with the image's own stubs (app.oip_grpc) and raw contents.
            import grpc
            from app.datatypes import BY_NAME
            from app.oip_grpc.protocol import open_inference_grpc_pb2 as pb
            from app.oip_grpc.protocol import open_inference_grpc_pb2_grpc as pb_grpc
            with grpc.insecure_channel(sys.argv[4]) as channel:
                stub = pb_grpc.GRPCInferenceServiceStub(channel)
                while not stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready:
                    if time.monotonic() > deadline:
                        sys.exit(f"gRPC {sys.argv[4]} not ready")
                    time.sleep(2)
                meta = stub.ModelMetadata(pb.ModelMetadataRequest(name=model), timeout=10)
                request = pb.ModelInferRequest(model_name=model)
                for spec in meta.inputs:
                    shape = [1 if dim < 0 else dim for dim in spec.shape]
                    count = 1
                    for dim in shape:
                        count *= dim
                    request.inputs.add(name=spec.name, datatype=spec.datatype, shape=shape)
                    item = 4 if spec.datatype == "BYTES" else BY_NAME[spec.datatype].dtype.itemsize
                    request.raw_input_contents.append(bytes(count * item))
                response = stub.ModelInfer(request, timeout=10)
                if not response.outputs or len(response.raw_output_contents) != len(response.outputs):
                    sys.exit(f"gRPC inference on {model} returned no outputs: {response}")
                print(f"gRPC ready and inferred on {model}: outputs {[o.name for o in response.outputs]}")
    args:
      - {{ include "ai-app.serviceURL" .root | quote }}
      - {{ .root.Values.model.name | quote }}
      - {{ .timeoutSeconds | quote }}
      {{- if .root.Values.grpc.enabled }}
      - {{ printf "%s.%s.svc:%v" (include "ai-app.fullname" .root) .root.Release.Namespace .root.Values.grpc.servicePort | quote }}
      {{- end }}
    securityContext:
      {{- include "ai-app.containerSecurityContext" .root | nindent 6 }}
    resources:
      requests:
        cpu: 10m
        memory: 32Mi
      limits:
        cpu: 200m
        memory: 128Mi
    volumeMounts:
      - name: tmp
        mountPath: /tmp
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: 16Mi
{{- end -}}

{{/* What the startup and readiness probes check: /v2/health/ready, or the gRPC health service. */}}
{{- define "ai-app.readinessCheck" -}}
{{- if .Values.grpc.probes.enabled -}}
grpc:
  port: {{ .Values.grpc.port }}
  service: {{ .Values.grpc.probes.service | quote }}
{{- else -}}
httpGet:
  path: /v2/health/ready
  port: http
{{- end -}}
{{- end -}}
