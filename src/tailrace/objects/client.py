"""The boto3 S3 client the object jobs use.

Credentials and region come from boto3's standard chain; ``endpoint_url``, else
``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``, points it at MinIO, moto or another
S3-compatible store.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from ..settings import current

MAX_ATTEMPTS = 5


def s3_client(
    endpoint_url: str | None = None,
    region_name: str | None = None,
    *,
    access_key: str | None = None,
    secret_key: str | None = None,
) -> Any:
    """A client on `endpoint_url` (else the environment's); keys given here win over
    boto3's chain (MinIO's ``MINIO_ACCESS_KEY``, say)."""
    custom = endpoint_url or current().s3_endpoint_url
    # S3-compatible stores serve buckets as paths (MinIO needs MINIO_DOMAIN for host names).
    config = Config(
        retries={"max_attempts": MAX_ATTEMPTS, "mode": "adaptive"},
        s3={"addressing_style": "path"} if custom else {},
        connect_timeout=10,
        read_timeout=60,
    )
    keys = {}
    if access_key and secret_key:
        keys = {"aws_access_key_id": access_key, "aws_secret_access_key": secret_key}
    return boto3.session.Session().client(
        "s3", endpoint_url=custom, region_name=region_name, config=config, **keys
    )


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_not_found(exc: ClientError) -> bool:
    return error_code(exc) in ("404", "NoSuchKey", "NotFound")
