"""Compose: merge uploaded chunks into one object server-side, verify it, then delete them.

Verification never reads the result back by default (``verify="etag"``): S3 gives a multipart
object the ETag ``md5(part md5s…)-N``, and each part's ETag is the MD5 of its bytes. We know
what each part must hold (a whole chunk's own MD5 ETag for a copied part, the MD5 we computed
for an uploaded one), so checking every part's ETag and then the object's size and composite
ETag proves the object is those chunks in that order, in one HEAD. Stores whose ETags are not
MD5s (SSE-KMS, SSE-C) need ``verify="sha256"``: the result is streamed back and hashed, and
compared with ``expected_sha256`` when the uploader gave one; ``"size"`` checks the size only.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import closing
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from . import metrics
from .client import error_code, is_not_found
from .errors import ChunkMissingError, ComposeError, ObjectJobError, VerificationError
from .plan import MAX_PARTS, MIN_PART, Chunk, Part, plan_parts

log = logging.getLogger("tailrace.objects.compose")

Verify = Literal["etag", "sha256", "size"]
DELETE_BATCH = 1000  # delete_objects takes at most 1,000 keys
STREAM_BYTES = 1 << 20
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class ComposeResult:
    bucket: str
    key: str
    size: int
    etag: str
    parts: int
    sha256: str | None = None  # with verify="sha256"
    url: str | None = None  # with presign_expires_s
    deleted: int = 0
    leftover: tuple[str, ...] = ()  # chunks whose delete failed (logged; the object is fine)


def compose(
    client: Any,
    bucket: str,
    chunks: Sequence[str],
    target: str,
    *,
    verify: Verify = "etag",
    expected_sha256: str | None = None,
    delete_chunks: bool = True,
    presign_expires_s: int | None = None,
    concurrency: int = 4,
    min_part: int = MIN_PART,
) -> ComposeResult:
    """Write the objects ``chunks`` (keys in ``bucket``, in order) as one object ``target``.

    A missing chunk raises `ChunkMissingError` before anything is written; a failed upload is
    aborted (`ComposeError`); a result that does not verify is deleted (`VerificationError`).
    Chunks are deleted only after the result verified.
    """
    if not chunks:
        raise ObjectJobError(f"nothing to compose into s3://{bucket}/{target}: no chunks")
    if target in chunks:
        raise ObjectJobError(f"s3://{bucket}/{target} is both a chunk and the target")
    if expected_sha256 is not None and verify != "sha256":
        verify = "sha256"  # a checksum to compare against is only useful read back
    with ThreadPoolExecutor(concurrency, thread_name_prefix="tailrace-compose") as pool:
        described = _describe(client, bucket, chunks, pool)
        parts = plan_parts(described, min_part)
        if len(parts) > MAX_PARTS:
            raise ComposeError(
                f"s3://{bucket}/{target} would need {len(parts)} parts (max {MAX_PARTS})"
            )
        etag, part_etags = _write(client, bucket, target, parts, verify == "etag", pool)
    size = sum(c.size for c in described)
    # ETags that are not MD5s (SSE-KMS, SSE-C) can't be checked this way: verify="sha256"
    checkable = verify == "etag" and part_etags and all(map(_is_md5, part_etags))
    composite = expected_etag(part_etags) if checkable else None
    digest = _verify(client, bucket, target, size, etag, composite, verify, expected_sha256)
    metrics.COMPOSED.inc()
    metrics.COMPOSED_BYTES.inc(size)
    deleted, leftover = (0, ()) if not delete_chunks else delete_keys(client, bucket, chunks)
    url = None
    if presign_expires_s:
        url = client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": target}, ExpiresIn=presign_expires_s
        )
    log.info(
        "composed",
        extra={
            "bucket": bucket,
            "key": target,
            "size": size,
            "chunks": len(chunks),
            "parts": len(parts),
            "deleted": deleted,
        },
    )
    return ComposeResult(bucket, target, size, etag, len(parts), digest, url, deleted, leftover)


def _pmap(pool: ThreadPoolExecutor, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``fn`` over ``items`` on ``pool``, in order. When one fails, those not started are
    cancelled and the running ones awaited before raising: a part uploaded after the abort
    would re-create the upload's storage."""
    futures = [pool.submit(fn, item) for item in items]
    try:
        return [f.result() for f in futures]
    except BaseException:
        for f in futures:
            f.cancel()
        wait(futures)
        raise


def _describe(
    client: Any, bucket: str, keys: Sequence[str], pool: ThreadPoolExecutor
) -> list[Chunk]:
    def head(key: str) -> Chunk | None:
        try:
            h = client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise ComposeError(f"HEAD s3://{bucket}/{key}: {error_code(exc)}") from None
        return Chunk(key, int(h["ContentLength"]), str(h["ETag"]).strip('"'))

    found = _pmap(pool, head, keys)
    missing = [key for key, chunk in zip(keys, found, strict=True) if chunk is None]
    if missing:
        metrics.COMPOSE_FAILED.inc()
        raise ChunkMissingError(bucket, missing[0], len(missing))
    return [c for c in found if c is not None]


def _write(
    client: Any,
    bucket: str,
    target: str,
    parts: list[Part],
    check_etags: bool,
    pool: ThreadPoolExecutor,
) -> tuple[str, list[str]]:
    """Upload ``parts`` as ``target``; returns the object's ETag and the parts' (no quotes)."""
    if not parts:  # every chunk empty: a multipart upload needs at least one part
        return str(client.put_object(Bucket=bucket, Key=target, Body=b"")["ETag"]).strip('"'), []
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=target)["UploadId"]
    try:
        etags = _pmap(
            pool, lambda p: _part(client, bucket, target, upload_id, p, check_etags), parts
        )
        done = client.complete_multipart_upload(
            Bucket=bucket,
            Key=target,
            UploadId=upload_id,
            MultipartUpload={
                "Parts": [
                    {"PartNumber": p.number, "ETag": f'"{e}"'}
                    for p, e in zip(parts, etags, strict=True)
                ]
            },
        )
    except BaseException as exc:
        _abort(client, bucket, target, upload_id)
        metrics.COMPOSE_FAILED.inc()
        if isinstance(exc, ClientError | BotoCoreError):
            code = error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
            raise ComposeError(
                f"composing s3://{bucket}/{target} failed ({code}); aborted"
            ) from exc
        raise
    return str(done["ETag"]).strip('"'), etags


def _abort(client: Any, bucket: str, target: str, upload_id: str) -> None:
    try:
        client.abort_multipart_upload(Bucket=bucket, Key=target, UploadId=upload_id)
    except (ClientError, BotoCoreError):
        # a stale upload costs storage until the bucket's lifecycle rule removes it
        log.exception(
            "aborting a multipart upload failed", extra={"key": target, "upload_id": upload_id}
        )


def _part(client: Any, bucket: str, target: str, upload_id: str, part: Part, check: bool) -> str:
    common = {"Bucket": bucket, "Key": target, "UploadId": upload_id, "PartNumber": part.number}
    if part.copy:
        seg = part.segments[0]
        request = {
            **common,
            "CopySource": {"Bucket": bucket, "Key": seg.chunk.key},
            "CopySourceIfMatch": f'"{seg.chunk.etag}"',  # the chunk we described, not a newer one
        }
        if not seg.whole:
            request["CopySourceRange"] = f"bytes={seg.start}-{seg.end - 1}"
        etag = str(client.upload_part_copy(**request)["CopyPartResult"]["ETag"]).strip('"')
        # only a whole chunk uploaded in one piece has its MD5 as ETag to compare with
        if check and seg.whole and _is_md5(seg.chunk.etag) and etag != seg.chunk.etag:
            raise VerificationError(
                f"part {part.number} of {target} is not a copy of {seg.chunk.key}"
            )
        return etag
    data = b"".join(_read(client, bucket, s.chunk, s.start, s.end) for s in part.segments)
    md5 = hashlib.md5(data, usedforsecurity=False)  # S3's ETag is an MD5
    content_md5 = base64.b64encode(md5.digest()).decode()
    etag = str(client.upload_part(**common, Body=data, ContentMD5=content_md5)["ETag"]).strip('"')
    if check and etag != md5.hexdigest():
        raise VerificationError(f"part {part.number} of {target}: ETag {etag} is not its MD5")
    return etag


def _read(client: Any, bucket: str, chunk: Chunk, start: int, end: int) -> bytes:
    response = client.get_object(
        Bucket=bucket, Key=chunk.key, Range=f"bytes={start}-{end - 1}", IfMatch=f'"{chunk.etag}"'
    )
    with closing(response["Body"]) as body:
        data: bytes = body.read()
    if len(data) != end - start:
        raise ComposeError(
            f"read {len(data)} bytes of s3://{bucket}/{chunk.key}, wanted {end - start}"
        )
    return data


def _is_md5(etag: str) -> bool:
    return len(etag) == 32 and all(c in "0123456789abcdef" for c in etag)


def expected_etag(part_etags: Sequence[str]) -> str:
    """The ETag S3 gives a multipart object: MD5 of the parts' binary MD5s, then ``-N``."""
    joined = b"".join(bytes.fromhex(e) for e in part_etags)
    return f"{hashlib.md5(joined, usedforsecurity=False).hexdigest()}-{len(part_etags)}"


def _verify(
    client: Any,
    bucket: str,
    key: str,
    size: int,
    etag: str,
    composite: str | None,
    verify: Verify,
    expected_sha256: str | None,
) -> str | None:
    head = client.head_object(Bucket=bucket, Key=key)
    problem = None
    digest = None
    if int(head["ContentLength"]) != size:
        problem = f"size {head['ContentLength']}, chunks add up to {size}"
    elif str(head["ETag"]).strip('"') != etag:
        problem = f"ETag {head['ETag']} is not the completed upload's {etag}"
    elif composite is not None and etag != composite:
        problem = f"ETag {etag} is not that of its parts, {composite}"
    elif verify == "sha256":
        digest = _sha256(client, bucket, key)
        if expected_sha256 is not None and digest != expected_sha256.lower():
            problem = f"SHA-256 {digest}, expected {expected_sha256}"
    if problem is None:
        return digest
    metrics.COMPOSE_FAILED.inc()
    client.delete_object(Bucket=bucket, Key=key)
    raise VerificationError(
        f"s3://{bucket}/{key} did not verify ({problem}); deleted it, kept the chunks"
    )


def _sha256(client: Any, bucket: str, key: str) -> str:
    digest = hashlib.sha256()
    # closing(), not the body's own `with`: that hands back the raw urllib3 response
    with closing(client.get_object(Bucket=bucket, Key=key)["Body"]) as body:
        for block in body.iter_chunks(STREAM_BYTES):
            digest.update(block)
    return digest.hexdigest()


def delete_keys(client: Any, bucket: str, keys: Iterable[str]) -> tuple[int, tuple[str, ...]]:
    """Delete ``keys`` 1,000 per request; returns how many went and the keys that failed."""
    unique = list(dict.fromkeys(keys))
    deleted = 0
    failed: list[str] = []
    for i in range(0, len(unique), DELETE_BATCH):
        batch = unique[i : i + DELETE_BATCH]
        response = client.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
        )
        errors = [e["Key"] for e in response.get("Errors", ())]
        if errors:
            log.warning(
                "some deletes failed",
                extra={"bucket": bucket, "keys": errors[:10], "count": len(errors)},
            )
        failed.extend(errors)
        deleted += len(batch) - len(errors)
    return deleted, tuple(failed)
