"""`tailrace reprocess` into Kafka while the broker stops answering for several seconds
mid-job (SIGSTOP, then SIGCONT: a hung host, nothing it held is lost): the job waits it out
and ends `completed` with every event in the topic (consumed back), no dead letter, and
duplicates within the bound."""

from __future__ import annotations

import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tailrace.pipeline.jobs import ReprocessingStatus, ReprocessingStore
from tailrace.pipeline.samples import write_samples
from tests.kafka_broker import TansuBroker

from .reprocess_support import expected_events, start_cli, stop_cli, summary, wait_for_checkpoint
from .support import wait_until

pytestmark = pytest.mark.kafka


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[TansuBroker]:
    started = TansuBroker(tmp_path)
    started.start()
    try:
        yield started
    finally:
        started.thaw()
        started.kill()


@pytest.mark.slow
def test_broker_hung_mid_job_is_waited_out_and_nothing_is_lost(
    broker: TansuBroker, tmp_path: Path
) -> None:
    topic = f"tailrace-{uuid.uuid4().hex[:12]}"
    broker.create_topic(topic)
    paths = [f.path for f in write_samples(tmp_path / "logs", 2, 150_000, seed=8)]
    want = expected_events(paths)
    url = f"sqlite:///{tmp_path}/t.db"
    args = ["reprocess", str(tmp_path / "logs"), "--json", "--checkpoint-every", "0.2"]
    args += ["--sink", f"kafka://{broker.bootstrap}/{topic}"]
    cli = start_cli(args, url, tmp_path)
    try:
        with ReprocessingStore(url) as store:
            job_id = wait_for_checkpoint(store, running=True)
            broker.freeze()
            # The outage lasts while the job could otherwise go on: a few seconds.
            deadline = time.monotonic() + 6
            wait_until(lambda: time.monotonic() >= deadline, 10, "clock", interval=0.5)
            assert store.job_status(job_id) is ReprocessingStatus.RUNNING, (
                "the job outran the broker"
            )
            broker.thaw()
        stdout, stderr = cli.communicate(timeout=300)
    finally:
        stop_cli(cli)
    assert cli.returncode == 0, stderr
    report = summary(stdout)
    assert report["status"] == "completed" and report["balanced"] is True
    assert report["deadlettered"] == 0
    assert report["sent"] == sum(want.values())
    got = Counter(r.value for r in broker.consume_all(topic, expected=len(want), timeout=90))
    assert set(got) == set(want)
    assert sum(got.values()) == sum(want.values())  # nothing resent: the outage was waited out


@pytest.mark.slow
def test_ctrl_c_ends_a_job_waiting_for_a_hung_broker(broker: TansuBroker, tmp_path: Path) -> None:
    topic = f"tailrace-{uuid.uuid4().hex[:12]}"
    broker.create_topic(topic)
    write_samples(tmp_path / "logs", 2, 150_000, seed=9)
    url = f"sqlite:///{tmp_path}/t.db"
    # checkpoints often: a quiet machine reads a file in ~2 s, and the freeze must come first
    args = ["reprocess", str(tmp_path / "logs"), "--json", "--checkpoint-every", "0.2"]
    args += ["--sink", f"kafka://{broker.bootstrap}/{topic}"]
    cli = start_cli(args, url, tmp_path)
    try:
        with ReprocessingStore(url) as store:
            job_id = wait_for_checkpoint(store, running=True)
            broker.freeze()
            # the workers are inside a flush that cannot end (outage timeout: 300 s)
            wait_until(
                lambda: any("sink unavailable" in p.read_text() for p in _worker_logs(tmp_path)),
                60,
                "no worker said the sink was unavailable",
                interval=0.5,
            )
            cli.send_signal(signal.SIGINT)
            _, stderr = cli.communicate(timeout=60)  # ends, rather than wait for the broker
            assert cli.returncode != 0, stderr
            assert store.job_status(job_id) is not ReprocessingStatus.COMPLETED
    finally:
        stop_cli(cli)


def _worker_logs(cwd: Path) -> list[Path]:
    return [p for p in cwd.rglob("*.log") if p.is_file() and "tansu" not in p.name]
