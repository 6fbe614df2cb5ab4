"""A file resumed from its checkpoint after a crash that came after the dead letters were
made durable but before the checkpoint was stored: each bad line is in the dead-letter file
once, like each event in the output."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tailrace.pipeline.decoders.framing import Checkpoint
from tailrace.pipeline.filters import EventFilter
from tailrace.pipeline.jobs.model import Counters
from tailrace.pipeline.run import FileRun, FileState, RunSettings
from tailrace.pipeline.sinks import open_deadletter, open_sink, parse_sink_url
from tailrace.pipeline.sources import SourceFile, open_source


class _Crash(Exception):
    pass


class _CrashBeforeCheckpoint:
    """Stores checkpoints until the `crash_at`-th, which fails as a killed worker would:
    after both outputs were flushed, before the checkpoint is stored."""

    def __init__(self, state: FileState, crash_at: int) -> None:
        self.stored = FileState(state.key, state.checkpoint, state.counters.copy())
        self.calls = 0
        self.crash_at = crash_at

    def status(self, line: int, event_time: str | None, counters: Counters) -> None:
        pass

    def checkpoint(
        self, checkpoint: Checkpoint, counters: Counters, skip_reasons: dict[str, int]
    ) -> None:
        self.calls += 1
        if self.calls == self.crash_at:
            raise _Crash
        self.stored = FileState(self.stored.key, checkpoint, counters.copy(), dict(skip_reasons))

    def cancelled(self) -> bool:
        return False


def _write_logs(path: Path, lines: int, bad_every: int) -> set[int]:
    bad = set()
    with path.open("w") as f:
        for n in range(1, lines + 1):
            if n % bad_every == 0:
                f.write(f"{{not json {n}\n")
                bad.add(n)
            else:
                f.write(json.dumps({"timestamp": "2024-01-01T00:00:00Z", "n": n}) + "\n")
    return bad


@pytest.mark.parametrize("resume", [True, False])
def test_resumed_file_dead_letters_each_bad_line_once(tmp_path: Path, resume: bool) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    bad = _write_logs(logs / "a.ndjson", 20_000, 100)
    out = tmp_path / "out.ndjson"
    spec = parse_sink_url(f"file://{out}")
    source = open_source(str(logs))
    [listed] = source.list_files()
    file = SourceFile(listed.url, listed.size)
    # a checkpoint after every batch: the crash comes mid-file
    settings = RunSettings(batch_size=500, check_every=1, checkpoint_s=0.0)

    hooks = _CrashBeforeCheckpoint(FileState("a"), crash_at=4)
    sink, deadletters = open_sink(spec), open_deadletter(spec)
    run = FileRun(
        sink=sink,
        deadletters=deadletters,
        event_filter=EventFilter(),
        hooks=hooks,
        settings=settings,
    )
    with pytest.raises(_Crash):
        run.run(source, file, FileState("a"))
    sink.close()
    deadletters.close()
    assert 0 < hooks.stored.checkpoint.line < 20_000

    # the restarted worker: new outputs, from the last stored checkpoint
    sink, deadletters = open_sink(spec), open_deadletter(spec)
    if resume:
        deadletters.resume(file.url)
    run = FileRun(sink=sink, deadletters=deadletters, event_filter=EventFilter())
    result = run.run(source, file, hooks.stored)
    sink.close()
    deadletters.close()

    records = Counter(
        json.loads(line)["line"]
        for line in (tmp_path / "out.deadletter.ndjson").read_bytes().splitlines()
    )
    assert set(records) == bad
    if resume:
        assert max(records.values()) == 1, sorted(n for n, c in records.items() if c > 1)
        assert result.state.counters.deadlettered == len(bad)
    else:  # what a resume without reading them back leaves: the repeat this guards against
        assert max(records.values()) == 2
