"""What the Kubernetes executor creates, validated against the Kubernetes OpenAPI schemas
of a pinned version (offline, with kubernetes-validate)."""

from __future__ import annotations

from datetime import UTC, datetime

import kubernetes_validate
import pytest

from tailrace.errors import ConfigurationError
from tailrace.executors.kubernetes import (
    KubernetesSettings,
    _indexes,
    build_objects,
    worker_environment,
)
from tailrace.pipeline.jobs import ReprocessingConfig, ReprocessingJob, ReprocessingStatus

KUBERNETES_VERSION = "1.30"


def _job(workers: int) -> ReprocessingJob:
    return ReprocessingJob(
        id="a1b2c3d4e5f6",
        config=ReprocessingConfig(source="s3://bucket/failover/", sink="@kafka"),
        status=ReprocessingStatus.PENDING,
        created_at=datetime.now(UTC),
        started_at=None,
        completed_at=None,
        k8s_job_name=None,
        total_files=120,
        total_workers=workers,
        total_bytes=0,
        error=None,
    )


@pytest.mark.parametrize(("workers", "parallel"), [(1, 1), (8, 8), (50, 10)])
def test_every_object_is_valid_for_the_pinned_kubernetes(workers: int, parallel: int) -> None:
    settings = KubernetesSettings(
        image="registry.example/tailrace:1.0",
        max_parallel=10,
        node_selector={"pool": "reprocess"},
    )
    env = worker_environment(
        "postgresql://tailrace:pw@db:5432/tailrace",
        {"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092", "HOME": "/root", "TAILRACE_SINK_KAFKA": "x"},
    )
    files = [(f"s3://bucket/failover/{i}.ndjson.gz", 1000 + i) for i in range(120)]
    configmap, secret, job = build_objects(_job(workers), files, settings, env)
    for obj in (configmap, secret, job):
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    assert job["spec"]["parallelism"] == min(workers, 10) == parallel
    assert set(secret["stringData"]) == {
        "TAILRACE_DATABASE_URL",
        "KAFKA_BOOTSTRAP_SERVERS",
        "TAILRACE_SINK_KAFKA",
        "TAILRACE_JOB_CONFIG",
    }  # HOME and the like stay behind
    for name in ("metadata", "spec"):
        assert "postgresql://" not in str(job[name]) and "postgresql://" not in str(configmap)
    # the worker serves its figures and probes where the pod monitor scrapes
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["ports"] == [{"name": "metrics", "containerPort": 9464}]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["TAILRACE_METRICS_PORT"] == "9464" and env["TAILRACE_METRICS_HOST"] == "0.0.0.0"


def test_workers_on_kubernetes_need_postgresql() -> None:
    with pytest.raises(ConfigurationError, match="PostgreSQL"):
        worker_environment("sqlite:///.tailrace/tailrace.db", {})


def test_settings_from_the_environment_say_what_is_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REPROCESSING_WORKER_IMAGE", raising=False)
    with pytest.raises(ConfigurationError, match="REPROCESSING_WORKER_IMAGE"):
        KubernetesSettings.from_environment()
    monkeypatch.setenv("REPROCESSING_WORKER_IMAGE", "img")
    monkeypatch.setenv("KUBERNETES_NODE_SELECTOR", "pool=a,broken")
    with pytest.raises(ConfigurationError, match="'broken' is not key=value"):
        KubernetesSettings.from_environment()
    monkeypatch.setenv("KUBERNETES_NODE_SELECTOR", "pool=a, zone = b ")
    monkeypatch.setenv("K8S_MAX_PARALLEL_WORKERS", "0")
    with pytest.raises(ConfigurationError, match="K8S_MAX_PARALLEL_WORKERS"):
        KubernetesSettings.from_environment()
    monkeypatch.setenv("K8S_MAX_PARALLEL_WORKERS", "8")
    settings = KubernetesSettings.from_environment()
    assert settings.node_selector == {"pool": "a", "zone": "b"} and settings.max_parallel == 8


def test_index_lists_as_the_job_status_writes_them() -> None:
    assert _indexes(None) == [] and _indexes("") == []
    assert _indexes("0,2-4,7") == [0, 2, 3, 4, 7]


def test_pod_log_times_sort_as_text_once_padded() -> None:
    from tailrace.executors.kubernetes import _pod_lines

    text = "2024-01-15T10:30:45.5Z b\n2024-01-15T10:30:45Z a\n2024-01-15T10:30:45.15Z c\n"
    lines = _pod_lines(text, 0, "pod-0")
    assert [line.timestamp for line in sorted(lines, key=lambda line: line.timestamp)] == [
        "2024-01-15T10:30:45.000000000Z",
        "2024-01-15T10:30:45.150000000Z",
        "2024-01-15T10:30:45.500000000Z",
    ]
    assert [line.message for line in lines] == ["b", "a", "c"]
