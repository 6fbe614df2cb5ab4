"""The Kubernetes executor end to end: jobs started through the admin API run as Indexed
Jobs on the test API server (tests/kube_apiserver.py), whose kubelet starts one real
`tailrace worker` process per index with only the environment the pod spec gives it."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tailrace.api import ApiConfig, create_app
from tailrace.executors.kubernetes import RBAC_RULES
from tailrace.pipeline.samples import write_samples
from tests.kube_apiserver import FakeKubernetes
from tests.waiting import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

TOKEN = "k8s-test-token-0123456789abcdef"
JOBS = "/api/admin/reprocessing/jobs"
NS = "tailrace"
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKubernetes]:
    with FakeKubernetes(grace_s=5) as fake:
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("TAILRACE_DATA_DIR", str(tmp_path / ".tailrace"))
        monkeypatch.setenv("TAILRACE_API_TOKENS", TOKEN)
        monkeypatch.setenv("TAILRACE_EXECUTOR", "kubernetes")
        monkeypatch.setenv("K8S_CONFIG_PATH", str(fake.kubeconfig(tmp_path / "kubeconfig")))
        monkeypatch.setenv("K8S_NAMESPACE", NS)
        monkeypatch.setenv("K8S_MAX_PARALLEL_WORKERS", "2")
        monkeypatch.setenv("K8S_BACKOFF_LIMIT_PER_INDEX", "1")
        monkeypatch.setenv("KUBERNETES_NODE_SELECTOR", "pool=reprocess,disk=ssd")
        monkeypatch.setenv("REPROCESSING_WORKER_IMAGE", "tailrace:test")
        monkeypatch.setenv("KAFKA_SASL_PASSWORD", "kafka-secret")  # passed in the Secret only
        yield fake


@pytest.fixture
def client(cluster: FakeKubernetes, pg_url: str) -> Iterator[TestClient]:
    app = create_app(ApiConfig.from_environment(pg_url))
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as test_client:
        yield test_client


def _finished(client: TestClient, job_id: str, timeout: float = 120) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job: dict[str, Any] = client.get(f"{JOBS}/{job_id}").json()
        return job if job["status"] in ("completed", "failed", "cancelled") else None

    return wait_until(done, timeout, f"job {job_id} to finish")


def _secret(cluster: FakeKubernetes, job_id: str) -> dict[str, str]:
    secret = cluster.get("secrets", NS, f"reprocess-{job_id}-config")
    assert secret is not None
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def test_a_job_runs_as_an_indexed_job_to_completion(
    client: TestClient, cluster: FakeKubernetes, tmp_path: Path, pg_url: str
) -> None:
    samples = write_samples(tmp_path / "logs", files=25, lines=1500, seed=2, bad_rate=0.002)
    out = tmp_path / "out.ndjson"
    job = client.post(JOBS, json={"path": str(tmp_path / "logs"), "sink": out.as_uri()})
    assert job.status_code == 201, job.text
    job_id = job.json()["id"]

    kube_job = cluster.get("jobs", NS, f"reprocess-{job_id}")
    assert kube_job is not None
    spec = kube_job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert (spec["completions"], spec["parallelism"]) == (3, 2)  # 25 files, at most 2 at once
    assert spec["ttlSecondsAfterFinished"] == 86400 and spec["backoffLimitPerIndex"] == 1
    pod = spec["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "reprocess", "disk": "ssd"}
    assert pod["containers"][0]["image"] == "tailrace:test"
    assert kube_job["metadata"]["labels"]["job-id"] == job_id

    files = cluster.get("configmaps", NS, f"reprocess-{job_id}-files")
    assert files is not None
    assert files["data"]["worker_count"] == "3" and files["data"]["total_files"] == "25"
    assert len(json.loads(files["data"]["files.json"])) == 25
    secret = _secret(cluster, job_id)
    assert secret["TAILRACE_DATABASE_URL"] == pg_url
    assert secret["KAFKA_SASL_PASSWORD"] == "kafka-secret"
    assert json.loads(secret["TAILRACE_JOB_CONFIG"])["sink"] == out.as_uri()

    done = _finished(client, job_id)
    assert done["status"] == "completed", done
    assert done["k8s_job_name"] == f"reprocess-{job_id}"
    assert done["total_lines"] == sum(s.lines for s in samples)
    assert done["error_count"] == sum(s.bad_lines for s in samples) > 0
    assert done["balanced"]
    assert sum(1 for line in out.read_bytes().splitlines() if line) == done["success_count"]
    workers = client.get(f"{JOBS}/{job_id}/workers").json()["workers"]
    # two run at once; the third pod may start only once the work is done, and then leaves
    assert {0, 1} <= {w["worker_index"] for w in workers} <= {0, 1, 2}

    # the job is done when its files are; the Kubernetes Job, when its last index has run
    wait_until(
        lambda: (
            (cluster.get("jobs", NS, f"reprocess-{job_id}") or {})
            .get("status", {})
            .get("conditions")
        ),
        60,
        "the Kubernetes Job to complete",
    )
    logs = client.get(f"{JOBS}/{job_id}/logs", params={"tail": 1000}).json()
    assert {log["worker_index"] for log in logs["logs"]} == {0, 1, 2}
    assert all(log["pod_name"].startswith(f"reprocess-{job_id}-") for log in logs["logs"])
    first = logs["logs"][0]["lines"][0]
    assert first[:4].isdigit() and first[29] == "Z"  # Kubernetes' RFC 3339 nanoseconds
    by_time = client.get(f"{JOBS}/{job_id}/logs", params={"sort": "true", "tail": 1000}).json()
    stamps = [line["timestamp"] for line in by_time["lines"]]
    assert stamps == sorted(stamps)
    assert any("file completed" in line["message"] for line in by_time["lines"])
    assert "kafka-secret" not in json.dumps(logs)

    # the executor made every call the deployment's Role grants, and no other
    granted = {(group, resource, verb) for group, resource, verbs in RBAC_RULES for verb in verbs}
    made = {(group, resource, verb) for verb, group, resource in cluster.calls}
    assert made == granted, (made - granted, granted - made)


def test_the_role_in_the_manifests_grants_exactly_what_the_executor_calls() -> None:
    rules = json.loads((ROOT / "deploy" / "kubernetes" / "rbac-rules.json").read_text())
    written = {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert written == {(g, r, v) for g, r, verbs in RBAC_RULES for v in verbs}


def test_a_job_without_a_sink_is_refused_before_anything_is_created(
    client: TestClient, cluster: FakeKubernetes, tmp_path: Path
) -> None:
    write_samples(tmp_path / "logs", files=1, lines=10, seed=1)
    response = client.post(JOBS, json={"path": str(tmp_path / "logs")})
    assert response.status_code == 422
    assert "TAILRACE_DEFAULT_SINK" in response.json()["error"]["message"]
    assert not [call for call in cluster.calls if call[0] == "create"]


def test_cancel_deletes_the_job_its_pods_configmap_and_secret(
    client: TestClient, cluster: FakeKubernetes, tmp_path: Path
) -> None:
    write_samples(tmp_path / "big", files=20, lines=20_000, seed=4)
    job_id = client.post(JOBS, json={"path": str(tmp_path / "big"), "sink": "null:"}).json()["id"]
    wait_until(lambda: cluster.running_pods(), 60, "a worker pod to start")
    running = cluster.running_pods()
    cancelled = client.post(f"{JOBS}/{job_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    for kind, name in (
        ("jobs", f"reprocess-{job_id}"),
        ("configmaps", f"reprocess-{job_id}-files"),
        ("secrets", f"reprocess-{job_id}-config"),
    ):
        assert cluster.get(kind, NS, name) is None, kind
    assert all(p.process is not None and p.process.poll() is not None for p in running)
    assert not cluster.running_pods()
    job = client.get(f"{JOBS}/{job_id}").json()
    assert job["status"] == "cancelled" and job["balanced"]


def test_an_index_that_fails_past_its_backoff_marks_its_worker_failed(
    client: TestClient, cluster: FakeKubernetes, tmp_path: Path
) -> None:
    samples = write_samples(tmp_path / "big", files=20, lines=20_000, seed=6)
    job_id = client.post(JOBS, json={"path": str(tmp_path / "big"), "sink": "null:"}).json()["id"]
    # index 0's pod is killed twice (an OOM kill, say): past backoffLimitPerIndex=1
    for attempt in range(2):
        pod = wait_until(
            lambda: next(
                (p for p in cluster.running_pods(0) if not getattr(p, "_killed", False)), None
            ),
            60,
            f"index 0's pod, attempt {attempt + 1}",
        )
        pod._killed = True  # type: ignore[attr-defined]
        cluster.kill(pod)
    done = _finished(client, job_id, timeout=180)
    # the other indexes took over the files: nothing was lost
    assert done["status"] == "completed", done
    assert done["total_lines"] == sum(s.lines for s in samples) == done["success_count"]


    def index_0() -> dict[str, Any] | None:
        # the job can settle (the other indexes finished it) before the executor's next look
        # at the Kubernetes Job marks index 0: that look comes within its poll interval
        rows = client.get(f"{JOBS}/{job_id}/workers").json()["workers"]
        return next((w for w in rows if w["worker_index"] == 0 and w["status"] == "failed"), None)

    worker = wait_until(index_0, 30, "index 0 marked failed")
    assert "failed: Error (exit 137)" in worker["error"]
    kube_job = cluster.get("jobs", NS, f"reprocess-{job_id}")
    assert kube_job is not None and kube_job["status"]["failedIndexes"] == "0"


def test_secrets_of_jobs_that_ended_a_day_ago_are_deleted(
    client: TestClient, cluster: FakeKubernetes, tmp_path: Path, pg_url: str
) -> None:
    write_samples(tmp_path / "logs", files=2, lines=100, seed=8)
    job_id = client.post(JOBS, json={"path": str(tmp_path / "logs"), "sink": "null:"}).json()["id"]
    assert _finished(client, job_id)["status"] == "completed"
    executor = client.app.state.services.executor  # type: ignore[attr-defined]
    assert executor.clean_secrets() == 0  # ended just now: kept
    assert cluster.get("secrets", NS, f"reprocess-{job_id}-config") is not None

    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE reprocessing_jobs SET completed_at = now() - interval '25 hours' WHERE id = %s",
            (job_id,),
        )
    assert executor.clean_secrets() == 1
    assert cluster.get("secrets", NS, f"reprocess-{job_id}-config") is None
