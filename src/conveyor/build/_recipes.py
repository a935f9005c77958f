"""What a platform team runs a bundle with: a Dockerfile, Kubernetes manifests and a KServe
``InferenceService``, written from the bundle's facts (its model, Python, port and image).

Everything here is text computed from its inputs alone (no time, no host), so a rebuild writes
the same bytes. The container runs as an unprivileged user on a read-only root file system;
its probes are the Open Inference Protocol's health endpoints.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from conveyor.errors import UsageError

PORT = 8080
UID = 10001
LIVE = "/v2/health/live"
READY = "/v2/health/ready"


@dataclass(frozen=True)
class Facts:
    model: str
    version: int
    artifact_hash: str
    python: str  # the training run's Python, X.Y.Z
    image: str
    base_image: str

    @property
    def ref(self) -> str:
        return f"{self.model}:{self.version}"

    @property
    def app(self) -> str:
        """The model's name as a Kubernetes object name (RFC 1123: lowercase letters, digits, '-')."""
        slug = re.sub(r"[^a-z0-9-]+", "-", self.model.lower()).strip("-")[:55].strip("-")
        if not slug or not slug[0].isalpha():  # a Service's name must start with a letter (RFC 1035)
            slug = f"model-{slug}".rstrip("-")
        return slug


def default_image(model: str, version: int) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", model.lower()).strip("-.") or "model"
    return f"{slug}:v{version}"


def default_base_image(python: str) -> str:
    """The official slim image of the training run's Python: its exact release, or its X.Y line
    for a version the image tags do not carry (a release candidate, a local build)."""
    if re.fullmatch(r"\d+\.\d+\.\d+", python):
        return f"python:{python}-slim"
    line = re.match(r"^(\d+\.\d+)", python)
    if line is None:
        raise UsageError(f"cannot tell which Python image runs '{python}'", hint="give one with --base-image")
    return f"python:{line.group(1)}-slim"


def dockerfile(facts: Facts) -> str:
    probe = (
        "import sys, urllib.request; "
        f"sys.exit(urllib.request.urlopen('http://127.0.0.1:{PORT}{READY}', timeout=2).status != 200)"
    )
    return f"""\
# {facts.ref} served by conveyor from its bundle. Build and run:
#   docker build -t {facts.image} .
#   docker run --rm -p {PORT}:{PORT} {facts.image}
FROM {facts.base_image}

ENV PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1 \\
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid {UID} model \\
    && useradd --system --uid {UID} --gid model --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin model

WORKDIR /srv/bundle
# The pinned packages first: this layer is reused while only the model changes.
COPY requirements.lock ./
COPY wheels/ ./wheels/
RUN pip install --no-cache-dir --no-deps -r requirements.lock \\
    && pip check

COPY bundle.json serve.py ./
COPY model/ ./model/

USER {UID}:{UID}
EXPOSE {PORT}
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \\
    CMD ["python", "-c", "{probe}"]
CMD ["python", "serve.py", "--host", "0.0.0.0", "--port", "{PORT}"]
"""


def dockerignore() -> str:
    return "# Only what the Dockerfile copies is needed.\n*.tar.gz\nk8s/\nkserve/\nREADME.md\n"


def _labels(facts: Facts) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": facts.app,
        "app.kubernetes.io/version": str(facts.version),
        "app.kubernetes.io/component": "model-server",
        "app.kubernetes.io/managed-by": "conveyor",
    }


def _annotations(facts: Facts) -> dict[str, str]:
    return {"conveyor.dev/model": facts.ref, "conveyor.dev/artifact": facts.artifact_hash}


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def _container(facts: Facts, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "image": facts.image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": UID,
            "runAsGroup": UID,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }


def deployment(facts: Facts) -> dict[str, Any]:
    selector = {"app.kubernetes.io/name": facts.app}
    container = _container(facts, "model")
    container["startupProbe"] = _probe(LIVE, 2, 60)  # up to two minutes to load and warm up
    container["livenessProbe"] = _probe(LIVE, 10, 3)
    container["readinessProbe"] = _probe(READY, 5, 2)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": facts.app, "labels": _labels(facts), "annotations": _annotations(facts)},
        "spec": {  # no replicas: the HorizontalPodAutoscaler owns the count (2 to 10)
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": _labels(facts), "annotations": _annotations(facts)},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                    "terminationGracePeriodSeconds": 30,
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }


def service(facts: Facts) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": facts.app, "labels": _labels(facts)},
        "spec": {
            "type": "ClusterIP",
            "selector": {"app.kubernetes.io/name": facts.app},
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def autoscaler(facts: Facts) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": facts.app, "labels": _labels(facts)},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": facts.app},
            "minReplicas": 2,
            "maxReplicas": 10,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                }
            ],
        },
    }


def disruption_budget(facts: Facts) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": facts.app, "labels": _labels(facts)},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": facts.app}}},
    }


def inference_service(facts: Facts) -> dict[str, Any]:
    """KServe's custom-container predictor: the same image, speaking the Open Inference Protocol."""
    container = _container(facts, "kserve-container")
    del container["ports"][0]["name"]  # Knative accepts one unnamed port
    container["readinessProbe"] = {"httpGet": {"path": READY, "port": PORT}, "periodSeconds": 5}
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": facts.app, "labels": _labels(facts), "annotations": _annotations(facts)},
        "spec": {
            "predictor": {
                "minReplicas": 1,
                "maxReplicas": 10,
                "containers": [container],
                "volumes": [{"name": "tmp", "emptyDir": {}}],
            }
        },
    }


def to_yaml(document: dict[str, Any], comment: str) -> str:
    return f"# {comment}\n" + yaml.safe_dump(document, sort_keys=False, default_flow_style=False)


def manifests(facts: Facts) -> dict[str, str]:
    """Relative path -> text of every recipe (the Dockerfile and the YAML manifests)."""
    where = f"{facts.ref}, image {facts.image}"
    return {
        "Dockerfile": dockerfile(facts),
        ".dockerignore": dockerignore(),
        "k8s/deployment.yaml": to_yaml(deployment(facts), f"The model server of {where}."),
        "k8s/service.yaml": to_yaml(service(facts), f"The cluster's address of {facts.ref} (port 80)."),
        "k8s/hpa.yaml": to_yaml(autoscaler(facts), f"Scales {facts.ref}'s server on CPU, 2 to 10 pods."),
        "k8s/pdb.yaml": to_yaml(disruption_budget(facts), f"Keeps one pod of {facts.ref} up through drains."),
        "kserve/inferenceservice.yaml": to_yaml(
            inference_service(facts), f"{where} on KServe (instead of k8s/): a custom-container predictor."
        ),
    }


def readme(facts: Facts, files: list[str]) -> str:
    listed = "\n".join(f"- `{name}`" for name in files)
    return f"""\
# {facts.ref}: a deployable bundle

Built by `conveyor build` from the registry. It holds the model, its signature and lineage
(`bundle.json`), the exact Python packages it was trained and is served with
(`requirements.lock`, with conveyor's own wheel in `wheels/`), an entry point that serves it from
this folder alone (`serve.py`), and recipes to run it at scale.

## Serve it without a container

```sh
python -m venv .venv
.venv/bin/pip install --no-deps -r requirements.lock
.venv/bin/python serve.py --port {PORT}
curl localhost:{PORT}{READY}
```

The server speaks the Open Inference Protocol v2 (`/v2/models/{facts.model}/infer`) and MLflow's
scoring protocol (`/invocations`), and checks every request against the model's signature.

## Build and run the container

```sh
docker build -t {facts.image} .
docker run --rm -p {PORT}:{PORT} {facts.image}
```

Then push it where your cluster pulls from and set that name in the manifests
(`conveyor build --image REGISTRY/NAME:TAG` writes it in for you).

## Run it on Kubernetes

```sh
kubectl apply -f k8s/
```

A Deployment (probes on `{LIVE}` and `{READY}`, non-root, read-only root file
system), a Service on port 80, a HorizontalPodAutoscaler (CPU, 2 to 10 pods) and a
PodDisruptionBudget. On a cluster with KServe, apply `kserve/inferenceservice.yaml` instead.

## Files

{listed}
"""
