"""Coming from the Kafka workers: their file-merge worker as `tailrace consume` with the
built-in handler, on moto's S3 server and a Tansu broker, run as the real CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from tests.integration.objects.conftest import keys
from tests.kafka_broker import TansuBroker

pytestmark = pytest.mark.kafka
SRC = Path(__file__).resolve().parents[3] / "src"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    with TansuBroker(tmp_path_factory.mktemp("tansu")) as started:
        yield started


def put_chunks(s3: Any, bucket: str, upload_id: str, parts: list[bytes]) -> None:
    # Where their API put an upload's chunks: chunks/<upload id>/chunk-<5-digit number>.
    for number, data in enumerate(parts, start=1):
        s3.put_object(Bucket=bucket, Key=f"chunks/{upload_id}/chunk-{number:05d}", Body=data)


def request(broker: TansuBroker, topic: str, *events: dict[str, Any]) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for event in events:
        producer.produce(topic, orjson.dumps(event), str(event["upload_id"]))
    assert producer.flush(10) == 0


def test_merge_requests_compose_and_emit_a_presigned_url_without_user_code(
    broker: TansuBroker, s3: Any, bucket: str, moto_endpoint: str, tmp_path: Path
) -> None:
    topic = f"file_merge_requests_{uuid.uuid4().hex[:6]}"
    completed = f"file_upload_completed_{uuid.uuid4().hex[:6]}"
    broker.create_topic(topic)
    broker.create_topic(completed)
    upload, short = str(uuid.uuid4()), str(uuid.uuid4())
    parts = [os.urandom(6 * 1024 * 1024), os.urandom(5 * 1024 * 1024), b"tail bytes"]
    put_chunks(s3, bucket, upload, parts)
    put_chunks(s3, bucket, short, [b"only one of two"])
    target = f"files/{upload}/video.mp4"
    base = {"filename": "video.mp4", "conversation_id": 123}
    request(
        broker,
        topic,
        {"upload_id": upload, "total_chunks": 3, "storage_key": target, **base},
        {"upload_id": short, "total_chunks": 2, **base},
        # delivered again after the merge: the message again, from the stored object
        {"upload_id": upload, "total_chunks": 3, "storage_key": target, **base},
    )
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "KAFKA_CONSUMER_GROUP": "file-merge-worker-group",
        # their MinIO settings, as the worker's deployment has them
        "MINIO_ENDPOINT": moto_endpoint.removeprefix("http://"),
        "MINIO_ACCESS_KEY": "minioadmin",
        "MINIO_SECRET_KEY": "minioadmin",
        "MINIO_BUCKET": bucket,
        "TAILRACE_MERGE_TOPIC": completed,
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    command = [sys.executable, "-m", "tailrace", "consume", topic]
    command += ["--handler", "tailrace.objects:merge_requests", "--dedup-store", "none"]
    command += ["--partitions", "0", "--attempts", "2", "--backoff", "0.05"]
    with (tmp_path / "consume.log").open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        (first, repeat) = broker.consume_all(completed, expected=2, timeout=60)
        (dead,) = broker.consume_all(f"{topic}_dlq", expected=1, timeout=30)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, (tmp_path / "consume.log").read_text()

    event = orjson.loads(first.value or b"")
    assert first.key == upload.encode()
    assert event["upload_id"] == upload and event["conversation_id"] == 123
    assert event["storage_key"] == target and event["size_bytes"] == sum(map(len, parts))
    with urllib.request.urlopen(event["download_url"], timeout=30) as answer:
        assert answer.read() == b"".join(parts)
    assert keys(s3, bucket, f"chunks/{upload}/") == []  # the chunks went after the merge
    assert orjson.loads(repeat.value or b"")["etag"] == event["etag"]

    # Fewer chunks than announced: nothing merged or deleted, the request dead-lettered.
    assert orjson.loads(dead.value or b"")["upload_id"] == short
    assert keys(s3, bucket, f"chunks/{short}/") == [f"chunks/{short}/chunk-00001"]
    assert keys(s3, bucket, f"files/{short}/") == []
