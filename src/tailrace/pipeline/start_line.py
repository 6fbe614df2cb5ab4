"""Jitsu's ``start_line``: a job that begins inside its first file skips that many lines of
it. The skipped lines are counted (read and skipped, for that reason), so the file's
counters still balance, and the file resumes from a checkpoint past them."""

from __future__ import annotations

import posixpath

from tailrace.pipeline.decoders.framing import Checkpoint, Line, LineReader
from tailrace.pipeline.jobs import Counters, ReprocessingConfig
from tailrace.pipeline.sources import Source, SourceFile

BEFORE_START_LINE = "before start_line"


def starts_inside(config: ReprocessingConfig, url: str) -> bool:
    """Is `url` the file a job's start_line applies to?"""
    start = config.start_file
    return bool(config.start_line and start and start in (url, posixpath.basename(url)))


def skip_lines(source: Source, file: SourceFile, lines: int) -> tuple[Checkpoint, Counters]:
    """The checkpoint after the file's first `lines` lines, and their counts (all skipped).
    Records are counted as the reader counts them (blank lines are not records)."""
    at = Checkpoint()
    records = 0
    pending = 0  # records since the last whole line: they count once a line ends after them
    with source.open(file) as raw:
        for record in LineReader(raw, file=file.url):
            if isinstance(record, Line):
                if record.number > lines:
                    break
                at = Checkpoint(record.number, record.end)
                records += pending + 1
                pending = 0
            elif record.line > lines:
                break
            else:
                pending += 1
    return at, Counters(lines=records, skipped=records)
