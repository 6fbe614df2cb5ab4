"""The stdout sink: NDJSON on standard output, for trying things and for pipes."""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import BinaryIO

from tailrace.pipeline.sinks.base import FileMark, Keys, Routes, SinkBase, SinkError, frame_lines

#: A file the processes that share one standard output lock around each write (set by the
#: command that starts them, `executors/processes.py`): a pipe keeps only writes of at most
#: PIPE_BUF bytes whole, and a batch of events is larger, so without it two workers' lines
#: could be cut into each other.
STDOUT_LOCK_ENV = "TAILRACE_STDOUT_LOCK"


class StdoutSink(SinkBase):
    """Writes each event's original bytes and a newline to `stream` (``sys.stdout.buffer``).

    Each batch is written and flushed whole, under the lock file `lock_path` (default: the
    ``TAILRACE_STDOUT_LOCK`` variable) when there is one, so that processes sharing standard
    output never cut each other's lines. `flush()` flushes the stream: "delivered" means
    handed to the reader of the pipe or terminal. Closing does not close standard output.
    """

    name = "stdout:"

    def __init__(self, stream: BinaryIO | None = None, lock_path: str | None = None) -> None:
        super().__init__()
        self._stream = stream if stream is not None else sys.stdout.buffer
        lock_path = lock_path if lock_path is not None else os.environ.get(STDOUT_LOCK_ENV)
        # opened here, by each process: flock excludes only other open files, not the
        # copies a child inherits
        self._lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600) if lock_path else None

    def write(
        self, batch: Sequence[bytes], *, keys: Keys | None = None, routes: Routes | None = None
    ) -> None:
        self._check_open()
        if not batch:
            return
        data = frame_lines(batch)
        try:
            with self._locked():
                self._stream.write(data)
                if self._lock_fd is not None:  # all of it out before another process writes
                    self._stream.flush()
        except OSError as exc:  # BrokenPipeError when the reader went away
            raise SinkError(f"{self.name}: write failed: {exc.strerror or exc}") from exc
        self._written(len(batch), len(data) - len(batch))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        if self._lock_fd is None:
            yield
            return
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def flush(self, mark: FileMark | None = None) -> None:
        self._check_open()
        try:
            self._stream.flush()
        except OSError as exc:
            raise SinkError(f"{self.name}: flush failed: {exc.strerror or exc}") from exc
        self._acknowledge()

    def _release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
