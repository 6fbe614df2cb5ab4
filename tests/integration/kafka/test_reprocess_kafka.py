"""`tailrace reprocess` into a real broker (Tansu): what the topic holds, consumed back, is
compared event by event with the files after filtering; a worker killed mid-file and a broker
stopped mid-job lose nothing."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections import Counter
from pathlib import Path

import pytest

from tailrace.pipeline.jobs import ReprocessingStatus, ReprocessingStore
from tailrace.pipeline.samples import write_samples
from tests.e2e.reprocess_support import (
    expected_events,
    run_cli,
    run_killing_a_worker,
    start_cli,
    stop_cli,
    stream_of,
    summary,
    wait_for_checkpoint,
)
from tests.e2e.support import wait_until
from tests.kafka_broker import TansuBroker

pytestmark = pytest.mark.kafka


def _samples(tmp_path: Path, files: int, lines: int, seed: int = 4) -> list[Path]:
    return [f.path for f in write_samples(tmp_path / "logs", files, lines, seed=seed)]


def test_events_arrive_byte_identical_with_key_and_connection_ids(
    kafka_broker: TansuBroker, kafka_topic: str, tmp_path: Path
) -> None:
    paths = _samples(tmp_path, files=3, lines=1_500)
    every = expected_events(paths)
    streams = set(sorted({stream_of(json.loads(line)) or "" for line in every})[:2])
    want = expected_events(paths, stream_ids=streams)
    args = ["reprocess", str(tmp_path / "logs"), "--json"]
    args += ["--sink", f"kafka://{kafka_broker.bootstrap}/{kafka_topic}"]
    args += ["--connection-id", "c1", "--connection-id", "c2"]
    args += [arg for s in sorted(streams) for arg in ("--stream-id", s)]

    result = run_cli(args, f"sqlite:///{tmp_path}/t.db", tmp_path)

    assert result.returncode == 0, result.stderr
    report = summary(result.stdout)
    assert report["sent"] == sum(want.values()) and report["balanced"] is True
    records = kafka_broker.consume_all(kafka_topic, expected=report["sent"])
    assert Counter(r.value for r in records) == want
    for record in records:
        assert record.key == json.loads(record.payload)["messageId"].encode()
        assert record.header("connection_ids") == b"c1,c2"


def _consume_covering(broker: TansuBroker, topic: str, want: Counter[bytes]) -> Counter[bytes]:
    """The topic read back, again until it holds every wanted event or a minute passes:
    Tansu may report a partition's end before the last stored messages are readable."""
    got: Counter[bytes] = Counter()

    def covers() -> bool:
        nonlocal got
        # Not `expected=`: with duplicates the first N messages may miss some events.
        got = Counter(r.payload for r in broker.consume_all(topic, timeout=30, quiet=1.0))
        return set(got) >= set(want)

    with contextlib.suppress(AssertionError):
        wait_until(covers, 60, "the topic never held every event", interval=0.5)
    return got


@pytest.mark.slow
def test_sigkill_mid_file_delivers_every_event_at_least_once(
    kafka_broker: TansuBroker, kafka_topic: str, tmp_path: Path
) -> None:
    paths = _samples(tmp_path, files=2, lines=150_000)
    want = expected_events(paths)
    url = f"sqlite:///{tmp_path}/t.db"
    sink = f"kafka://{kafka_broker.bootstrap}/{kafka_topic}"
    args = ["reprocess", str(tmp_path / "logs"), "--sink", sink, "--json"]
    result = run_killing_a_worker([*args, "--checkpoint-every", "0.2"], url, tmp_path)
    assert result.returncode == 0, result.stderr
    report = summary(result.stdout)
    assert report["sent"] == sum(want.values()) and report["balanced"] is True
    got = _consume_covering(kafka_broker, kafka_topic, want)
    assert set(got) == set(want)  # nothing lost
    duplicates = sum(got.values()) - sum(want.values())
    # at most what was sent after the last checkpoint: one interval (0.2 s) of events
    assert 0 <= duplicates < 60_000


@pytest.mark.slow
def test_broker_stopped_mid_job_then_started_loses_nothing(
    durable_kafka_broker: TansuBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tansu 0.6 restarted answers a batch resent by an idempotent producer with "duplicate
    # sequence" without having stored it (~one batch lost in 2 of 3 runs here, none in runs
    # without idempotence): the broker's bug, so this test runs the producer without it.
    monkeypatch.setenv("KAFKA_ENABLE_IDEMPOTENCE", "false")
    broker = durable_kafka_broker
    topic = f"tailrace-{uuid.uuid4().hex[:12]}"
    broker.create_topic(topic)
    paths = _samples(tmp_path, files=2, lines=80_000, seed=6)
    want = expected_events(paths)
    url = f"sqlite:///{tmp_path}/t.db"
    sink = f"kafka://{broker.bootstrap}/{topic}"
    args = ["reprocess", str(tmp_path / "logs"), "--sink", sink, "--json"]
    cli = start_cli([*args, "--checkpoint-every", "0.2"], url, tmp_path)
    try:
        with ReprocessingStore(url) as store:
            job_id = wait_for_checkpoint(store)
            broker.freeze()  # from here nothing is acknowledged: the job cannot finish
            assert store.job_status(job_id) is ReprocessingStatus.RUNNING, (
                "the job outran the broker"
            )
            stalled_at = sum(f.counters.sent for f in store.files(job_id))
            broker.kill()  # down, mid-job, with batches in flight
            broker.start()
        stdout, stderr = cli.communicate(timeout=240)
    finally:
        stop_cli(cli)
    assert cli.returncode == 0, stderr
    report = summary(stdout)
    assert report["status"] == "completed"
    assert report["sent"] == sum(want.values()) > stalled_at
    got = _consume_covering(broker, topic, want)
    missing = set(want) - set(got)
    assert not missing, f"{len(missing)} of {len(want)} events never reached the topic"
