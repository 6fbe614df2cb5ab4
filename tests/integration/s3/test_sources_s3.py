from __future__ import annotations

import gzip
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from tailrace.pipeline import Event, read_events
from tailrace.pipeline.sources import (
    SourceAccessError,
    SourceError,
    SourceFile,
    SourceNotFoundError,
    open_source,
)
from tailrace.pipeline.sources.s3 import S3Source
from tests.integration.s3.conftest import SECRET_KEY
from tests.services import free_port


def put_many(s3: Any, bucket: str, objects: dict[str, bytes]) -> None:
    def put(item: tuple[str, bytes]) -> None:
        s3.put_object(Bucket=bucket, Key=item[0], Body=item[1])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, objects.items()))


def count_list_requests(source: Any) -> list[int]:
    calls: list[int] = []
    source.client.meta.events.register("after-call.s3.ListObjectsV2", lambda **_: calls.append(1))
    return calls


def test_a_prefix_of_1205_objects_is_listed_across_pages(s3: Any, bucket: str) -> None:
    objects = {f"logs/day-{i % 3}/part-{i:05d}.ndjson": b"x" * (i % 17) for i in range(1205)}
    objects["other/outside.ndjson"] = b"not listed"
    put_many(s3, bucket, objects)

    paged = open_source(f"s3://{bucket}/logs/", page_size=500)
    requests = count_list_requests(paged)
    files = paged.list_files()
    assert len(requests) == 3  # 500 + 500 + 205
    expected = [
        SourceFile(f"s3://{bucket}/{key}", len(body))
        for key, body in sorted(objects.items())
        if key.startswith("logs/")
    ]
    assert files == expected
    assert [file.url for file in files] == sorted(file.url for file in files)

    # S3's own cap is 1,000 keys a page: without a page size, still every object.
    default = open_source(f"s3://{bucket}/logs/")
    requests = count_list_requests(default)
    assert len(default.list_files()) == 1205
    assert len(requests) == 2


def test_nested_folders_are_listed_and_directory_markers_skipped(s3: Any, bucket: str) -> None:
    put_many(
        s3,
        bucket,
        {
            "logs/": b"",
            "logs/2026/": b"",
            "logs/2026/01/a.ndjson": b"12345",
            "logs/2026/02/deep/b.ndjson.gz": b"1234567",
            "logs-old/c.ndjson": b"123",
        },
    )
    files = open_source(f"s3://{bucket}/logs/").list_files()
    assert files == [
        SourceFile(f"s3://{bucket}/logs/2026/01/a.ndjson", 5),
        SourceFile(f"s3://{bucket}/logs/2026/02/deep/b.ndjson.gz", 7),
    ]
    assert files[1].name == "b.ndjson.gz"
    # A bare prefix is a key prefix, as in S3; the whole bucket with none.
    assert len(open_source(f"s3://{bucket}/logs").list_files()) == 3
    assert len(open_source(f"s3://{bucket}").list_files()) == 3


def test_an_empty_prefix_lists_nothing(bucket: str) -> None:
    assert open_source(f"s3://{bucket}/nothing-here/").list_files() == []


def test_open_reads_the_whole_object_or_a_range(s3: Any, bucket: str) -> None:
    body = bytes(range(256)) * 40
    s3.put_object(Bucket=bucket, Key="f.bin", Body=body)
    source = open_source(f"s3://{bucket}/f.bin")
    [file] = source.list_files()
    assert file.size == len(body)
    assert file.etag and file.modified  # what ingestion tells versions apart by
    with source.open(file) as stream:
        assert stream.read(10) == body[:10]
        assert stream.tell() == 10  # progress by stored bytes, as for a local file
        assert stream.read() == body[10:]
    with source.open(file, offset=5000) as stream:
        assert stream.read(7) == body[5000:5007]
        assert stream.tell() == 5007
        assert stream.read() == body[5007:]
    with source.open(file, offset=len(body)) as stream:
        assert stream.read() == b""


def test_an_empty_object_opens_empty(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="empty.ndjson", Body=b"")
    source = open_source(f"s3://{bucket}/empty.ndjson")
    [file] = source.list_files()
    assert file.size == 0
    assert source.open(file).read() == b""


def test_a_gzip_object_reads_end_to_end_as_events(s3: Any, bucket: str) -> None:
    lines = [
        f'{{"messageId":"m{i}","origin":{{"sourceId":"s{i % 2}"}},'
        f'"timestamp":"2026-01-0{1 + i % 5}"}}'
        for i in range(2000)
    ]
    # Two gzip members, as concatenated uploads produce.
    half = len(lines) // 2
    data = gzip.compress("\n".join(lines[:half]).encode() + b"\n") + gzip.compress(
        "\n".join(lines[half:]).encode() + b"\n"
    )
    s3.put_object(Bucket=bucket, Key="logs/events.ndjson.gz", Body=data)
    source = open_source(f"s3://{bucket}/logs/")
    [file] = source.list_files()
    with source.open(file) as stream:
        records = list(read_events(stream, file=file.url))
    assert all(isinstance(record, Event) for record in records)
    events = [record for record in records if isinstance(record, Event)]
    assert [event.message_id for event in events] == [f"m{i}" for i in range(2000)]
    assert events[3].stream_id == "s1"
    assert events[-1].raw == lines[-1].encode()


def test_an_explicit_endpoint_url_wins(
    s3_env: str, bucket: str, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3.put_object(Bucket=bucket, Key="a.ndjson", Body=b"abc")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    source = open_source(f"s3://{bucket}/", endpoint_url=s3_env)
    assert source.list_files() == [SourceFile(f"s3://{bucket}/a.ndjson", 3)]


def test_a_missing_bucket_is_a_clear_error_without_the_secret(s3_env: str) -> None:
    with pytest.raises(SourceNotFoundError) as caught:
        open_source("s3://no-such-bucket-tailrace/logs/").list_files()
    message = str(caught.value)
    assert "no such S3 bucket 'no-such-bucket-tailrace'" in message
    assert s3_env in message
    assert SECRET_KEY not in message
    assert caught.value.location == "s3://no-such-bucket-tailrace/logs/"


def test_opening_a_missing_key_is_a_clear_error(bucket: str) -> None:
    source = open_source(f"s3://{bucket}/")
    url = f"s3://{bucket}/gone.ndjson"
    with pytest.raises(SourceNotFoundError, match=f"cannot open {url}") as caught:
        source.open(SourceFile(url, 10))
    assert "NoSuchKey" in str(caught.value)
    assert SECRET_KEY not in str(caught.value)


def test_an_unreachable_endpoint_is_a_clear_error(s3_env: str) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    source = open_source("s3://bucket/logs/", endpoint_url=endpoint, max_attempts=1)
    with pytest.raises(SourceError, match="cannot connect to the endpoint") as caught:
        source.list_files()
    assert endpoint in str(caught.value)
    assert SECRET_KEY not in str(caught.value)


def test_access_denied_is_an_access_error_without_the_secret() -> None:
    client = boto3.client(
        "s3",
        region_name="us-east-1",
        aws_access_key_id="tailrace-test-key",
        aws_secret_access_key=SECRET_KEY,
        endpoint_url="http://127.0.0.1:9",
    )
    with Stubber(client) as stub:
        stub.add_client_error(
            "list_objects_v2",
            service_error_code="AccessDenied",
            service_message="Access Denied",
            http_status_code=403,
        )
        with pytest.raises(SourceAccessError, match="access denied") as caught:
            S3Source("private", "logs/", client=client).list_files()
    assert "s3://private/logs/" in str(caught.value)
    assert SECRET_KEY not in str(caught.value)
    assert SECRET_KEY not in repr(caught.value)


def test_an_s3_url_carrying_credentials_is_refused_without_echoing_them() -> None:
    with pytest.raises(SourceError) as caught:
        open_source(f"s3://key:{SECRET_KEY}@bucket/logs/")
    assert "must not carry credentials" in str(caught.value)
    assert SECRET_KEY not in str(caught.value)
    assert SECRET_KEY not in caught.value.location


def test_a_prefix_lists_only_log_files_and_says_what_it_skipped(s3: Any, bucket: str) -> None:
    put_many(
        s3,
        bucket,
        {
            "logs/a.ndjson": b"{}\n",
            "logs/b.ndjson.gz": gzip.compress(b"{}\n"),
            "logs/day/c.jsonl.zst": b"",
            "logs/d.ndjson.tmp": b'{"partial":',
            "logs/e.ndjson.rotating": b"{}\n",
            "logs/_SUCCESS": b"",
            "logs/day/_SUCCESS": b"",
            "logs/README.txt": b"not events\n",
        },
    )
    source = open_source(f"s3://{bucket}/logs/")
    assert [f.url.split("/logs/")[1] for f in source.list_files()] == [
        "a.ndjson",
        "b.ndjson.gz",
        "day/c.jsonl.zst",
    ]
    assert isinstance(source, S3Source)
    assert source.skipped.counts == {
        "temporary file": 2,
        "marker file": 2,
        "not a log file (.ndjson, .jsonl, .json, .log, optionally .gz or .zst)": 1,
    }
    widened = open_source(f"s3://{bucket}/logs/", include=("*.txt",), exclude=("day/*",))
    assert [f.name for f in widened.list_files()] == ["README.txt", "a.ndjson", "b.ndjson.gz"]
    # an object named in full is read whatever its name
    (named,) = open_source(f"s3://{bucket}/logs/README.txt").list_files()
    assert named.name == "README.txt"
