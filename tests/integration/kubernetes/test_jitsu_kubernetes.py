"""docs/coming-from/failover-reprocessing.md, the Kubernetes rows: Jitsu admin's Kubernetes
settings (ADMIN_KUBERNETES_*, K8S_CONFIG_PATH=local, a JSON node selector) run jobs on the
test API server (tests/kube_apiserver.py, real worker processes); the start reply names the
Kubernetes Job; the objects carry the labels reference 000's kubectl commands select by; and
with no cluster reachable the service still starts and says why a job cannot."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml  # no stubs installed
from fastapi.testclient import TestClient
from kubernetes import client as kube_client
from kubernetes import config as kube_config

from tailrace.api import ApiConfig, create_app
from tailrace.pipeline.samples import write_samples
from tests.kube_apiserver import FakeKubernetes
from tests.waiting import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

TOKEN = "k8s-jitsu-token-0123456789abcdef"
JOBS = "/api/admin/reprocessing/jobs"
NS = "jitsu"


@pytest.fixture(autouse=True)
def _environment_restored() -> Iterator[None]:
    """The service copies Jitsu's names to tailrace's in os.environ (for the processes it
    starts): those copies must not outlive the test, as monkeypatch's own settings do not."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKubernetes]:
    with FakeKubernetes(grace_s=5) as fake:
        monkeypatch.chdir(tmp_path)
        for name in ("K8S_CONFIG_PATH", "K8S_NAMESPACE", "KUBERNETES_NODE_SELECTOR"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)  # not in a cluster
        monkeypatch.setenv("TAILRACE_DATA_DIR", str(tmp_path / ".tailrace"))
        monkeypatch.setenv("ADMIN_RAW_AUTH_TOKENS", TOKEN)
        # no TAILRACE_EXECUTOR: Jitsu's worker image says Kubernetes
        monkeypatch.delenv("TAILRACE_EXECUTOR", raising=False)
        monkeypatch.delenv("REPROCESSING_WORKER_IMAGE", raising=False)
        monkeypatch.setenv("KUBECONFIG", str(fake.kubeconfig(tmp_path / "kubeconfig")))
        monkeypatch.setenv("ADMIN_KUBERNETES_NAMESPACE", NS)
        monkeypatch.setenv("ADMIN_KUBERNETES_NODE_SELECTOR", '{"disktype": "ssd"}')
        monkeypatch.setenv("ADMIN_K8S_MAX_PARALLEL_WORKERS", "2")
        monkeypatch.setenv("ADMIN_REPROCESSING_WORKER_IMAGE", "jitsucom/reprocessing:test")
        yield fake


def _run_a_job(client: TestClient, cluster: FakeKubernetes, tmp_path: Path) -> dict[str, Any]:
    write_samples(tmp_path / "logs", files=12, lines=300, seed=5)
    out = tmp_path / "out.ndjson"
    answer = client.post(JOBS, json={"local_path": str(tmp_path / "logs"), "sink": out.as_uri()})
    assert answer.status_code == 201, answer.text
    job: dict[str, Any] = answer.json()
    # reference 000: "Response includes total_workers and k8s_job_name"
    assert job["k8s_job_name"] == f"reprocess-{job['id']}"
    assert job["total_workers"] >= 1
    done = wait_until(
        lambda: (
            d
            if (d := client.get(f"{JOBS}/{job['id']}").json())["status"] != "pending"
            and d["status"] != "running"
            else None
        ),
        120,
        "the job to finish",
    )
    assert done["status"] == "completed", done
    return job


def test_local_means_in_cluster_else_the_kubeconfig_and_jitsus_names_are_honoured(
    cluster: FakeKubernetes, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("K8S_CONFIG_PATH", "local")  # reference 000's value
    app = create_app(ApiConfig.from_environment(pg_url))
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        job = _run_a_job(client, cluster, tmp_path)
    kube_job = cluster.get("jobs", NS, job["k8s_job_name"])
    assert kube_job is not None
    assert kube_job["spec"]["template"]["spec"]["nodeSelector"] == {"disktype": "ssd"}
    assert kube_job["spec"]["parallelism"] <= 2
    assert kube_job["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "jitsucom/reprocessing:test"
    )
    # `kubectl get jobs -l job-id=$JOB_ID` and `kubectl get pods -l job-id=$JOB_ID`
    api = kube_client.ApiClient(
        kube_config.new_client_from_config(  # type: ignore[no-untyped-call]
            str(tmp_path / "kubeconfig")
        ).configuration
    )
    selector = f"job-id={job['id']}"
    jobs = kube_client.BatchV1Api(api).list_namespaced_job(NS, label_selector=selector).items
    assert [j.metadata.name for j in jobs] == [job["k8s_job_name"]]  # type: ignore[union-attr]
    pods = kube_client.CoreV1Api(api).list_namespaced_pod(NS, label_selector=selector).items
    names = [p.metadata.name for p in pods]  # type: ignore[union-attr]
    assert names and all(str(n).startswith(job["k8s_job_name"]) for n in names)
    for kind, name in (("configmaps", "files"), ("secrets", "config")):
        found = cluster.get(kind, NS, f"reprocess-{job['id']}-{name}")
        assert found is not None and found["metadata"]["labels"]["job-id"] == job["id"]


def test_the_kubeconfig_itself_in_jitsus_client_config_setting(
    cluster: FakeKubernetes, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = yaml.safe_dump(json.loads((tmp_path / "kubeconfig").read_text()))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.setenv("ADMIN_KUBERNETES_CLIENT_CONFIG", text)
    monkeypatch.setenv("ADMIN_KUBERNETES_CONTEXT", "fake")
    app = create_app(ApiConfig.from_environment(pg_url))
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        _run_a_job(client, cluster, tmp_path)


def test_with_no_cluster_the_service_starts_and_a_job_start_says_why(
    cluster: FakeKubernetes, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("K8S_CONFIG_PATH", "local")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    monkeypatch.setenv("HOME", str(tmp_path))
    write_samples(tmp_path / "logs", files=2, lines=50, seed=5)
    app = create_app(ApiConfig.from_environment(pg_url))
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        assert client.get("/health").status_code == 200
        answer = client.post(JOBS, json={"local_path": str(tmp_path / "logs"), "sink": "null:"})
        assert answer.status_code == 502, answer.text
        message = answer.json()["error"]["message"]
        assert "K8S_CONFIG_PATH=local (in-cluster)" in message and "kubeconfig" in message
