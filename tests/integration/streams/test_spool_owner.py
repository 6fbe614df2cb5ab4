"""A spool has one owner at a time, and `tailrace spool drain` sends a dead producer's spool
once, in order, through SIGKILLs at random points, refusing while a live owner holds it."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import tailrace
from tailrace.streams.spool import SpoolBusy, Spooled, open_spool
from tests.integration.streams.outbox_support import migrated_schema, redis_url
from tests.kafka_broker import TansuBroker
from tests.waiting import wait_until

SRC = Path(tailrace.__file__).resolve().parents[1]
COUNT = 6000
KEYS = 20
DRAIN_BATCH = 300
KILLS = 3

# Owns the spool (filled when FILL is set) and waits until killed.
OWNER = textwrap.dedent(
    """
    import os, sys, time
    from tailrace.streams.spool import redis as spool_redis
    spool_redis.REDIS_LEASE_S = 1.0
    from tailrace.streams.spool import Spooled, open_spool
    spool = open_spool(sys.argv[1], sys.argv[2])
    count = int(os.environ.get("FILL", "0"))
    entries = [Spooled(i + 1, sys.argv[3], b"key-%d" % (i % 20), b"%d" % i,
                       [("message_id", b"s%d" % i)]) for i in range(count)]
    for start in range(0, count, 500):
        spool.append(entries[start:start + 500])
    print("ready", flush=True)
    time.sleep(600)
    """
)


@pytest.fixture(params=["redis", "postgres", "disk"])
def spool_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "redis":
        yield redis_url()
    elif request.param == "postgres":
        with migrated_schema() as url:
            yield url
    else:
        yield f"file://{tmp_path / 'spool'}"


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(SRC), "PYTHONUNBUFFERED": "1"}


def _owner(url: str, name: str, topic: str, fill: int = 0) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", OWNER, url, name, topic],
        env={**_env(), "FILL": str(fill)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


def _kill(process: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(20)
    if process.stdout is not None:
        process.stdout.close()


def _waiting(url: str, name: str) -> int:
    """How many messages spool `name` holds, read from outside (its owner holds it)."""
    if url.startswith("redis://"):
        import redis

        with redis.Redis.from_url(url) as client:
            return int(client.zcard(f"tailrace:spool:{name}"))
    if url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM tailrace_spool WHERE spool = %s", (name,))
            return int(row.fetchone()[0])  # type: ignore[index]
    folder = Path(url.removeprefix("file://"))
    removed = folder / f"{name}.removed"
    if (folder / f"{name}.spool").stat().st_size == 0:
        return 0
    return COUNT - (removed.stat().st_size // 8 if removed.exists() else 0)


def _open_after_owner(url: str, name: str) -> None:
    """Opens once the dead owner's lock is gone (at once, or after a Redis lease)."""

    def opened() -> bool:
        try:
            open_spool(url, name).close()
        except SpoolBusy:
            return False
        return True

    wait_until(opened, 20, "the dead owner's lock released")


def test_a_spool_has_one_owner_at_a_time(spool_url: str) -> None:
    name = f"own-{uuid.uuid4().hex[:8]}"
    first = open_spool(spool_url, name)
    try:
        with pytest.raises(SpoolBusy, match="owned by another live process"):
            open_spool(spool_url, name)
        open_spool(spool_url, f"{name}-other").close()  # other names are free
    finally:
        first.close()
    open_spool(spool_url, name).close()  # closed: free again


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    with TansuBroker(tmp_path_factory.mktemp("tansu-spool")) as started:
        yield started


def _drain(url: str, name: str, broker: TansuBroker, log: Path) -> subprocess.Popen[bytes]:
    command = [
        *(sys.executable, "-c", "from tailrace.cli.spool import spool; spool()", "drain", name),
        *("--url", url, "--bootstrap-servers", broker.bootstrap, "--batch", str(DRAIN_BATCH)),
    ]
    with log.open("ab") as output:
        return subprocess.Popen(command, env=_env(), stdout=output, stderr=output)


@pytest.mark.kafka
@pytest.mark.slow
def test_drain_refuses_a_live_owner_and_survives_kills(
    spool_url: str, broker: TansuBroker, tmp_path: Path
) -> None:
    rng = random.Random()
    name, topic = f"drain-{uuid.uuid4().hex[:8]}", f"spool-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, partitions=3)
    log = tmp_path / "drain.log"
    owner = _owner(spool_url, name, topic, fill=COUNT)
    try:
        refused = _drain(spool_url, name, broker, log)
        assert refused.wait(60) == 1
        assert "owned by another live process" in log.read_text()
    finally:
        _kill(owner)  # the producer dies with its spool full
    _open_after_owner(spool_url, name)

    for _ in range(KILLS):
        # Killed at a random point of the drain: after a random number of messages more
        # are sent, then a random moment more.
        target = _waiting(spool_url, name) - rng.randrange(1, 2 * DRAIN_BATCH)
        drainer = _drain(spool_url, name, broker, log)
        wait_until(lambda t=target: _waiting(spool_url, name) <= t, 60, f"{target} left")
        try:
            wait_until(lambda: False, rng.uniform(0, 0.2), "a random delay")
        except AssertionError:
            pass
        _kill(drainer)
        _open_after_owner(spool_url, name)
    assert _waiting(spool_url, name) > 0, "drained before the last kill: the test proves less"
    last = _drain(spool_url, name, broker, log)
    assert last.wait(120) == 0, log.read_text()[-2000:]
    left = open_spool(spool_url, name)
    try:
        assert left.count() == 0
    finally:
        left.close()

    records = broker.consume_all(topic)
    values = [int(r.value or b"") for r in records]
    assert set(values) == set(range(COUNT))  # nothing lost
    repeats = len(values) - COUNT
    print(f"{spool_url.split(':')[0]}: {repeats} repeated, bound {KILLS * DRAIN_BATCH}")
    assert repeats <= KILLS * DRAIN_BATCH
    by_key: dict[bytes | None, list[int]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_key.setdefault(record.key, []).append(int(record.value or b""))
    for key, numbers in by_key.items():
        first_seen = list(dict.fromkeys(numbers))
        assert first_seen == sorted(first_seen), f"{key!r} out of order"


def test_the_spooled_order_survives_reopening(spool_url: str) -> None:
    name = f"re-{uuid.uuid4().hex[:8]}"
    spool = open_spool(spool_url, name)
    try:
        spool.append([Spooled(i, "t", None, b"%d" % i, []) for i in (3, 1, 2)])
    finally:
        spool.close()
    spool = open_spool(spool_url, name)
    try:
        assert [e.seq for e in spool.head(10)] == [1, 2, 3]
        spool.remove(spool.head(10))
    finally:
        spool.close()


# A producer whose broker is down: it waits for the circuit to open, then sends messages
# start..stop-1, printing each number once `send` returned (durably spooled by then).
PRODUCER = textwrap.dedent(
    """
    import os, sys, time
    from tailrace.streams.spool import redis as spool_redis
    spool_redis.REDIS_LEASE_S = 1.0
    from tailrace.streams.producer import BreakerProducer, BreakerSettings
    from tailrace.streams.spool import open_spool
    from tailrace.streams.spool.circuit import CircuitState
    url, name, bootstrap, topic, start, stop = sys.argv[1:7]
    settings = BreakerSettings(delivery_timeout_s=1.0, cooldown_s=0.1, max_cooldown_s=0.5)
    producer = BreakerProducer(bootstrap, open_spool(url, name), settings)
    if not os.environ.get("FLUSH"):
        while producer.state is CircuitState.CLOSED:
            time.sleep(0.01)
    for i in range(int(start), int(stop)):
        producer.send(topic, b"%d" % i, key=b"key-%d" % (i % 20))
        print(i, flush=True)
    if os.environ.get("FLUSH"):
        done = producer.flush(120)
        producer.close()
        print("flushed" if done else "not flushed", flush=True)
        sys.exit(0 if done else 1)
    time.sleep(600)
    """
)
SENDS = 4000


def _producer(
    url: str, name: str, broker: TansuBroker, topic: str, start: int, **env: str
) -> subprocess.Popen[str]:
    command = [sys.executable, "-c", PRODUCER, url, name, broker.bootstrap, topic]
    return subprocess.Popen(
        [*command, str(start), str(SENDS)],
        env={**_env(), **env},
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.mark.kafka
@pytest.mark.slow
def test_a_spooling_producer_killed_again_and_again_loses_nothing(
    spool_url: str, tmp_path: Path
) -> None:
    rng = random.Random()
    name, topic = f"prod-{uuid.uuid4().hex[:8]}", f"spool-{uuid.uuid4().hex[:8]}"
    broker = TansuBroker(tmp_path)  # not started: the outage comes first
    sent = 0  # the next number to send: everything before it was acknowledged by `send`
    try:
        for _ in range(KILLS):
            producer = _producer(spool_url, name, broker, topic, sent)
            assert producer.stdout is not None
            stop_after = sent + rng.randrange(100, 800)
            while sent < stop_after:
                line = producer.stdout.readline()
                assert line, "the producer exited"
                sent = int(line) + 1
            try:
                wait_until(lambda: False, rng.uniform(0, 0.1), "a random delay")
            except AssertionError:
                pass
            producer.send_signal(signal.SIGKILL)
            producer.wait(20)
            # What it printed before dying is in the pipe: each number `send` acknowledged.
            for line in producer.stdout.read().split():
                sent = int(line) + 1
            producer.stdout.close()
            _open_after_owner(spool_url, name)
        broker.start()
        broker.create_topic(topic, partitions=3)
        last = _producer(spool_url, name, broker, topic, sent, FLUSH="1")
        out, _ = last.communicate(timeout=180)
        assert last.returncode == 0 and out.rstrip().endswith("flushed"), out[-500:]
        records = broker.consume_all(topic, quiet=1.0, timeout=60)
    finally:
        broker.stop()
    values = [int(r.value or b"") for r in records]
    assert set(values) == set(range(SENDS))  # nothing `send` acknowledged was lost
    # Sent twice: only a message spooled by a run killed before it printed it, which the
    # next run sends again (the caller's repeat, at most one per kill).
    repeats = len(values) - SENDS
    print(f"{spool_url.split(':')[0]}: {repeats} repeated, bound {KILLS}")
    assert repeats <= KILLS
    by_key: dict[bytes | None, list[int]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_key.setdefault(record.key, []).append(int(record.value or b""))
    for key, numbers in by_key.items():
        first_seen = list(dict.fromkeys(numbers))
        assert first_seen == sorted(first_seen), f"{key!r} out of order"
