"""The file sink: NDJSON appended to a local file, each event's original bytes plus a newline.

The sink keeps its own buffer and hands the kernel only whole lines, with ``O_APPEND`` and
under an exclusive `flock`, so several workers appending to the same file never interleave
inside a line. A worker killed *during* a write can still leave part of a buffer behind
(Linux ends a large write early when a fatal signal arrives): the next writer, holding the
lock, finds the file not ending in a newline and cuts that tail off. Nothing acknowledged
is lost by that: a checkpoint only ever covers fsync'd whole lines, and the cut events are
written again when the file resumes.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Sequence
from pathlib import Path

from tailrace.pipeline.sinks.base import FileMark, Keys, Routes, SinkBase, SinkError, frame_lines

DEFAULT_BUFFER_BYTES = 1 << 20
_TAIL_CHUNK = 64 * 1024


class FileSink(SinkBase):
    """Appends to `path`, creating it and its parent directories if needed.

    Reopening an existing file appends to it (a worker resuming a file from its
    checkpoint). A partial last line left by a cut write is removed before the next write.
    """

    def __init__(self, path: str | os.PathLike[str], *, buffer_bytes: int = DEFAULT_BUFFER_BYTES):
        super().__init__()
        self.path = Path(path)
        self.name = f"file sink {self.path}"
        self._buffer_bytes = buffer_bytes
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._dirty = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # The directory entry of a new file is made durable at the first flush.
            self._new = not self.path.exists()
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise SinkError(f"{self.name}: cannot open: {exc.strerror or exc}") from exc

    def _cut_partial_tail(self) -> None:
        """Remove a last line without its newline (only a writer that died leaves one)."""
        size = os.fstat(self._fd).st_size
        if size == 0 or os.pread(self._fd, 1, size - 1) == b"\n":
            return
        end = size
        while end > 0:
            start = max(0, end - _TAIL_CHUNK)
            newline = os.pread(self._fd, end - start, start).rfind(b"\n")
            if newline >= 0:
                os.ftruncate(self._fd, start + newline + 1)
                return
            end = start
        os.ftruncate(self._fd, 0)

    def write(
        self, batch: Sequence[bytes], *, keys: Keys | None = None, routes: Routes | None = None
    ) -> None:
        self._check_open()
        if not batch:
            return
        data = frame_lines(batch)
        self._pending.append(data)
        self._pending_size += len(data)
        self._written(len(batch), len(data) - len(batch))
        if self._pending_size >= self._buffer_bytes:
            self._drain()

    def _drain(self) -> None:
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        view = memoryview(data)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                self._cut_partial_tail()
                while view:
                    # A regular file takes the whole buffer except on errors such as a
                    # full disk, where the loop either finishes or raises.
                    written = os.write(self._fd, view)
                    view = view[written:]
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        except OSError as exc:
            raise SinkError(f"{self.name}: write failed: {exc.strerror or exc}") from exc
        self._dirty = True

    def flush(self, mark: FileMark | None = None) -> None:
        """Write what is buffered and fsync it (and, the first time, the new file's entry)."""
        self._check_open()
        self._drain()
        if self._dirty:
            try:
                os.fsync(self._fd)
                if self._new:
                    _fsync_directory(self.path.parent)
                    self._new = False
            except OSError as exc:
                raise SinkError(f"{self.name}: fsync failed: {exc.strerror or exc}") from exc
            self._dirty = False
        self._acknowledge()

    def _release(self) -> None:
        os.close(self._fd)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
