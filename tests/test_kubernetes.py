"""deploy/kubernetes/ without a cluster: every manifest against the Kubernetes schemas of the
``kubernetes-validate`` package (strict: an unknown field fails), the KEDA ScaledObject's
structure checked here (no schema is bundled for it), and the wiring between them: probes on
the health endpoints of the metrics port, the database URL only from the Secret, the ConfigMap a
valid vitmon configuration, selectors that match, at most one replica per partition."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from monitor.app.config import load_settings

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "kubernetes"
KUSTOMIZATION = yaml.safe_load((K8S / "kustomization.yaml").read_text())
DOCS = [d for name in KUSTOMIZATION["resources"]
        for d in yaml.safe_load_all((K8S / name).read_text()) if d]
BY_KIND = {(d["kind"], d["metadata"]["name"]): d for d in DOCS}
KUBERNETES = "1.30.0"  # the oldest minor still in support; the schemas of newer ones accept it
PARTITIONS = 6  # of vit.predictions in this deployment (monitor-scaledobject.yaml says so)
VITMON_CONTAINERS = [(d["metadata"]["name"], c) for d in DOCS if d["kind"] in ("Deployment", "Job")
                     for c in d["spec"]["template"]["spec"]["containers"]]


def _pod_spec(kind: str, name: str) -> dict:
    return BY_KIND[(kind, name)]["spec"]["template"]["spec"]


def test_every_file_is_listed_and_every_kind_is_there() -> None:
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert files == set(KUSTOMIZATION["resources"])
    kinds = sorted(kind for kind, _ in BY_KIND)
    assert kinds == sorted(["Namespace", "ConfigMap", "Secret", "Job", "Deployment", "Deployment",
                            "Service", "Service", "PodDisruptionBudget", "ScaledObject"])
    assert all(d["metadata"].get("namespace", "vitmon") == "vitmon" for d in DOCS)


@pytest.mark.parametrize("doc", [d for d in DOCS if d["kind"] != "ScaledObject"],
                         ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_manifest_passes_the_kubernetes_schema(doc: dict) -> None:
    kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_the_schema_check_catches_a_typo() -> None:
    pdb = BY_KIND[("PodDisruptionBudget", "vitmon-monitor")]
    typo = {**pdb, "spec": {**pdb["spec"], "maxUnavailabel": 1}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, KUBERNETES, strict=True)


def _settings(tmp_path: Path):
    cm = BY_KIND[("ConfigMap", "vitmon-config")]["data"]
    (tmp_path / "vitmon.yaml").write_text(cm["vitmon.yaml"])
    secret = BY_KIND[("Secret", "vitmon-database")]["stringData"]
    env = {k: v for k, v in cm.items() if k.startswith("VITMON_") and k != "VITMON_CONFIG"}
    return load_settings(tmp_path / "vitmon.yaml", env={**env, "VITMON_DATABASE_URL":
                                                        secret["url"]})


def test_config_is_a_valid_vitmon_configuration_and_the_url_comes_from_the_secret(
        tmp_path: Path) -> None:
    settings = _settings(tmp_path)  # raises ConfigError naming a bad setting
    assert settings.kafka.partitions is None  # the consumer group shares the partitions
    assert settings.database_url().startswith("postgresql://")
    assert "postgresql://" not in yaml.safe_dump(BY_KIND[("ConfigMap", "vitmon-config")])
    for name, container in VITMON_CONTAINERS:
        env = {e["name"]: e for e in container.get("env", [])}
        ref = env["VITMON_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"]) == ("vitmon-database", "url"), name
        assert container["envFrom"] == [{"configMapRef": {"name": "vitmon-config"}}], name
        mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
        cm = BY_KIND[("ConfigMap", "vitmon-config")]["data"]
        assert cm["VITMON_CONFIG"] == f"{mount['mountPath']}/vitmon.yaml", name
        assert container["image"].split(":")[0] == KUSTOMIZATION["images"][0]["name"], name


def test_monitor_probes_hit_the_health_endpoints_on_the_metrics_port(tmp_path: Path) -> None:
    (monitor,) = _pod_spec("Deployment", "vitmon-monitor")["containers"]
    ports = {p["name"]: p["containerPort"] for p in monitor["ports"]}
    assert ports["metrics"] == _settings(tmp_path).metrics.port
    assert monitor["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert monitor["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert monitor["args"] == ["run"]
    # SIGTERM is honoured within 10 s (bench/README): the grace period leaves room
    assert _pod_spec("Deployment", "vitmon-monitor")["terminationGracePeriodSeconds"] >= 15


def test_scaled_object_scales_the_monitor_on_the_group_lag(tmp_path: Path) -> None:
    so = BY_KIND[("ScaledObject", "vitmon-monitor")]
    assert so["apiVersion"] == "keda.sh/v1alpha1"
    spec = so["spec"]
    assert set(spec) <= {"scaleTargetRef", "minReplicaCount", "maxReplicaCount",
                         "pollingInterval", "cooldownPeriod", "idleReplicaCount", "triggers",
                         "advanced", "fallback"}
    target = spec["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"]) == ("apps/v1", "Deployment")
    assert ("Deployment", target["name"]) in BY_KIND
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] == PARTITIONS
    assert all(isinstance(spec[k], int) and spec[k] > 0 for k in ("pollingInterval",
                                                                   "cooldownPeriod"))
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    assert all(isinstance(v, str) for v in meta.values()), "KEDA trigger metadata are strings"
    assert int(meta["lagThreshold"]) > 0 and int(meta["activationLagThreshold"]) >= 0
    assert meta["allowIdleConsumers"] == "false" and meta["offsetResetPolicy"] in ("earliest",
                                                                                    "latest")
    settings = _settings(tmp_path)
    assert meta["bootstrapServers"] == settings.kafka.bootstrap
    assert meta["consumerGroup"] == settings.kafka.group
    assert meta["topic"] == settings.kafka.predictions_topic


def test_selectors_and_ports_match() -> None:
    for kind, name in BY_KIND:
        doc = BY_KIND[(kind, name)]
        if kind in ("Deployment", "Job"):
            labels = doc["spec"]["template"]["metadata"]["labels"]
            if kind == "Deployment":
                assert doc["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
    pods = {name: BY_KIND[("Deployment", name)]["spec"]["template"]
            for kind, name in BY_KIND if kind == "Deployment"}
    for service in ("vitmon-monitor-metrics", "vitmon-ui"):
        spec = BY_KIND[("Service", service)]["spec"]
        matched = [p for p in pods.values()
                   if spec["selector"].items() <= p["metadata"]["labels"].items()]
        assert len(matched) == 1, service
        names = {port["name"] for c in matched[0]["spec"]["containers"] for port in c["ports"]}
        assert {p["targetPort"] for p in spec["ports"]} <= names, service
    pdb = BY_KIND[("PodDisruptionBudget", "vitmon-monitor")]["spec"]
    assert pdb["selector"]["matchLabels"].items() <= \
        pods["vitmon-monitor"]["metadata"]["labels"].items()
    assert pdb["maxUnavailable"] == 1


def test_migration_job_and_ui() -> None:
    (job,) = _pod_spec("Job", "vitmon-migrate")["containers"]
    assert job["args"] == ["db", "upgrade"]
    assert _pod_spec("Job", "vitmon-migrate")["restartPolicy"] == "OnFailure"
    (ui,) = _pod_spec("Deployment", "vitmon-ui")["containers"]
    assert ui["args"] == ["ui"] and ui["ports"][0]["containerPort"] == 8501
    assert ui["readinessProbe"]["httpGet"]["path"] == "/_stcore/health"
    for kind, name in (("Job", "vitmon-migrate"), ("Deployment", "vitmon-monitor"),
                       ("Deployment", "vitmon-ui")):
        assert _pod_spec(kind, name)["securityContext"]["runAsNonRoot"] is True, name
