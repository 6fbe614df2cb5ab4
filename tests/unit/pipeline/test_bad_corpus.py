"""The committed bad-input corpus (`tests/corpus/bad`, written by `make_bad.py`): each file
through the whole file pipeline, with the counters and dead-letter reasons it must give."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tailrace.pipeline.decoders.framing import BadLine
from tailrace.pipeline.filters import EventFilter
from tailrace.pipeline.run import FileRun, FileState
from tailrace.pipeline.sinks import DeadLetterWriter, NullSink
from tailrace.pipeline.sources import SourceFile, open_source

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
EXPECTED: dict[str, dict[str, Any]] = json.loads((CORPUS / "expected.json").read_text())


class _Recorder(DeadLetterWriter):
    """Keeps the dead letters it is given, to check their reasons."""

    def __init__(self) -> None:
        super().__init__(NullSink, location="memory")
        self.bad: list[BadLine] = []

    def write(self, bad_lines: Any) -> None:
        batch = list(bad_lines)
        self.bad.extend(batch)
        super().write(batch)


def test_every_corpus_file_has_expectations() -> None:
    names = {p.name for p in (CORPUS / "bad").iterdir()}
    assert names == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_input_is_counted_and_dead_lettered_and_an_unfinished_read_says_so(name: str) -> None:
    expected = EXPECTED[name]
    source = open_source(str(CORPUS / "bad" / name))
    [file] = source.list_files()
    sink, deadletters = NullSink(), _Recorder()
    run = FileRun(sink=sink, deadletters=deadletters, event_filter=EventFilter())

    result = run.run(source, SourceFile(file.url, file.size), FileState(name))

    counters = result.state.counters
    assert (counters.lines, counters.sent, counters.deadlettered) == (
        expected["lines"],
        expected["sent"],
        expected["deadlettered"],
    )
    assert counters.balanced
    assert sink.counters.events == expected["sent"]
    reasons = [bad.reason for bad in deadletters.bad]
    for wanted in expected.get("reasons", []):
        assert any(wanted in reason for reason in reasons), (wanted, reasons)
    assert all(bad.file == file.url and bad.line >= 1 for bad in deadletters.bad)
    # A file the reader could not finish is not a clean success: the result says where and why.
    fatal = [bad for bad in deadletters.bad if bad.fatal]
    assert len(fatal) <= 1 and (not fatal or fatal[0] is deadletters.bad[-1])
    if name in UNFINISHED:
        assert fatal, f"{name}: the reader gave up, yet no fatal record"
    if fatal:
        assert result.fatal is fatal[0]
        assert result.error is not None
        assert result.error.startswith("unreadable: " + fatal[0].reason)
        assert f"at line {fatal[0].line}, byte {fatal[0].offset:,}" in result.error
    else:
        assert result.fatal is None and result.error is None


# Files whose bytes end (or break) before their last record: reading them cannot complete.
UNFINISHED = {"corrupt_gzip.ndjson.gz", "truncated_gzip.ndjson.gz", "truncated_zstd.ndjson.zst"}
