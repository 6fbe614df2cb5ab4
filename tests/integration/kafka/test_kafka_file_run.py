"""The file loop (`FileRun`) into a real Kafka sink whose producer fails fatally mid-file,
with events written and not yet acknowledged: the loop raises `SinkError`, its checkpoint
covers only acknowledged events, nothing is dead-lettered, and the file resumed from that
checkpoint with a new sink puts every event in the topic."""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tailrace.pipeline.decoders.framing import BadLine, Checkpoint
from tailrace.pipeline.filters import EventFilter
from tailrace.pipeline.jobs.model import Counters
from tailrace.pipeline.run import FileRun, FileState, RunSettings
from tailrace.pipeline.samples import write_samples
from tailrace.pipeline.sinks import DeadLetterWriter, NullSink
from tailrace.pipeline.sinks.base import SinkError
from tailrace.pipeline.sinks.kafka import KafkaSink
from tailrace.pipeline.sources import SourceFile, open_source
from tests.e2e.reprocess_support import expected_events
from tests.kafka_broker import TansuBroker

from .faults import inject_fatal_error

pytestmark = pytest.mark.kafka


class _Recorder(DeadLetterWriter):
    def __init__(self) -> None:
        super().__init__(NullSink, location="memory")
        self.bad: list[BadLine] = []

    def write(self, bad_lines: Any) -> None:
        batch = list(bad_lines)
        self.bad.extend(batch)
        super().write(batch)


class _FailingHooks:
    """Checkpoints recorded as the worker stores them; at the `fail_at`-th status write
    after the first checkpoint (between batches, with events written since the last flush)
    the producer fails. Counted from a checkpoint, not from the start: how many status
    writes fit in one checkpoint interval depends on the machine's speed."""

    def __init__(self, sink: KafkaSink, client_id: str, fail_at: int) -> None:
        self.sink, self.client_id, self.fail_at = sink, client_id, fail_at
        self.statuses = 0
        self.unacked_when_failed = 0
        self.checkpoints: list[tuple[Checkpoint, int]] = []

    def status(self, line: int, event_time: str | None, counters: Counters) -> None:
        if not self.checkpoints:
            return
        self.statuses += 1
        if self.statuses == self.fail_at:
            self.unacked_when_failed = len(self.sink._producer)
            inject_fatal_error(self.sink._producer, self.client_id)

    def checkpoint(self, at: Checkpoint, counters: Counters, skip: dict[str, int]) -> None:
        self.checkpoints.append((at, counters.sent))

    def cancelled(self) -> bool:
        return False


def test_a_fatal_error_mid_file_resumes_from_the_checkpoint_and_loses_nothing(
    kafka_broker: TansuBroker, kafka_topic: str, tmp_path: Path
) -> None:
    [sample] = write_samples(tmp_path / "logs", 1, 60_000, seed=3, gzip_share=0.0)
    want = expected_events([sample.path])
    source = open_source(str(sample.path))
    [file] = source.list_files()
    state = FileState("job/0")
    settings = RunSettings(batch_size=500, check_every=500, status_s=0.0, checkpoint_s=0.05)
    client_id = f"fatal-{uuid.uuid4().hex[:8]}"
    sink = KafkaSink(
        kafka_broker.bootstrap,
        kafka_topic,
        config={"client.id": client_id, "linger.ms": "200"},  # writes stay unacknowledged
        environ={},
    )
    hooks = _FailingHooks(sink, client_id, fail_at=3)
    deadletters = _Recorder()
    run = FileRun(
        sink=sink,
        deadletters=deadletters,
        event_filter=EventFilter(),
        hooks=hooks,
        settings=settings,
    )
    with pytest.raises(SinkError, match="fatal producer error"):
        run.run(source, SourceFile(file.url, file.size), state)
    sink.close()
    assert hooks.unacked_when_failed > 0, "the failure came with nothing in flight"
    assert deadletters.bad == []  # an unusable producer is not bad input
    assert hooks.checkpoints, "no checkpoint before the failure"
    assert state.checkpoint == hooks.checkpoints[-1][0]
    checkpointed = state.counters.sent
    assert 0 < checkpointed < sum(want.values())
    # The checkpoint passed no unacknowledged event: the events it counts are in the topic.
    first = Counter(r.value for r in kafka_broker.consume_all(kafka_topic, timeout=30))
    assert sum(first.values()) >= checkpointed

    # The worker's retry: a new sink, the file from its checkpoint.
    with KafkaSink(kafka_broker.bootstrap, kafka_topic, environ={}) as again:
        resumed = FileRun(
            sink=again, deadletters=deadletters, event_filter=EventFilter(), settings=settings
        )
        result = resumed.run(source, SourceFile(file.url, file.size), state)
    assert deadletters.bad == []
    assert result.state.counters.sent == sum(want.values())
    got = Counter(r.value for r in kafka_broker.consume_all(kafka_topic, timeout=60))
    assert set(got) == set(want)  # nothing lost
    duplicates = sum(got.values()) - sum(want.values())
    # at most what was written after the checkpoint and reached the broker anyway
    assert 0 <= duplicates <= sum(first.values()) - checkpointed


class _Checkpoints:
    def __init__(self) -> None:
        self.lines: list[int] = []

    def status(self, line: int, event_time: str | None, counters: Counters) -> None:
        pass

    def checkpoint(self, at: Checkpoint, counters: Counters, skip: dict[str, int]) -> None:
        self.lines.append(at.line)

    def cancelled(self) -> bool:
        return False


def test_checkpoints_keep_their_cadence_through_a_file(tmp_path: Path) -> None:
    # What a killed worker resends is what it wrote since its last checkpoint: with a
    # checkpoint due at every look at the clock, the gap must stay near `check_every`
    # lines all through the file (it grew by `check_every` at each checkpoint: ~17,000
    # lines 150,000 lines in, whatever the checkpoint interval).
    [sample] = write_samples(tmp_path / "logs", 1, 100_000, seed=5, gzip_share=0.0)
    source = open_source(str(sample.path))
    [file] = source.list_files()
    hooks = _Checkpoints()
    settings = RunSettings(check_every=1_000, status_s=3600, checkpoint_s=0.0)
    run = FileRun(
        sink=NullSink(),
        deadletters=_Recorder(),
        event_filter=EventFilter(),
        hooks=hooks,
        settings=settings,
    )
    result = run.run(source, SourceFile(file.url, file.size), FileState("job/0"))
    total = result.state.counters.lines
    gaps = [b - a for a, b in zip([0, *hooks.lines], hooks.lines, strict=False)]
    assert hooks.lines[-1] == total
    # a look at the clock each 1,000 lines, a checkpoint where that chunk of lines ends
    assert max(gaps[:-1]) < 2 * settings.check_every, max(gaps)
    assert len(hooks.lines) >= total // (2 * settings.check_every)
