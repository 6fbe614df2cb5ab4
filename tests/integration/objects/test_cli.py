"""``tailrace objects``: the commands run in-process through click's runner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner

from tailrace.cli.objects import objects
from tailrace.db import migrate
from tailrace.objects import ChunkMissingError, UploadStatus, UploadStore
from tests.integration.objects.conftest import keys, read


def run(database_url: str, *args: str) -> Any:
    return CliRunner().invoke(objects, list(args), obj={"database_url": database_url, "app": None})


def test_compose_command(s3: Any, bucket: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/t.db"
    for i in range(2):
        s3.put_object(Bucket=bucket, Key=f"c/{i}", Body=b"ab"[i : i + 1] * 3)
    result = run(url, "compose", bucket, "out", "c/0", "c/1", "--verify", "sha256")
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.output)["size"] == 6
    assert read(s3, bucket, "out") == b"aaabbb"
    assert keys(s3, bucket, "c/") == []


def test_compose_command_with_a_missing_chunk(s3: Any, bucket: str, tmp_path: Path) -> None:
    s3.put_object(Bucket=bucket, Key="c/0", Body=b"a")
    result = run(f"sqlite:///{tmp_path}/t.db", "compose", bucket, "out", "c/0", "c/1")
    assert isinstance(result.exception, ChunkMissingError)  # the root command prints it
    assert keys(s3, bucket) == ["c/0"]


def test_enqueue_and_retention_commands(s3: Any, bucket: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/t.db"
    enqueued = run(url, "compose", bucket, "out", "c/0", "--enqueue")
    assert enqueued.exit_code == 0, enqueued.output
    assert orjson.loads(enqueued.output)["job_id"] > 0
    with UploadStore(url) as store:
        store.begin("u", bucket, "chunks/u/")
    s3.put_object(Bucket=bucket, Key="chunks/u/0", Body=b"a")
    result = run(url, "retention", "--max-age-hours", "0")
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.output) == {"uploads": 1, "objects": 1, "bytes": 1, "errors": 0}
    with UploadStore(url) as store:
        assert store.get("u").status is UploadStatus.FAILED  # type: ignore[union-attr]


def test_retention_takes_the_upload_collectors_settings(
    s3: Any, bucket: str, tmp_path: Path, moto_endpoint: str
) -> None:
    """GC_RETENTION_HOURS, GC_BATCH_SIZE and MinIO's settings, as their collector had them."""
    url = f"sqlite:///{tmp_path}/t.db"
    migrate(url)  # as a deployment's worker or `tailrace db migrate` did before
    with UploadStore(url) as store:
        for name in ("a", "b", "c"):
            store.begin(name, bucket, f"chunks/{name}/")
            s3.put_object(Bucket=bucket, Key=f"chunks/{name}/0", Body=b"a")
    env = {
        "AWS_ENDPOINT_URL": None,  # MinIO's settings only
        "MINIO_ENDPOINT": moto_endpoint.removeprefix("http://"),
        "MINIO_ACCESS_KEY": "minioadmin",
        "MINIO_SECRET_KEY": "minioadmin",
        "GC_RETENTION_HOURS": "0",
        "GC_BATCH_SIZE": "1",
    }
    result = CliRunner().invoke(
        objects, ["retention"], obj={"database_url": url, "app": None}, env=env
    )
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.output) == {"uploads": 3, "objects": 3, "bytes": 3, "errors": 0}
    assert keys(s3, bucket, "chunks/") == []
