"""SIGKILL of `tailrace reprocess` workers writing to Kafka, at random points, several times
in one job: the topic, consumed back, holds every event (lost = 0), and the duplicates per
kill stay within the bound the docs state: what a worker wrote since its last checkpoint,
i.e. one checkpoint interval of events, at most the sink's unacknowledged window."""

from __future__ import annotations

import os
import random
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tailrace.kafka_client import QUEUE_WINDOW
from tailrace.pipeline.jobs import ReprocessingStatus, ReprocessingStore
from tailrace.pipeline.samples import write_samples
from tests.kafka_broker import TansuBroker

from .reprocess_support import (
    expected_events,
    start_cli,
    stop_cli,
    summary,
    wait_for_checkpoint,
    worker_pids,
)
from .support import wait_until

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    with TansuBroker(tmp_path_factory.mktemp("tansu")) as started:
        yield started


def _consume_covering(broker: TansuBroker, topic: str, want: Counter[bytes]) -> Counter[bytes]:
    """The topic read back, again until it holds every wanted event or a minute passes
    (Tansu may report a partition's end before its last messages are readable)."""
    got: Counter[bytes] = Counter()

    def covers() -> bool:
        nonlocal got
        got = Counter(r.payload for r in broker.consume_all(topic, timeout=60, quiet=1.0))
        return set(got) >= set(want)

    try:
        wait_until(covers, 90, "the topic never held every event", interval=0.5)
    except AssertionError:
        pass
    return got


def kill_workers_repeatedly(
    broker: TansuBroker,
    tmp_path: Path,
    *,
    kills: int,
    checkpoint_s: float,
    seed: int,
    lines: int = 150_000,
    files: int = 8,
) -> tuple[dict[str, object], Counter[bytes], Counter[bytes], int]:
    """Run a job and SIGKILL a worker `kills` times, each at a random instant after a
    checkpoint of a running file; returns the summary, the wanted events, what the topic
    holds and how many kills landed."""
    rng = random.Random(seed)
    topic = f"tailrace-{uuid.uuid4().hex[:12]}"
    broker.create_topic(topic)
    paths = [f.path for f in write_samples(tmp_path / "logs", files, lines, seed=seed)]
    want = expected_events(paths)
    url = f"sqlite:///{tmp_path}/t.db"
    args = ["reprocess", str(tmp_path / "logs"), "--json", "--workers", "1"]
    args += ["--sink", f"kafka://{broker.bootstrap}/{topic}"]
    args += ["--checkpoint-every", str(checkpoint_s)]
    cli = start_cli(args, url, tmp_path)
    landed = 0
    try:
        with ReprocessingStore(url) as store:
            job_id = wait_for_checkpoint(store, running=True)
            for _ in range(kills):
                # a fresh worker past its first checkpoint, then a random instant
                before = {f.index: f.line for f in store.files(job_id)}
                try:
                    wait_until(
                        lambda before=before: any(
                            f.status is ReprocessingStatus.RUNNING and f.line > before[f.index]
                            for f in store.files(job_id)
                        ),
                        120,
                        "no checkpoint after the last kill",
                    )
                except AssertionError:
                    break  # the job finished first
                time.sleep(rng.uniform(0, 3 * checkpoint_s))  # where to kill: at random
                pids = worker_pids(tmp_path)
                if not pids or store.job_status(job_id).finished:
                    break
                os.kill(pids[0], signal.SIGKILL)
                landed += 1
        stdout, stderr = cli.communicate(timeout=400)
    finally:
        stop_cli(cli)
    assert cli.returncode == 0, stderr
    got = _consume_covering(broker, topic, want)
    return summary(stdout), want, got, landed


@pytest.mark.slow
def test_duplicates_per_kill_follow_the_checkpoint_interval(
    broker: TansuBroker, tmp_path: Path
) -> None:
    # one interval here (the suite's time); the cadence itself is checked line by line in
    # tests/integration/kafka/test_kafka_file_run.py
    checkpoint_s = 0.2
    report, want, got, kills = kill_workers_repeatedly(
        broker, tmp_path, kills=3, checkpoint_s=checkpoint_s, seed=11, lines=150_000, files=4
    )
    assert kills >= 2, "the job finished before the kills"
    assert report["status"] == "completed" and report["balanced"] is True
    assert report["sent"] == sum(want.values()) and report["deadlettered"] == 0
    lost = set(want) - set(got)
    assert not lost, f"{len(lost)} events never reached the topic"
    duplicates = sum(got.values()) - sum(want.values())
    # The stated bound, per kill: what the broker acknowledges in one checkpoint interval
    # plus the producer's window (the reader's lead over the acknowledgements). The rate is
    # this run's own (twice it: the rate varies over a run on a shared machine).
    rate = float(report["work_events_per_second"])  # type: ignore[arg-type]
    bound = 2 * rate * checkpoint_s + QUEUE_WINDOW + 2 * 1_000  # + a look at the clock
    assert 0 <= duplicates <= kills * bound, (duplicates, kills, rate)
