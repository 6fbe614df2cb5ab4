"""docs/coming-from/failover-reprocessing.md, the start request's rows: Jitsu's own fields
(local_path, files, start_file, start_line, limit, dry_run, retry_attempts,
max_concurrency) are honoured, and the reply and worker rows are there from the start; real
worker processes on a real PostgreSQL schema, outputs read back and compared with the input."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tailrace.pipeline.samples import SampleFile, write_samples
from tests.e2e.reprocess_support import expected_events, output_lines
from tests.waiting import wait_until

pytestmark = pytest.mark.postgres

JOBS = "/api/admin/reprocessing/jobs"


@pytest.fixture
def clean(api_env: Path) -> list[SampleFile]:
    """Five files without bad lines, some gzipped, sorted as the listing sorts them."""
    files = write_samples(api_env / "logs", files=5, lines=400, seed=11)
    return sorted(files, key=lambda s: str(s.path))


def _start(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    answer = client.post(JOBS, json=body)
    assert answer.status_code == 201, answer.text
    job: dict[str, Any] = answer.json()
    return job


def _finished(client: TestClient, job_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job: dict[str, Any] = client.get(f"{JOBS}/{job_id}").json()
        return job if job["status"] in ("completed", "failed", "cancelled") else None

    return wait_until(done, 90, f"job {job_id} to finish")


def _lines(path: Path) -> list[bytes]:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return data.split(b"\n")


def _events(lines: list[bytes]) -> Counter[bytes]:
    found: Counter[bytes] = Counter()
    for line in lines:
        if line.strip():
            assert isinstance(json.loads(line), dict)
            found[line] += 1
    return found


def test_start_reply_and_worker_rows_exist_from_the_start(
    client: TestClient, clean: list[SampleFile], api_env: Path
) -> None:
    job = _start(client, {"local_path": str(api_env / "logs"), "sink": "null:", "max_workers": 3})
    assert job["total_workers"] >= 1 and job["total_files"] == 5
    assert "k8s_job_name" in job  # null on the local executor, set on Kubernetes
    workers = client.get(f"{JOBS}/{job['id']}/workers").json()["workers"]
    # never [] for a started job: one row per planned worker, with its share of the files
    assert [w["worker_index"] for w in workers] == list(range(job["total_workers"]))
    assert sum(w["assigned_files"] for w in workers) == 5
    assert all(w["status"] in ("pending", "running", "completed") for w in workers)
    done = _finished(client, job["id"])
    assert done["status"] == "completed"
    workers = client.get(f"{JOBS}/{job['id']}/workers").json()["workers"]
    assert not [w for w in workers if w["status"] == "running"]


def test_start_file_and_start_line_skip_what_comes_before(
    client: TestClient, clean: list[SampleFile], api_env: Path
) -> None:
    first = clean[2]
    out = api_env / "out.ndjson"
    job = _start(
        client,
        {
            "local_path": str(api_env / "logs"),
            "sink": out.as_uri(),
            "start_file": first.path.name,
            "start_line": 150,
        },
    )
    assert job["total_files"] == 3  # the two files before start_file are not read
    done = _finished(client, job["id"])
    assert done["status"] == "completed", done
    want = expected_events([s.path for s in clean[3:]])
    want.update(_events(_lines(first.path)[150:]))
    assert output_lines(out) == want
    assert done["skip_reasons"] == {"before start_line": 150}
    assert done["total_lines"] == sum(s.lines for s in clean[2:])
    assert done["balanced"]


def test_an_unknown_start_file_is_refused_saying_so(
    client: TestClient, clean: list[SampleFile], api_env: Path
) -> None:
    answer = client.post(
        JOBS, json={"local_path": str(api_env / "logs"), "start_file": "nope.ndjson"}
    )
    assert answer.status_code == 422
    assert "start_file 'nope.ndjson' is not among the 5 files" in answer.json()["error"]["message"]


def test_dry_run_counts_everything_and_sends_nothing(
    client: TestClient, clean: list[SampleFile], api_env: Path
) -> None:
    out = api_env / "would-be.ndjson"
    job = _start(
        client, {"local_path": str(api_env / "logs"), "sink": out.as_uri(), "dry_run": True}
    )
    assert job["config"]["dry_run"] is True and job["config"]["sink"] == "null:"
    done = _finished(client, job["id"])
    assert done["status"] == "completed"
    assert done["success_count"] == sum(s.lines for s in clean)  # what would have been sent
    assert not out.exists()


def test_limit_sends_exactly_that_many_and_counts_the_rest(
    client: TestClient, clean: list[SampleFile], api_env: Path
) -> None:
    out = api_env / "out.ndjson"
    job = _start(
        client,
        {"local_path": str(api_env / "logs"), "sink": out.as_uri(), "limit": 250, "max_workers": 5},
    )
    assert job["total_workers"] == 1  # one worker counts the limit exactly
    done = _finished(client, job["id"])
    total = sum(s.lines for s in clean)
    sent = output_lines(out)
    assert sum(sent.values()) == 250 == done["success_count"]
    assert sent <= expected_events([s.path for s in clean])
    assert done["skip_reasons"] == {"limit reached": total - 250}
    assert done["balanced"]


def test_files_names_exactly_the_files_to_read(
    client: TestClient, clean: list[SampleFile], api_env: Path
) -> None:
    out = api_env / "out.ndjson"
    chosen = [clean[4], clean[1]]
    job = _start(
        client,
        {
            "files": [str(chosen[0].path), {"path": str(chosen[1].path), "size": chosen[1].size}],
            "sink": out.as_uri(),
            "max_concurrency": 1,
        },
    )
    assert job["total_files"] == 2 and job["config"]["max_workers"] == 1
    assert _finished(client, job["id"])["status"] == "completed"
    assert output_lines(out) == expected_events([s.path for s in chosen])


def test_retry_attempts_sets_each_files_attempts(
    client: TestClient, clean: list[SampleFile], api_env: Path
) -> None:
    job = _start(client, {"local_path": str(api_env / "logs"), "retry_attempts": 2})
    tasks = client.get("/api/admin/jobs", params={"queue": f"reprocess:{job['id']}"}).json()
    assert {t["max_attempts"] for t in tasks["jobs"]} == {2}
    assert len(tasks["jobs"]) == 5
    _finished(client, job["id"])


def test_path_and_local_path_together_are_refused(client: TestClient, api_env: Path) -> None:
    answer = client.post(JOBS, json={"path": str(api_env), "local_path": str(api_env)})
    assert answer.status_code == 422
    assert "not both" in answer.json()["error"]["message"]
