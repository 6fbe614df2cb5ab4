"""``tailrace objects``: compose uploaded chunks into one object, and sweep abandoned uploads."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Any

import click

from ..db import migrate
from ..objects import COMPOSE_TASK, RETENTION_TASK, UploadStore, compose, s3_client, sweep
from ..objects.merge_requests import client_from_env
from ..objects.retention import DEFAULT_BATCH
from ..objects.tasks import compose_upload
from ..settings import database_url
from .context import COMMAND, app_from, echo_json

_endpoint = click.option(
    "--s3-endpoint-url", envvar="AWS_ENDPOINT_URL", help="For MinIO, moto and other S3 stores."
)
_enqueue = click.option(
    "--enqueue",
    is_flag=True,
    help="Enqueue an engine job (a worker runs it) instead of running now.",
)


@click.group()
def objects() -> None:
    """Object jobs on the S3 API."""


@objects.command("compose")
@click.argument("bucket")
@click.argument("target")
@click.argument("chunks", nargs=-1, required=True)
@click.option("--upload-id", help="The upload record to mark completed (see UploadStore).")
@click.option(
    "--verify",
    type=click.Choice(["etag", "sha256", "size"]),
    default="etag",
    show_default=True,
    help="etag: part and object ETags, no read-back; sha256: stream the result back.",
)
@click.option("--sha256", "expected_sha256", help="The SHA-256 the result must have.")
@click.option(
    "--presign", "presign_expires_s", type=int, help="Print a GET URL valid this long (s)."
)
@click.option("--keep-chunks", is_flag=True, help="Do not delete the chunks afterwards.")
@_endpoint
@_enqueue
@click.pass_context
def compose_command(
    ctx: click.Context,
    bucket: str,
    target: str,
    chunks: tuple[str, ...],
    upload_id: str | None,
    verify: str,
    expected_sha256: str | None,
    presign_expires_s: int | None,
    keep_chunks: bool,
    s3_endpoint_url: str | None,
    enqueue: bool,
) -> None:
    """Write the objects CHUNKS of BUCKET, in order, as one object TARGET, verify it, then
    delete the chunks. A missing chunk fails before anything is written or deleted."""
    options: dict[str, Any] = {
        "verify": verify,
        "expected_sha256": expected_sha256,
        "presign_expires_s": presign_expires_s,
    }
    if enqueue:
        args = {"bucket": bucket, "chunks": list(chunks), "target": target, **options}
        args |= {"upload_id": upload_id, "delete_chunks": not keep_chunks}
        echo_json({"job_id": app_from(ctx).enqueue(COMPOSE_TASK, args)})
        return
    client = _client(s3_endpoint_url)
    if upload_id is None:
        result = compose(
            client, bucket, list(chunks), target, delete_chunks=not keep_chunks, **options
        )
    else:
        with _uploads(ctx) as store:
            result = compose_upload(
                client, store, upload_id, bucket, list(chunks), target, not keep_chunks, options
            )
    echo_json(asdict(result))


@objects.command("retention")
@click.option(
    "--max-age-hours",
    envvar="GC_RETENTION_HOURS",
    default=24.0,
    show_default=True,
    help="Age of an abandoned upload (GC_RETENTION_HOURS).",
)
@click.option(
    "--batch",
    envvar="GC_BATCH_SIZE",
    default=DEFAULT_BATCH,
    show_default=True,
    help="Upload records per query (GC_BATCH_SIZE).",
)
@_endpoint
@_enqueue
@click.pass_context
def retention_command(
    ctx: click.Context, max_age_hours: float, batch: int, s3_endpoint_url: str | None, enqueue: bool
) -> None:
    """Delete the chunks of uploads left uploading longer than the max age; mark them failed."""
    if enqueue:
        args = {"max_age_s": max_age_hours * 3600, "batch": batch}
        echo_json({"job_id": app_from(ctx).enqueue(RETENTION_TASK, args)})
        return
    with _uploads(ctx) as store:
        report = sweep(
            _client(s3_endpoint_url),
            store,
            max_age=timedelta(hours=max_age_hours),
            batch_size=batch,
        )
    echo_json(asdict(report))


def _client(endpoint_url: str | None) -> Any:
    """On `endpoint_url`, else on MinIO's settings (``MINIO_ENDPOINT``…), else boto3's."""
    return s3_client(endpoint_url) if endpoint_url else client_from_env()


def _uploads(ctx: click.Context) -> UploadStore:
    """The upload records, in a database brought up to date first (as a worker would)."""
    obj = ctx.find_root().obj or {}
    url = database_url(obj.get("database_url"))
    migrate(url, COMMAND)
    return UploadStore(url)
