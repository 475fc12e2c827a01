"""The Kubernetes manifests, rendered as kustomize would, are valid and agree with the code.

No cluster and no kubectl needed: `build` below renders a kustomization with the
few kustomize features deploy/k8s uses (resources, configMapGenerator with
literals, files and `behavior: merge`, generatorOptions labels, strategic-merge
patches of named objects, labels with selectors, images). It leaves out the generated
ConfigMaps' name hashes, which kustomize adds; where kubectl is installed, the
last test checks the renderer against `kubectl kustomize`.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import tomllib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from sqlalchemy.engine import make_url

from services.feedback.settings import FeedbackSettings
from services.handoff.settings import HandoffSettings
from services.intake.settings import IntakeSettings
from shared.settings import SERVICES, Settings
from shared.topics import Topics

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
OVERLAY = K8S / "overlays" / "strimzi-cnpg"
TREES = {"base": BASE, "strimzi-cnpg": OVERLAY}
# The oldest Kubernetes the manifests support, and the newest the validator knows.
KUBERNETES_VERSIONS = ("1.30", "1.37")
CUSTOM_RESOURCES = {
    "kafka.strimzi.io": {"Kafka", "KafkaNodePool", "KafkaTopic"},
    "postgresql.cnpg.io": {"Cluster"},
}
CONSUMERS = ("scoring", "handoff", "feedback")
# Every setting a service reads: the platform's and each service's own.
SETTINGS_CLASSES = (Settings, IntakeSettings, HandoffSettings, FeedbackSettings)
DEFAULTS = {name: field.default for kind in SETTINGS_CLASSES for name, field in kind.model_fields.items()}
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]

Manifest = dict[str, Any]


# --- the renderer -------------------------------------------------------------------


def build(directory: Path) -> list[Manifest]:
    """Render the kustomization in `directory` (hash suffixes aside)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    objects: list[Manifest] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        objects += build(path) if path.is_dir() else load_manifests(path)
    for generator in kustomization.get("configMapGenerator", []):
        generate_config_map(directory, generator, objects, kustomization.get("generatorOptions", {}))
    for patch in kustomization.get("patches", []):
        for document in load_manifests(directory / patch["path"]):
            strategic_merge(find(objects, document["kind"], document["metadata"]["name"]), document)
    for labels in kustomization.get("labels", []):
        add_labels(objects, labels["pairs"], selectors=labels.get("includeSelectors", False))
    for image in kustomization.get("images", []):
        set_image(objects, image)
    return objects


def load_manifests(path: Path) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def find(objects: list[Manifest], kind: str, name: str) -> Manifest:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def generate_config_map(
    directory: Path, generator: dict[str, Any], objects: list[Manifest], options: dict[str, Any]
) -> None:
    data = dict(literal.split("=", 1) for literal in generator.get("literals", []))
    for entry in generator.get("files", []):
        data[Path(entry).name] = config_file(directory, entry).read_text()
    if generator.get("behavior", "create") == "merge":
        find(objects, "ConfigMap", generator["name"])["data"].update(data)
        return
    name = generator["name"]
    assert not [o for o in objects if o["metadata"]["name"] == name], f"{name} exists: use behavior: merge"
    metadata: Manifest = {"name": name}
    if "labels" in options:
        metadata["labels"] = dict(options["labels"])
    objects.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data})


def config_file(directory: Path, entry: str) -> Path:
    """The base's config/ holds copies of the repo's config/ (made before a build): read the originals."""
    if directory == BASE and entry.startswith("config/"):
        return ROOT / entry
    return directory / entry


# Lists that a strategic-merge patch merges item by item, and the key that matches the items.
MERGE_KEYS = {"containers": "name", "initContainers": "name", "env": "name", "volumes": "name"}


def strategic_merge(target: Manifest, patch: Manifest) -> None:
    for key, value in patch.items():
        current = target.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            strategic_merge(current, value)
        elif key in MERGE_KEYS and isinstance(value, list) and isinstance(current, list):
            merge_key = MERGE_KEYS[key]
            for item in value:
                matches = [c for c in current if c.get(merge_key) == item[merge_key]]
                if matches:
                    strategic_merge(matches[0], item)
                else:
                    current.append(copy.deepcopy(item))
        else:
            target[key] = copy.deepcopy(value)


def add_labels(objects: list[Manifest], pairs: dict[str, str], *, selectors: bool) -> None:
    for obj in objects:
        obj["metadata"].setdefault("labels", {}).update(pairs)
        if not selectors:
            continue
        spec = obj.get("spec", {})
        if obj["kind"] == "Service":
            spec.setdefault("selector", {}).update(pairs)
        if obj["kind"] in ("Deployment", "PodDisruptionBudget"):
            spec["selector"]["matchLabels"].update(pairs)
        if obj["kind"] in ("Deployment", "Job"):
            spec["template"]["metadata"].setdefault("labels", {}).update(pairs)


def set_image(objects: list[Manifest], image: dict[str, str]) -> None:
    for _, container in containers(objects):
        if re.split(r"[:@]", container["image"])[0] == image["name"]:
            name = image.get("newName", image["name"])
            container["image"] = f"{name}:{image['newTag']}" if "newTag" in image else name


# --- reading the rendered objects -------------------------------------------------------


def containers(objects: list[Manifest]) -> Iterator[tuple[Manifest, Manifest]]:
    """(workload, container) for every container of a pod template."""
    for obj in objects:
        if obj["kind"] in ("Deployment", "Job"):
            for container in obj["spec"]["template"]["spec"]["containers"]:
                yield obj, container


def of_kind(objects: list[Manifest], kind: str) -> list[Manifest]:
    return [o for o in objects if o["kind"] == kind]


def pod_labels(deployment: Manifest) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def deployment_of(objects: list[Manifest], service: str) -> Manifest:
    return find(objects, "Deployment", f"leadflow-{service}")


def settings_env(objects: list[Manifest]) -> dict[str, str]:
    data: dict[str, str] = find(objects, "ConfigMap", "leadflow-env")["data"]
    return data


def is_custom(obj: Manifest) -> bool:
    return obj["apiVersion"].split("/")[0] in CUSTOM_RESOURCES


@pytest.fixture(scope="module", params=list(TREES))
def rendered(request: pytest.FixtureRequest) -> list[Manifest]:
    return build(TREES[request.param])


@pytest.fixture(scope="module")
def overlay() -> list[Manifest]:
    return build(OVERLAY)


# --- schemas ----------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_built_in_object_is_valid_for_kubernetes(rendered, version):
    built_in = [o for o in rendered if not is_custom(o)]
    assert built_in
    errors = []
    for obj in built_in:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(map(str, exc.path))
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {path}: {exc.message}")
    assert not errors


def test_custom_resources_are_the_operators_kinds_with_a_name_and_a_spec(overlay):
    custom = [o for o in overlay if is_custom(o)]
    kinds = {(o["apiVersion"].split("/")[0], o["kind"]) for o in custom}
    assert kinds == {(group, kind) for group, group_kinds in CUSTOM_RESOURCES.items() for kind in group_kinds}
    for obj in custom:
        assert obj["metadata"]["name"] and isinstance(obj["spec"], dict) and obj["spec"], obj["kind"]


def test_the_base_holds_no_custom_resources():
    assert not [o for o in build(BASE) if is_custom(o)]


# --- the services -------------------------------------------------------------------


def graceful_shutdown_s() -> int:
    """uvicorn's drain timeout, as `leadflow serve` sets it."""
    found = re.search(
        r"timeout_graceful_shutdown=(\d+)", (ROOT / "leadflow" / "commands" / "serve.py").read_text()
    )
    assert found
    return int(found.group(1))


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_runs_with_probes_on_its_port(rendered, service):
    deployment = deployment_of(rendered, service)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["serve", service]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert list(ports.values()) == [DEFAULTS[f"{service}_port"]]
    probes = {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    for probe, path in probes.items():
        get = container[probe]["httpGet"]
        assert get["path"] == path
        assert ports.get(get["port"], get["port"]) == DEFAULTS[f"{service}_port"]
    assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
    assert container["resources"]["limits"]["memory"]
    sources = {next(iter(s)): next(iter(s.values()))["name"] for s in container["envFrom"]}
    assert sources == {"configMapRef": "leadflow-env", "secretRef": "leadflow-secrets"}


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_asks_to_be_scraped_on_its_metrics_endpoint(rendered, service):
    annotations = deployment_of(rendered, service)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(DEFAULTS[f"{service}_port"])
    assert annotations["prometheus.io/path"] == "/metrics"
    assert annotations["leadflow.dev/metrics-scope"] == "metrics:read"  # the scrape job sends such a key


@pytest.mark.parametrize("service", SERVICES)
def test_pods_outlive_their_drain(rendered, service):
    pod = deployment_of(rendered, service)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    sleep = container["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep"
    grace = pod["terminationGracePeriodSeconds"]
    assert grace >= 30
    assert grace >= int(sleep[1]) + graceful_shutdown_s() + 15  # 15 s for the consumer, relay and timers


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_has_a_service_a_pdb_and_an_hpa(rendered, service):
    deployment = deployment_of(rendered, service)
    labels = pod_labels(deployment)
    service_object = find(rendered, "Service", f"leadflow-{service}")
    assert service_object["spec"]["selector"].items() <= labels.items()
    (port,) = service_object["spec"]["ports"]
    assert port["port"] == DEFAULTS[f"{service}_port"] and port["targetPort"] == "http"
    budgets = of_kind(rendered, "PodDisruptionBudget")
    covering = [b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()]
    assert [b["spec"]["minAvailable"] for b in covering] == [1]
    hpas = of_kind(rendered, "HorizontalPodAutoscaler")
    (hpa,) = [h for h in hpas if h["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]]
    # A budget of one pod needs two, or a node drain could never evict it.
    assert hpa["spec"]["minReplicas"] >= 2
    assert "replicas" not in deployment["spec"]  # the HPA owns the count


def test_intake_scales_on_cpu(rendered):
    hpa = find(rendered, "HorizontalPodAutoscaler", "leadflow-intake")
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]


@pytest.mark.parametrize("consumer", CONSUMERS)
def test_consumers_scale_no_further_than_the_partition_count(rendered, consumer):
    partitions = int(settings_env(rendered)["LEADFLOW_TOPIC_PARTITIONS"])
    assert partitions == DEFAULTS["topic_partitions"]
    hpa = find(rendered, "HorizontalPodAutoscaler", f"leadflow-{consumer}")
    assert hpa["spec"]["maxReplicas"] <= partitions


def test_the_migration_job_runs_leadflow_migrate_with_the_same_settings(rendered):
    (job,) = of_kind(rendered, "Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["migrate"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    service_container = deployment_of(rendered, "scoring")["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == service_container["envFrom"]
    assert container.get("env") == service_container.get("env")
    assert container["image"] == service_container["image"]


def test_every_container_runs_the_released_image_as_non_root(rendered):
    for workload, container in containers(rendered):
        assert container["image"] == f"leadflow:{VERSION}"
        assert workload["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False


# --- settings -----------------------------------------------------------------------


def leadflow_variables(rendered: list[Manifest]) -> set[str]:
    names = set(settings_env(rendered))
    names |= {e["name"] for _, c in containers(rendered) for e in c.get("env", [])}
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    names |= {n for spec in compose["services"].values() for n in spec.get("environment", {})}
    return {n for n in names if n.startswith("LEADFLOW_")}


def test_every_leadflow_variable_is_a_setting(rendered):
    names = leadflow_variables(rendered)
    assert "LEADFLOW_KAFKA_BOOTSTRAP" in names
    assert {n for n in names if n.removeprefix("LEADFLOW_").lower() not in DEFAULTS} == set()


def test_the_settings_accept_the_config_map(rendered, monkeypatch):
    for name, value in settings_env(rendered).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LEADFLOW_ADMIN_KEY", "x" * 32)  # the secrets come from leadflow-secrets
    monkeypatch.setenv("LEADFLOW_SECRETS_KEY", "c2VjcmV0cy1rZXktb2YtYS1rOHMtY2x1c3RlciEhISE=")
    monkeypatch.setenv("LEADFLOW_PRIVACY_SUBJECT_KEY", "subject-key-of-a-k8s-cluster")
    settings = Settings()
    assert settings.env == "production" and settings.host == "0.0.0.0"
    assert str(settings.config_dir) == "/app/config"


def test_the_config_map_holds_every_config_file(rendered):
    files = find(rendered, "ConfigMap", "leadflow-config")["data"]
    assert set(files) == {p.name for p in (ROOT / "config").glob("*.yaml")}


@pytest.mark.parametrize("tree", list(TREES))
def test_each_kustomization_uses_every_file_beside_it(tree):
    directory = TREES[tree]
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    used = set(kustomization["resources"]) | {p["path"] for p in kustomization.get("patches", [])}
    assert {p.name for p in directory.glob("*.yaml")} - {"kustomization.yaml"} <= used


# --- the Strimzi + CloudNativePG overlay ----------------------------------------------------


def test_the_overlay_points_at_the_strimzi_bootstrap_service(overlay):
    (kafka,) = of_kind(overlay, "Kafka")
    plain = next(listener for listener in kafka["spec"]["kafka"]["listeners"] if not listener["tls"])
    bootstrap = f"{kafka['metadata']['name']}-kafka-bootstrap:{plain['port']}"
    assert settings_env(overlay)["LEADFLOW_KAFKA_BOOTSTRAP"] == bootstrap


def test_the_overlay_declares_every_topic_with_the_configured_counts(overlay):
    (kafka,) = of_kind(overlay, "Kafka")
    env = settings_env(overlay)
    topics = of_kind(overlay, "KafkaTopic")
    assert sorted(t["spec"]["topicName"] for t in topics) == sorted(Topics().all())
    for topic in topics:
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        assert topic["spec"]["partitions"] == int(env["LEADFLOW_TOPIC_PARTITIONS"]) == 12
        assert topic["spec"]["replicas"] == int(env["LEADFLOW_TOPIC_REPLICATION"]) == 3
    pools = of_kind(overlay, "KafkaNodePool")
    brokers = sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"])
    assert brokers >= 3


def test_every_workload_reads_the_database_from_the_cnpg_cluster(overlay):
    (cluster,) = of_kind(overlay, "Cluster")
    name, initdb = cluster["metadata"]["name"], cluster["spec"]["bootstrap"]["initdb"]
    workloads = 0
    for _, container in containers(overlay):
        env = {e["name"]: e for e in container["env"]}
        url = make_url(env["LEADFLOW_DATABASE_URL"]["value"])
        assert url.drivername == "postgresql+asyncpg" and url.password is None
        assert (url.host, url.database, url.username) == (f"{name}-rw", initdb["database"], initdb["owner"])
        password = env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]
        assert password == {"name": f"{name}-app", "key": "password"}
        workloads += 1
    assert workloads == len(SERVICES) + 1  # and the migration Job


# --- against the real kustomize, where there is one -----------------------------------------


def strip_hashes(objects: list[Manifest], generated: set[str]) -> list[Manifest]:
    text = json.dumps(objects)
    pattern = "|".join(map(re.escape, generated))
    stripped: list[Manifest] = json.loads(re.sub(rf'"({pattern})-[a-z0-9]{{10}}"', r'"\1"', text))
    return stripped


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) not installed")
@pytest.mark.parametrize("tree", list(TREES))
def test_the_renderer_matches_kubectl_kustomize(tree, tmp_path):
    copy_root = tmp_path / "k8s"
    shutil.copytree(K8S, copy_root)
    for path in (ROOT / "config").glob("*.yaml"):
        shutil.copy(path, copy_root / "base" / "config" / path.name)
    target = copy_root / TREES[tree].relative_to(K8S)
    built = subprocess.run(
        ["kubectl", "kustomize", str(target)], capture_output=True, text=True, timeout=60, check=False
    )
    assert built.returncode == 0, built.stderr
    ours = build(TREES[tree])
    generated = {o["metadata"]["name"] for o in of_kind(ours, "ConfigMap")}
    theirs = strip_hashes([d for d in yaml.safe_load_all(built.stdout) if d], generated)

    def by_id(objects: list[Manifest]) -> dict[tuple[str, str], Manifest]:
        return {(o["kind"], o["metadata"]["name"]): o for o in objects}

    assert Counter(o["kind"] for o in theirs) == Counter(o["kind"] for o in ours)
    assert by_id(theirs) == by_id(ours)
