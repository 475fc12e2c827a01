"""The deployment files agree with the code: services, ports, settings, probes, config."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.settings import SERVICES, Settings

ROOT = Path(__file__).parents[2]
K8S_BASE = ROOT / "deploy" / "k8s" / "base"
CONFIG_COPY = K8S_BASE / "config"
DEFAULTS = {name: field.default for name, field in Settings.model_fields.items()}


def default_port(service: str) -> int:
    port: int = DEFAULTS[f"{service}_port"]
    return port


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def k8s_manifests() -> list[tuple[str, dict[str, Any]]]:
    """Every Kubernetes object under deploy/k8s (not the kustomizations, not the config copy)."""
    found = []
    for path in sorted((ROOT / "deploy" / "k8s").rglob("*.yaml")):
        if path.name == "kustomization.yaml" or CONFIG_COPY in path.parents:
            continue
        found += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in k8s_manifests() if doc["kind"] == kind]


@pytest.mark.parametrize("service", SERVICES)
def test_compose_serves_each_service_from_the_one_image_on_its_default_port(compose, service):
    serving = {
        name: spec for name, spec in compose["services"].items() if spec.get("command") == ["serve", service]
    }
    assert list(serving) == [service]
    spec = serving[service]
    assert spec["build"] == "."
    published, _, target = spec["ports"][0].partition(":")
    assert int(published) == int(target) == default_port(service)


def test_compose_services_run_in_production_after_the_migration(compose):
    services = compose["services"]
    assert services["migrate"]["command"] == ["migrate"]
    for name in (*SERVICES, "migrate"):
        spec = services[name]
        assert spec["env_file"] == ".env"
        env = spec["environment"]
        assert env["LEADFLOW_ENV"] == "production"
        assert env["LEADFLOW_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert env["LEADFLOW_DATABASE_URL"].endswith("@postgres:5432/leadflow")
        assert spec["depends_on"]["postgres"] == {"condition": "service_healthy"}
        assert spec["depends_on"]["kafka"] == {"condition": "service_healthy"}
    for name in SERVICES:
        migrated = services[name]["depends_on"]["migrate"]
        assert migrated == {"condition": "service_completed_successfully"}
    assert services["kafka"]["image"] == "apache/kafka:3.9.1"
    assert services["postgres"]["image"] == "postgres:17.6"
    assert "healthcheck" in services["postgres"]


def test_observability_is_an_optional_profile_with_pinned_images(compose):
    for name in ("prometheus", "grafana"):
        spec = compose["services"][name]
        assert spec["profiles"] == ["observability"]
        assert re.search(r":v?\d+\.\d+\.\d+$", spec["image"]), spec["image"]


def test_prometheus_scrapes_every_service_where_compose_serves_it():
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    job = config["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics"
    targets = {t for group in job["static_configs"] for t in group["targets"]}
    assert targets == {f"{s}:{default_port(s)}" for s in SERVICES}


def test_every_leadflow_variable_named_in_deploy_files_is_a_setting():
    files = [ROOT / name for name in ("docker-compose.yml", ".env.example", "Dockerfile")]
    files += [p for p in (ROOT / "deploy").rglob("*") if p.is_file() and CONFIG_COPY not in p.parents]
    named = {
        (path.name, var) for path in files for var in re.findall(r"\bLEADFLOW_[A-Z0-9_]+", path.read_text())
    }
    assert named
    unknown = {(f, v) for f, v in named if v.removeprefix("LEADFLOW_").lower() not in DEFAULTS}
    assert not unknown


def test_env_example_holds_placeholders_only():
    lines = (ROOT / ".env.example").read_text().splitlines()
    assignments = [line for line in lines if line and not line.startswith("#")]
    names = {line.split("=", 1)[0] for line in assignments}
    assert {"LEADFLOW_ADMIN_KEY", "POSTGRES_PASSWORD"} <= names
    assert all(line.split("=", 1)[1] == "" for line in assignments)


def test_dockerfile_runs_leadflow_as_non_root_with_a_healthcheck():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim AS runtime$", text, re.M)
    assert 'ENTRYPOINT ["leadflow"]' in text
    assert re.search(r"^USER 10001", text, re.M)
    assert "HEALTHCHECK" in text and "COPY config/ /app/config/" in text


def test_healthcheck_finds_the_served_service_on_the_command_line():
    path = ROOT / "deploy" / "docker" / "healthcheck.py"
    spec = importlib.util.spec_from_file_location("container_healthcheck", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.served_service(["/opt/venv/bin/leadflow", "serve", "handoff"]) == "handoff"
    assert module.served_service(["/sbin/docker-init", "--", "leadflow", "migrate"]) is None


def test_every_k8s_manifest_is_a_named_object():
    manifests = k8s_manifests()
    assert manifests
    for file, doc in manifests:
        assert doc.get("apiVersion") and doc.get("kind"), file
        assert doc.get("metadata", {}).get("name"), file


@pytest.mark.parametrize("service", SERVICES)
def test_each_deployment_serves_its_service_with_probes_and_settings(service):
    (deployment,) = [d for d in of_kind("Deployment") if d["metadata"]["name"].endswith(service)]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 45
    (container,) = pod["containers"]
    assert container["args"] == ["serve", service]
    assert container["ports"] == [{"name": "http", "containerPort": default_port(service)}]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["requests"]["cpu"]
    sources = {next(iter(s)): next(iter(s.values()))["name"] for s in container["envFrom"]}
    assert sources == {"configMapRef": "leadflow-env", "secretRef": "leadflow-secrets"}


def test_consumer_autoscaling_stops_at_the_partition_count():
    partitions = DEFAULTS["topic_partitions"]
    kustomization = yaml.safe_load((K8S_BASE / "kustomization.yaml").read_text())
    env = next(g for g in kustomization["configMapGenerator"] if g["name"] == "leadflow-env")
    assert f"LEADFLOW_TOPIC_PARTITIONS={partitions}" in env["literals"]
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h["spec"] for h in of_kind("HorizontalPodAutoscaler")}
    assert set(hpas) == {f"leadflow-{s}" for s in SERVICES}
    for consumer in ("scoring", "handoff", "feedback"):
        assert hpas[f"leadflow-{consumer}"]["minReplicas"] == 1
        assert hpas[f"leadflow-{consumer}"]["maxReplicas"] == partitions


def test_kustomization_lists_every_manifest_and_every_config_file():
    kustomization = yaml.safe_load((K8S_BASE / "kustomization.yaml").read_text())
    manifests = {p.name for p in K8S_BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests
    files = next(g for g in kustomization["configMapGenerator"] if g["name"] == "leadflow-config")
    assert set(files["files"]) == {f"config/{p.name}" for p in (ROOT / "config").glob("*.yaml")}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) not installed")
def test_the_kustomize_base_builds_with_the_config_copied_in(tmp_path):
    base = shutil.copytree(K8S_BASE, tmp_path / "base")
    for path in (ROOT / "config").glob("*.yaml"):
        shutil.copy(path, base / "config" / path.name)
    built = subprocess.run(
        ["kubectl", "kustomize", str(base)], capture_output=True, text=True, timeout=60, check=False
    )
    assert built.returncode == 0, built.stderr
    kinds = Counter(doc["kind"] for doc in yaml.safe_load_all(built.stdout) if doc)
    assert kinds == {"Deployment": 4, "Service": 4, "HorizontalPodAutoscaler": 4, "ConfigMap": 2, "Job": 1}
