"""A writer SIGKILLed at a random instant: the next writer finds every flushed line once,
in order, and nothing of what was not flushed (a cut line, an early write under the lock)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tailrace.pipeline.sinks import FileSink

from ...waiting import wait_until

WRITER = r"""
import sys
import time
from tailrace.pipeline.sinks import FileSink

path, buffer_bytes = sys.argv[1], int(sys.argv[2])
sink = FileSink(path, buffer_bytes=buffer_bytes)
n = 0
while True:
    for _ in range(7):  # several writes per flush: some go to the file early
        sink.write([b'{"n":%d,"pad":"%s"}' % (i, b"x" * 300) for i in range(n, n + 50)])
        n += 50
        time.sleep(0.001)  # a reader's pace: most of the interval is spent between writes
    sink.flush()
    print(n, flush=True)  # flushed: must survive any kill from here on
"""


def _line(i: int) -> bytes:
    return b'{"n":%d,"pad":"%s"}' % (i, b"x" * 300)


@pytest.mark.parametrize("seed", range(8))
def test_a_writer_killed_anywhere_leaves_exactly_its_flushed_lines(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    path = tmp_path / "out.ndjson"
    buffer_bytes = rng.choice([1 << 30, 20_000])  # early writes held under the lock, or none
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(buffer_bytes)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    assert writer.stdout is not None
    reported = 0
    flushes = rng.randint(1, 10)
    try:
        for _ in range(flushes):
            line = wait_until(writer.stdout.readline, 30, "the writer to flush")
            reported = int(line)
        # the fault: a random instant in the next flush intervals (not a synchronisation)
        time.sleep(rng.uniform(0, 0.03))
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        # flushes it reported while we slept
        for line in writer.stdout.read().split():
            reported = int(line)
    finally:
        writer.kill()
        writer.wait()
        writer.stdout.close()
    with FileSink(path) as reopened:  # what a resuming worker does first
        reopened.flush()
    got = path.read_bytes().split(b"\n")
    assert got[-1] == b""
    lines = got[:-1]
    # every reported flush is there; at most the one flush in flight beyond it, whole
    assert len(lines) in (reported, reported + 350)
    assert lines == [_line(i) for i in range(len(lines))]


APPENDER = r"""
import sys
from tailrace.pipeline.sinks import FileSink

path, who, buffer_bytes = sys.argv[1], sys.argv[2], int(sys.argv[3])
with FileSink(path, buffer_bytes=buffer_bytes) as sink:  # all open a file none has created
    for n in range(0, 2000, 100):
        sink.write([b'{"w":"%s","n":%d}' % (who.encode(), i) for i in range(n, n + 100)])
        sink.flush()
"""


def test_writers_starting_together_on_a_new_file_each_land_every_line_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "new" / "out.ndjson"
    writers = [
        subprocess.Popen([sys.executable, "-c", APPENDER, str(path), str(who), str(size)])
        for who, size in enumerate([1 << 30, 1 << 30, 2_000, 2_000])
    ]
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0, 0, 0]
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    want = {b'{"w":"%d","n":%d}' % (who, i) for who in range(4) for i in range(2000)}
    assert sorted(lines[:-1]) == sorted(want)
