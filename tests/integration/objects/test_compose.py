"""Compose against moto's S3 server: real multipart uploads, real 5 MiB part minimum."""

from __future__ import annotations

import hashlib
import random
import urllib.request
from typing import Any

import pytest

from tailrace.objects import (
    MIN_PART,
    ChunkMissingError,
    ComposeError,
    VerificationError,
    compose,
)
from tailrace.objects import metrics as object_metrics
from tests.integration.objects.conftest import keys, read

MiB = 1024 * 1024
# small runs before, between and after chunks large enough to copy; one empty chunk
SIZES = [1000, 6 * MiB + 17, 0, 300, 2 * MiB, 5 * MiB + 5, 123]


def put_chunks(
    s3: Any, bucket: str, sizes: list[int], prefix: str = "up/1/"
) -> tuple[list[str], bytes]:
    rng = random.Random(6)
    chunks, data = [], b""
    for i, size in enumerate(sizes):
        body = rng.randbytes(size)
        key = f"{prefix}{i:05d}"
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        chunks.append(key)
        data += body
    return chunks, data


def uploads_in_progress(s3: Any, bucket: str) -> list[Any]:
    return list(s3.list_multipart_uploads(Bucket=bucket).get("Uploads", ()))


def test_compose_mixes_copied_and_uploaded_parts(s3: Any, bucket: str) -> None:
    chunks, expected = put_chunks(s3, bucket, SIZES)
    before = object_metrics.COMPOSED_BYTES._value.get()

    result = compose(s3, bucket, chunks, "files/out.bin")

    assert read(s3, bucket, "files/out.bin") == expected
    assert result.size == len(expected)
    assert result.etag == s3.head_object(Bucket=bucket, Key="files/out.bin")["ETag"].strip('"')
    # 1000 B + the first 5 MiB - 1000 B of the 6 MiB chunk; its rest + 300 B + 2 MiB + part
    # of the next; the rest of that is too small to copy alone, so it joins the tail
    assert result.parts == 3
    assert result.deleted == len(chunks)
    assert keys(s3, bucket, "up/") == []
    assert object_metrics.COMPOSED_BYTES._value.get() - before == len(expected)


def test_compose_copies_large_chunks_server_side(s3: Any, bucket: str) -> None:
    chunks, expected = put_chunks(s3, bucket, [MIN_PART, MIN_PART + 1, 10])
    result = compose(s3, bucket, chunks, "out")
    assert result.parts == 3  # each chunk a part of its own: nothing was downloaded
    assert read(s3, bucket, "out") == expected


def test_sha256_verification_reads_the_result_back(s3: Any, bucket: str) -> None:
    chunks, expected = put_chunks(s3, bucket, [300, 6 * MiB, 40])
    digest = hashlib.sha256(expected).hexdigest()
    result = compose(s3, bucket, chunks, "out", expected_sha256=digest.upper())
    assert result.sha256 == digest
    assert read(s3, bucket, "out") == expected


def test_a_wrong_checksum_deletes_the_result_and_keeps_the_chunks(s3: Any, bucket: str) -> None:
    chunks, _ = put_chunks(s3, bucket, [10, 20])
    with pytest.raises(VerificationError, match="SHA-256"):
        compose(s3, bucket, chunks, "out", expected_sha256="0" * 64)
    assert keys(s3, bucket) == chunks


def test_a_missing_chunk_fails_by_name_and_deletes_nothing(s3: Any, bucket: str) -> None:
    chunks, _ = put_chunks(s3, bucket, [10, 6 * MiB, 20])
    gone = ["up/1/00001", "up/1/00003"]
    s3.delete_object(Bucket=bucket, Key=gone[0])

    with pytest.raises(ChunkMissingError) as raised:
        compose(s3, bucket, [*chunks[:2], gone[1], chunks[2]], "out")

    assert raised.value.key == gone[0]
    assert str(raised.value) == (
        f"chunk s3://{bucket}/{gone[0]} does not exist (and 1 more); nothing was deleted"
    )
    assert keys(s3, bucket) == [chunks[0], chunks[2]]
    assert uploads_in_progress(s3, bucket) == []


class ChangesAChunk:
    """A client that deletes or overwrites a chunk just before the first part copy, as
    another writer could between compose's HEAD and its copy."""

    def __init__(self, client: Any, bucket: str, key: str, *, replace: bool) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._replace = replace

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def upload_part_copy(self, **request: Any) -> Any:
        if self._replace:
            self._client.put_object(Bucket=self._bucket, Key=self._key, Body=b"x" * 6 * MiB)
            # as a store that ignores the precondition (moto does): the ETag check must catch it
            request.pop("CopySourceIfMatch")
        else:
            self._client.delete_object(Bucket=self._bucket, Key=self._key)
        return self._client.upload_part_copy(**request)


def test_a_failed_upload_is_aborted_and_nothing_deleted(s3: Any, bucket: str) -> None:
    chunks, _ = put_chunks(s3, bucket, [6 * MiB, 10])
    client = ChangesAChunk(s3, bucket, chunks[0], replace=False)

    with pytest.raises(ComposeError, match=r"out failed \(\w+\); aborted"):
        compose(client, bucket, chunks, "out", concurrency=1)

    assert uploads_in_progress(s3, bucket) == []
    assert keys(s3, bucket) == chunks[1:]


def test_a_chunk_replaced_mid_compose_fails_verification(s3: Any, bucket: str) -> None:
    chunks, _ = put_chunks(s3, bucket, [6 * MiB, 10])
    client = ChangesAChunk(s3, bucket, chunks[0], replace=True)

    with pytest.raises(VerificationError, match="not a copy of up/1/00000"):
        compose(client, bucket, chunks, "out", concurrency=1)

    assert uploads_in_progress(s3, bucket) == []
    assert keys(s3, bucket) == chunks


def test_presigned_url_and_kept_chunks(s3: Any, bucket: str) -> None:
    chunks, expected = put_chunks(s3, bucket, [5, 6])
    result = compose(s3, bucket, chunks, "out", delete_chunks=False, presign_expires_s=60)
    assert result.url is not None
    with urllib.request.urlopen(result.url, timeout=10) as response:
        assert response.read() == expected
    assert keys(s3, bucket, "up/") == chunks


def test_empty_chunks_make_an_empty_object(s3: Any, bucket: str) -> None:
    chunks, _ = put_chunks(s3, bucket, [0, 0])
    assert compose(s3, bucket, chunks, "out").size == 0
    assert read(s3, bucket, "out") == b""
