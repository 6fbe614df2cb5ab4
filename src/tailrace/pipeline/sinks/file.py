"""The file sink: NDJSON appended to a local file, each event's original bytes plus a newline.

The sink keeps its own buffer and hands the kernel only whole lines. With ``O_APPEND`` each
`os.write` lands at the end of the file in one piece, so a worker killed between flushes
leaves whole lines behind (never half of one), and several workers appending to the same
file do not interleave inside a line.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from tailrace.pipeline.sinks.base import FileMark, Keys, Routes, SinkBase, SinkError, frame_lines

DEFAULT_BUFFER_BYTES = 1 << 20


class FileSink(SinkBase):
    """Appends to `path`, creating it and its parent directories if needed.

    Reopening an existing file appends to it (a worker resuming a file from its
    checkpoint). If the file does not end with a newline (a write cut short by a full disk),
    one is added first so that the next event starts a line of its own.
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
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise SinkError(f"{self.name}: cannot open: {exc.strerror or exc}") from exc
        self._end_partial_line()

    def _end_partial_line(self) -> None:
        try:
            size = os.fstat(self._fd).st_size
            if size == 0:
                return
            with self.path.open("rb") as existing:
                existing.seek(size - 1)
                last = existing.read(1)
        except OSError as exc:
            self._release()
            raise SinkError(f"{self.name}: cannot read its end: {exc.strerror or exc}") from exc
        if last != b"\n":
            self._pending.append(b"\n")
            self._pending_size += 1

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
            while view:
                # A regular file takes the whole buffer except on errors such as a full
                # disk, where the loop either finishes or raises.
                written = os.write(self._fd, view)
                view = view[written:]
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
