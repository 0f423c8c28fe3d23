"""docker-compose.yml and the Dockerfile, checked without a Docker engine: the services and
their wiring, that every mounted or copied file exists, that each vitmon service's environment
is a valid vitmon configuration, that ``--scale monitor=N`` works (no fixed name or host port,
Prometheus finds every replica), and that Prometheus's configuration passes ``promtool``.
The Grafana dashboard: ``tests/test_grafana.py``; Kubernetes: ``tests/test_kubernetes.py``."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from monitor.app.config import load_settings

ROOT = Path(__file__).parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
VITMON_SERVICES = ("migrate", "monitor", "ui", "simulator")
LONG_RUNNING = ("kafka", "postgres", "monitor", "ui", "prometheus", "alertmanager", "grafana")
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def interpolate(value: str) -> str:
    """Compose's ``${VAR:-default}`` with nothing set in the environment: the default.

    >>> interpolate("postgresql://vitmon:${POSTGRES_PASSWORD:-vitmon}@postgres/vitmon")
    'postgresql://vitmon:vitmon@postgres/vitmon'
    """
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def host_path(mount: str) -> Path | None:
    """The host side of a bind mount (None for a named volume)."""
    source = mount.split(":")[0]
    return ROOT / source if source.startswith(".") else None


def test_services_and_images() -> None:
    assert set(SERVICES) == {"kafka", "postgres", "migrate", "monitor", "ui", "simulator",
                             "prometheus", "alertmanager", "grafana"}
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:")
    assert SERVICES["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    for name, service in SERVICES.items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image"
    for name in VITMON_SERVICES:
        assert SERVICES[name]["build"] == "." and SERVICES[name]["image"] == "vitmon:0.1.0"
    assert SERVICES["simulator"]["profiles"] == ["simulator"]
    assert SERVICES["monitor"]["command"] == ["run"] and SERVICES["ui"]["command"] == ["ui"]


def test_health_checks_restart_policies_and_start_order() -> None:
    for name in LONG_RUNNING:
        service = SERVICES[name]
        assert service["restart"] == "unless-stopped", name
        assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
    assert SERVICES["migrate"]["restart"] == "no" and SERVICES["simulator"]["restart"] == "no"
    deps = {n: s.get("depends_on", {}) for n, s in SERVICES.items()}
    assert deps["migrate"]["postgres"]["condition"] == "service_healthy"
    for name in ("monitor", "ui"):
        assert deps[name]["migrate"]["condition"] == "service_completed_successfully"
    assert deps["monitor"]["kafka"]["condition"] == "service_healthy"


def test_ports_match_what_listens() -> None:
    ports = {n: s.get("ports", []) for n, s in SERVICES.items()}
    assert ports["ui"] == ["8501:8501"] and ports["grafana"] == ["3000:3000"]
    assert ports["prometheus"] == ["9090:9090"] and ports["alertmanager"] == ["9093:9093"]
    assert "EXPOSE 8501 9108" in DOCKERFILE
    ui_health = " ".join(SERVICES["ui"]["healthcheck"]["test"])
    assert "localhost:8501/_stcore/health" in ui_health
    assert "localhost:9108/healthz" in " ".join(SERVICES["monitor"]["healthcheck"]["test"])
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    vitmon = next(job for job in prom["scrape_configs"] if job["job_name"] == "vitmon")
    assert vitmon["dns_sd_configs"] == [{"names": ["monitor"], "type": "A", "port": 9108}]
    assert prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == \
        ["alertmanager:9093"]


def test_monitor_scales_out() -> None:
    """``docker compose up --scale monitor=3``: replicas need no fixed container name and no
    host port (two containers cannot bind one), and share the consumer group's settings."""
    monitor = SERVICES["monitor"]
    assert "container_name" not in monitor and "ports" not in monitor
    assert monitor["expose"] == ["9108"]
    env = monitor["environment"]
    assert "VITMON_KAFKA_PARTITIONS" not in env  # the group protocol shares the partitions
    for name, service in SERVICES.items():
        assert "container_name" not in service, name


def test_every_mounted_file_exists() -> None:
    mounts = [(n, m) for n, s in SERVICES.items() for m in s.get("volumes", [])]
    named = set(COMPOSE["volumes"])
    for name, mount in mounts:
        path = host_path(mount)
        if path is None:
            assert mount.split(":")[0] in named, f"{name}: undeclared volume {mount}"
        else:
            assert path.is_file() or path.is_dir(), f"{name}: {mount} mounts a missing path"
    mounted = {mount.split(":")[1] for _, mount in mounts}
    assert {"/etc/prometheus/rules.yml", "/etc/alertmanager/alertmanager.yml",
            "/etc/vitmon/vitmon.yaml", "/etc/grafana/provisioning",
            "/var/lib/grafana/dashboards"} <= mounted


@pytest.mark.parametrize("name", VITMON_SERVICES)
def test_vitmon_environment_is_a_valid_configuration(name: str) -> None:
    env = {k: interpolate(str(v)) for k, v in SERVICES[name]["environment"].items()}
    config = next(host_path(m) for m in SERVICES[name]["volumes"]
                  if m.split(":")[1] == env.pop("VITMON_CONFIG"))
    settings = load_settings(config, env=env)  # raises ConfigError naming a bad setting
    assert settings.kafka.bootstrap == "kafka:9092"
    assert settings.database_url() == "postgresql://vitmon:vitmon@postgres:5432/vitmon"
    assert settings.alertmanager.url == "http://alertmanager:9093"
    assert settings.metrics.port == 9108
    assert settings.ui.password is None or not settings.ui.password.get_secret_value()


def test_dockerfile_builds_from_the_sources() -> None:
    assert re.search(r"^FROM python:3\.\d+-slim-\w+$", DOCKERFILE, re.M)
    assert "torch==2.13.0" in DOCKERFILE and "download.pytorch.org/whl/cpu" in DOCKERFILE
    copied = re.findall(r"^COPY (.+) \S+$", DOCKERFILE, re.M)
    for line in copied:
        for source in line.split():
            assert (ROOT / source).exists(), f"COPY {source}: missing"
    packages = {s.split()[0] for s in copied} - {"pyproject.toml"}
    assert {"monitor", "detectors", "slices", "ui", "simulator", "migrations"} <= packages
    assert re.search(r"^USER vitmon$", DOCKERFILE, re.M), "run as an unprivileged user"
    assert 'ENTRYPOINT ["vitmon"]' in DOCKERFILE
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".vitmon", ".git"} <= set(ignored)


def test_prometheus_config_and_rules_pass_promtool() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "install Debian's prometheus package (make debian) for promtool"
    out = subprocess.run([promtool, "check", "config", "deploy/prometheus/prometheus.yml"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 rule files found" in out.stdout + out.stderr
