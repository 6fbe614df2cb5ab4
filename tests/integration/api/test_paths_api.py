"""What a job started through the API may read and write: never the service's own data
directory (its token, its job store), whatever the roots; only log files from a directory,
with what was skipped in the job."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.postgres

JOBS = "/api/admin/reprocessing/jobs"


@pytest.fixture
def data_dir(api_env: Path) -> Path:
    data = api_env / ".tailrace"
    data.mkdir(exist_ok=True)
    (data / "api-token").write_text("a-stored-token-0123456789\n")
    (data / "tailrace.db").write_bytes(b"SQLite format 3\x00\n")
    (api_env / "logs").mkdir(exist_ok=True)
    (api_env / "logs" / "a.ndjson").write_bytes(b'{"n": 1}\n')
    return data


@pytest.mark.parametrize(
    "path", [".tailrace/api-token", ".tailrace", ".tailrace/tailrace.db", ".tailrace/*"]
)
def test_the_data_directory_is_never_a_source(
    client: TestClient, data_dir: Path, path: str
) -> None:
    response = client.post(JOBS, json={"path": path, "sink": "null:"})
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "path_not_allowed"
    assert "data directory" in response.json()["error"]["message"]


def test_a_link_to_the_token_is_not_read_either(client: TestClient, data_dir: Path) -> None:
    (data_dir.parent / "logs" / "token.ndjson").symlink_to(data_dir / "api-token")
    response = client.post(JOBS, json={"path": "logs/token.ndjson", "sink": "null:"})
    assert response.status_code == 403, response.text
    assert "data directory" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "sink", ["file:.tailrace/tailrace.db", "file:.tailrace/api-token", "file:.tailrace/x.ndjson"]
)
def test_no_sink_in_the_data_directory(client: TestClient, data_dir: Path, sink: str) -> None:
    before = {p.name: p.read_bytes() for p in data_dir.iterdir()}
    response = client.post(JOBS, json={"path": "logs", "sink": sink})
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "sink_not_allowed"
    assert "data directory" in response.json()["error"]["message"]
    assert {p.name: p.read_bytes() for p in data_dir.iterdir()} == before


def test_a_sink_whose_dead_letters_land_outside_is_refused(
    client: TestClient, data_dir: Path, tmp_path: Path
) -> None:
    out = data_dir.parent / "logs" / "out.ndjson"
    (data_dir.parent / "logs" / "out.deadletter.ndjson").symlink_to(data_dir / "tailrace.db")
    response = client.post(JOBS, json={"path": "logs", "sink": out.as_uri()})
    assert response.status_code == 403, response.text


def test_skipped_files_are_in_the_job(client: TestClient, data_dir: Path) -> None:
    logs = data_dir.parent / "logs"
    for name in ("b.ndjson.tmp", "_SUCCESS", "README.txt", "c.csv"):
        (logs / name).write_bytes(b"{}\n")
    response = client.post(JOBS, json={"path": "logs", "sink": "null:", "include": ["*.csv"]})
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["total_files"] == 2  # a.ndjson and c.csv
    assert job["config"]["include"] == ["*.csv"]
    assert job["skipped_files"] == {
        "temporary file": 1,
        "marker file": 1,
        "not a log file (.ndjson, .jsonl, .json, .log, optionally .gz or .zst)": 1,
    }
    assert job["skipped_file_examples"]["temporary file"] == ["b.ndjson.tmp"]
    again = client.get(f"{JOBS}/{job['id']}").json()
    assert again["skipped_files"] == job["skipped_files"]
