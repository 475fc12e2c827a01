"""The deployment files agree with the code: commands, ports, settings, healthchecks, metrics.

docker-compose.yml cannot be started here (no Docker engine), so it is read as
data and compared with what the code reads: the CLI's commands, the Settings
fields and their defaults. The Kubernetes manifests have their own module,
test_k8s_manifests.py.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from leadflow.commands import app as cli
from leadflow.devstack.apache_kafka import KAFKA_VERSION
from services.feedback.settings import FeedbackSettings
from services.handoff.settings import HandoffSettings
from services.intake.settings import IntakeSettings
from shared.settings import SERVICES, Settings

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
CONFIG_COPY = ROOT / "deploy" / "k8s" / "base" / "config"
# Every setting a service reads: the platform's and each service's own.
SETTINGS_CLASSES = (Settings, IntakeSettings, HandoffSettings, FeedbackSettings)
DEFAULTS = {name: field.default for kind in SETTINGS_CLASSES for name, field in kind.model_fields.items()}
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def default_port(service: str) -> int:
    port: int = DEFAULTS[f"{service}_port"]
    return port


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def interpolated(value: object) -> str:
    """A compose value with its ${VARIABLE...} references filled in, as from .env."""
    return re.sub(r"\$\{(\w+)[^}]*\}", lambda m: f"{m.group(1).lower()}-from-env", str(value))


def settings_of(spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The Settings a container of this compose service reads (the secrets come from .env)."""
    monkeypatch.setenv("LEADFLOW_ADMIN_KEY", "lf_" + "x" * 32)
    monkeypatch.setenv("LEADFLOW_SECRETS_KEY", "c2VjcmV0cy1rZXktb2YtYS1jb21wb3NlLXN0YWNrISE=")
    monkeypatch.setenv("LEADFLOW_PRIVACY_SUBJECT_KEY", "subject-key-of-a-compose-stack")
    for name, value in spec["environment"].items():
        monkeypatch.setenv(name, interpolated(value))
    return Settings()


def cli_commands() -> set[str]:
    return {c.name or c.callback.__name__.replace("_", "-") for c in cli.registered_commands if c.callback}


# --- docker-compose.yml -------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_compose_serves_each_service_from_the_one_image_on_its_default_port(compose, service):
    serving = {
        name: spec for name, spec in compose["services"].items() if spec.get("command") == ["serve", service]
    }
    assert list(serving) == [service]
    spec = serving[service]
    assert spec["build"] == "."
    assert spec["image"] == f"leadflow:{VERSION}"
    published, _, target = spec["ports"][0].partition(":")
    assert int(published) == int(target) == default_port(service)


@pytest.mark.parametrize("service", SERVICES)
def test_compose_settings_are_the_ones_the_service_reads(compose, service, monkeypatch):
    spec = compose["services"][service]
    assert spec["command"][0] in cli_commands()
    settings = settings_of(spec, monkeypatch)
    assert settings.env == "production"
    assert settings.host == "0.0.0.0"  # reachable from outside the container
    assert settings.port_of(service) == int(spec["ports"][0].split(":")[1])
    assert settings.kafka_bootstrap == "kafka:9092"
    assert settings.database_url.endswith("@postgres:5432/leadflow")
    assert "postgres_password-from-env" in settings.database_url  # the password comes from .env
    assert str(settings.config_dir) == "/app/config"


def test_every_leadflow_variable_in_compose_is_a_setting(compose):
    names = {n for spec in compose["services"].values() for n in spec.get("environment", {})}
    leadflow = {n for n in names if n.startswith("LEADFLOW_")}
    assert leadflow
    assert {n for n in leadflow if n.removeprefix("LEADFLOW_").lower() not in DEFAULTS} == set()


def test_the_migration_creates_topics_with_the_default_partition_count(compose, monkeypatch):
    migrate = compose["services"]["migrate"]
    assert migrate["command"] == ["migrate"] and migrate["command"][0] in cli_commands()
    assert "LEADFLOW_TOPIC_PARTITIONS" in migrate["environment"]  # explicit, not left to the default
    settings = settings_of(migrate, monkeypatch)
    assert settings.topic_partitions == DEFAULTS["topic_partitions"]
    assert settings.topic_replication == 1  # one broker


def test_compose_services_run_after_the_migration(compose):
    services = compose["services"]
    for name in (*SERVICES, "migrate"):
        spec = services[name]
        assert spec["env_file"] == ".env"
        assert spec["depends_on"]["postgres"] == {"condition": "service_healthy"}
        assert spec["depends_on"]["kafka"] == {"condition": "service_healthy"}
    for name in SERVICES:
        migrated = services[name]["depends_on"]["migrate"]
        assert migrated == {"condition": "service_completed_successfully"}
    assert services["migrate"]["restart"] == "no"


def test_kafka_runs_in_kraft_mode_and_postgres_is_pinned(compose):
    kafka = compose["services"]["kafka"]
    assert kafka["image"] == f"apache/kafka:{KAFKA_VERSION}"  # the version the tests run on
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert kafka["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert compose["services"]["postgres"]["image"] == "postgres:17.6"
    for name in ("kafka", "postgres"):
        assert "healthcheck" in compose["services"][name]


def test_each_service_keeps_the_image_healthcheck_and_migrate_has_none(compose):
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r'^\s+CMD \["python", "/app/healthcheck.py"\]$', text, re.M)
    for name in SERVICES:
        assert not compose["services"][name].get("healthcheck", {}).get("disable")
    assert compose["services"]["migrate"]["healthcheck"] == {"disable": True}


def test_observability_is_an_optional_profile_with_pinned_images(compose):
    for name in ("prometheus", "grafana"):
        spec = compose["services"][name]
        assert spec["profiles"] == ["observability"]
        assert re.search(r":v?\d+\.\d+\.\d+$", spec["image"]), spec["image"]


def test_grafana_mounts_the_provisioning_and_the_dashboards(compose):
    mounts = {m.split(":")[0]: m.split(":")[1] for m in compose["services"]["grafana"]["volumes"]}
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "leadflow.yml").read_text())
    (dashboards,) = provider["providers"]
    assert mounts["./deploy/grafana/dashboards"] == dashboards["options"]["path"]


# --- Prometheus and Grafana -------------------------------------------------------------


def test_prometheus_scrapes_every_service_where_compose_serves_it():
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    job = config["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics"
    targets = {t for group in job["static_configs"] for t in group["targets"]}
    assert targets == {f"{s}:{default_port(s)}" for s in SERVICES}
    services = {group["labels"]["service"] for group in job["static_configs"]}
    assert services == set(SERVICES)  # the dashboard groups by this label


def test_prometheus_sends_a_metrics_key_that_compose_mounts_and_git_ignores(compose):
    job = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())["scrape_configs"][0]
    assert job["authorization"]["type"] == "Bearer"  # /metrics needs the metrics:read scope
    mounts = {m.split(":")[1]: m.split(":")[0] for m in compose["services"]["prometheus"]["volumes"]}
    key_file = mounts[job["authorization"]["credentials_file"]]
    assert key_file.removeprefix("./") in (ROOT / ".gitignore").read_text().splitlines()


def declared_metrics() -> dict[str, str]:
    """name -> type of every Prometheus metric the services declare."""
    pattern = re.compile(r'\b(Counter|Gauge|Histogram|Summary)\(\s*"(leadflow_\w+)"')
    found: dict[str, str] = {}
    for path in [*(ROOT / "shared").rglob("*.py"), *(ROOT / "services").rglob("*.py")]:
        found |= {name: kind for kind, name in pattern.findall(path.read_text())}
    return found


def dashboard_queries() -> list[str]:
    dashboard = json.loads((GRAFANA / "dashboards" / "leadflow.json").read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert all(p["datasource"]["uid"] == "prometheus" for p in panels)
    return [target["expr"] for panel in panels for target in panel["targets"]]


def series(name: str, kind: str) -> set[str]:
    """The series Prometheus scrapes for a declared metric."""
    return {f"{name}{suffix}" for suffix in ("_bucket", "_sum", "_count")} if kind == "Histogram" else {name}


def test_the_dashboard_graphs_every_metric_the_services_expose():
    declared = {name: series(name, kind) for name, kind in declared_metrics().items()}
    assert {"leadflow_http_requests_total", "leadflow_consumer_lag"} <= set(declared)
    queried = {m for expr in dashboard_queries() for m in re.findall(r"\bleadflow_\w+", expr)}
    assert queried - set().union(*declared.values()) == set()
    assert {name for name, scraped in declared.items() if not scraped & queried} == set()


# Words of PromQL that are not metric names (functions and aggregations are told by their "(").
PROMQL_KEYWORDS = {
    *("by", "without", "on", "ignoring", "group_left", "group_right"),
    *("and", "or", "unless", "atan2", "bool", "offset", "inf", "nan"),
}
PROMETHEUS_OWN = {"up"}  # series Prometheus itself records for each target


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)  # label matchers, ranges
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for word in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        if not expr[word.end() :].lstrip().startswith("(") and word.group() not in PROMQL_KEYWORDS:
            names.add(word.group())
    return names


# The modules that declare every figure: the platform's and each service's own.
METRIC_MODULES = ("shared.metrics", *(f"services.{service}.metrics" for service in SERVICES))


def metric_families() -> dict[str, str]:
    """name (as exposed, counters with `_total`) -> type of every metric of the METRIC_MODULES."""
    families = [
        family
        for module in METRIC_MODULES
        for collector in vars(importlib.import_module(module)).values()
        if isinstance(collector, MetricWrapperBase)
        for family in collector.describe()
    ]
    return {f.name + ("_total" if f.type == "counter" else ""): f.type for f in families}


def metric_series() -> set[str]:
    """The series Prometheus scrapes for them (a histogram is three)."""
    histogram = ("_bucket", "_sum", "_count")
    return {
        name + suffix
        for name, kind in metric_families().items()
        for suffix in (histogram if kind == "histogram" else ("",))
    }


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((GRAFANA / "dashboards" / "leadflow.json").read_text())
    return loaded


def test_promql_metric_names_are_told_from_functions_labels_and_ranges():
    expr = (
        'histogram_quantile(0.99, sum by (service, le) (rate(a_seconds_bucket{route=~"/v1/(x)"}[5m])))'
        " / on (service) group_left max without (instance) (b_total) > bool 0.1"
    )
    assert promql_metric_names(expr) == {"a_seconds_bucket", "b_total"}


def test_every_metric_the_dashboard_queries_is_declared_in_the_metric_modules():
    exposed = metric_series()
    assert {
        "leadflow_intake_events_total",
        "leadflow_consumer_lag",
        "leadflow_http_request_seconds_bucket",
    } <= exposed
    queried = {name for expr in dashboard_queries() for name in promql_metric_names(expr)}
    assert queried - exposed - PROMETHEUS_OWN == set()


def test_the_dashboard_graphs_the_figures_ops_watch():
    queried = {name for expr in dashboard_queries() for name in promql_metric_names(expr)}
    figures = {
        "leadflow_intake_events_total",
        "leadflow_consumer_lag",
        "leadflow_mqls_total",
        "leadflow_handoffs",
        "leadflow_sla_breaches_total",
        "leadflow_sla_warnings_total",
        "leadflow_return_rate",
        "leadflow_return_rate_decisions",
        "leadflow_alerts_open",
        "leadflow_webhook_deliveries_total",
        "leadflow_http_request_seconds_bucket",
        "leadflow_outbox_published_total",
    }
    assert figures - queried == set()
    latency = [e for e in dashboard_queries() if "leadflow_http_request_seconds_bucket" in e]
    assert any("histogram_quantile(0.99" in e and re.search(r"by \(service, route, le\)", e) for e in latency)


def test_the_dashboard_is_a_grafana_dashboard_with_panels_on_one_grid():
    board = dashboard()
    assert board["uid"] == "leadflow" and board["title"]
    assert isinstance(board["schemaVersion"], int) and board["editable"] is False
    panels = board["panels"]
    ids = [p["id"] for p in panels]
    assert len(set(ids)) == len(ids) and all(isinstance(i, int) for i in ids)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        assert panel["type"] in {"row", "timeseries", "stat", "gauge", "table"} and panel["title"]
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in ("h", "w", "x", "y"))
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        taken = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not taken & cells, f"panel {panel['title']!r} overlaps another"
        cells |= taken
        if panel["type"] == "row":
            assert panel["panels"] == [] and not panel["collapsed"]
            continue
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(set(refs)) == len(refs)
        assert all(t["expr"] and t["datasource"] == panel["datasource"] for t in panel["targets"])


def test_the_return_rate_panel_draws_the_alert_threshold_line():
    threshold = yaml.safe_load((ROOT / "config" / "feedback.yaml").read_text())["threshold"]
    [panel] = [
        p
        for p in dashboard()["panels"]
        if any("leadflow_return_rate" in promql_metric_names(t["expr"]) for t in p.get("targets", []))
    ]
    defaults = panel["fieldConfig"]["defaults"]
    assert defaults["unit"] == "percentunit"
    assert defaults["custom"]["thresholdsStyle"]["mode"] in {"line", "line+area", "dashed"}
    assert [step["value"] for step in defaults["thresholds"]["steps"]] == [None, threshold]


def test_every_metric_is_documented_in_operations():
    documented = (ROOT / "docs" / "operations.md").read_text()
    assert {name for name in metric_families() if f"`{name}" not in documented} == set()


def test_the_dashboard_reads_the_provisioned_data_source():
    sources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = sources["datasources"]
    assert source["uid"] == "prometheus" and source["url"] == "http://prometheus:9090"


# --- secrets, image, healthcheck ---------------------------------------------------------


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
    assert {"LEADFLOW_ADMIN_KEY", "LEADFLOW_SECRETS_KEY", "POSTGRES_PASSWORD"} <= names
    assert all(line.split("=", 1)[1] == "" for line in assignments)
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()


def test_dockerfile_runs_leadflow_as_non_root_with_a_healthcheck():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim AS builder$", text, re.M)
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
    assert module.served_service(["/sbin/docker-init", "--", "leadflow", "serve", "intake"]) == "intake"
    assert module.served_service(["/sbin/docker-init", "--", "leadflow", "migrate"]) is None


def test_kubernetes_pins_the_kafka_version_the_tests_run_on():
    documents = yaml.safe_load_all((ROOT / "deploy/k8s/overlays/strimzi-cnpg/kafka.yaml").read_text())
    [kafka] = [d for d in documents if d["kind"] == "Kafka"]
    assert kafka["spec"]["kafka"]["version"] == KAFKA_VERSION
    assert int(kafka["spec"]["kafka"]["config"]["min.insync.replicas"]) == 2
