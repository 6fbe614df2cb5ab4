"""The file sink: NDJSON appended to a local file, each event's original bytes plus a newline.

What it promises:

- It writes only into a file it owns: a new or empty file, or one it wrote before. Beside the
  output it keeps a small record (``.<name>.tailrace-sink``) of the file's identity and of its
  *durable length*, the bytes fsync'd by the last flush that completed. Any other existing
  non-empty file is refused, never truncated or appended to.
- The only bytes it ever removes are those past the durable length: the tail of a write
  that did not finish (a worker killed in the middle of it, a full disk). They are events
  whose checkpoint was never stored, read again when their file resumes.
- Events go to the file at `flush()` (the worker's checkpoint): written, fsync'd, and the
  durable length recorded, all under an exclusive `flock`, so several workers appending to
  the same file never interleave and each finds the file ending at the durable length. A
  write that fails (ENOSPC, EIO) is taken back at once (`ftruncate` needs no free space),
  so after a full disk the file holds exactly what was checkpointed: a resume writes no
  duplicate. A worker killed between its flush and its checkpoint leaves at most one
  checkpoint interval of events that will be written again.
- Buffered events past `buffer_bytes` are written early, and the writer then keeps the lock
  until its flush, so that what it wrote early can still be taken back.

The file and its record are opened inside a directory descriptor that was checked (see
`tailrace.pipeline.confine`), never through a symbolic link at their names.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson

from tailrace.pipeline.confine import PathRefusedError, Roots, open_directory, open_in
from tailrace.pipeline.sinks.base import (
    FileMark,
    Keys,
    Routes,
    Sink,
    SinkBase,
    SinkCounters,
    SinkError,
    frame_lines,
)

DEFAULT_BUFFER_BYTES = 64 << 20
RECORD_SUFFIX = ".tailrace-sink"
_RECORD_BYTES = 256  # written in place at offset 0: one sector, so never torn


# What to do when the records a job made durable are no longer in its file: resuming
# cannot write them again (their lines are checkpointed), a new job can.
_LOST = (
    "The records the job wrote there are gone: put the file back as it was and resume, or "
    "start a new job (`tailrace reprocess`) into a new file to write every record again"
)


def check_holds(sink: Sink, sent: Callable[[], int]) -> None:
    """Refuse a file sink that started empty for a job that already sent records to it
    (`sent`, read only then): the file was moved, deleted or replaced since, and with it
    those records (sent records are flushed to the file before their checkpoint, so they
    are never all that is missing from an empty one)."""
    if not (isinstance(sink, FileSink) and sink.started_empty):
        return
    count = sent()
    if count:
        sink.give_back()
        raise SinkError(
            f"{sink.name}: this job sent {count} records to {sink.path} before, and the file "
            f"is empty now (emptied, moved, deleted or replaced since). {_LOST}"
        )


def record_path(path: Path) -> Path:
    """Where the sink keeps the record of what it wrote to `path`."""
    return path.with_name(f".{path.name}{RECORD_SUFFIX}")


class FileSink(SinkBase):
    """Appends to `path`, creating it and its parent directories if needed.

    Reopening a file this sink wrote appends to it (a worker resuming a file from its
    checkpoint, another worker of the job, a later job). `roots`, when given, are the
    directories the file must be in (a job started through the API). `hold_lock` keeps the
    lock from an early write to the next flush (see the module); the dead-letter output
    writes early without it (see `tailrace.pipeline.sinks.kinds`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        buffer_bytes: int = DEFAULT_BUFFER_BYTES,
        roots: Roots = (),
        hold_lock: bool = True,
    ):
        super().__init__()
        self.path = Path(os.path.abspath(path))
        self.name = f"file sink {self.path}"
        self._buffer_bytes = buffer_bytes
        self._hold_lock = hold_lock
        self._roots = tuple(roots)
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._held_from: int | None = None  # the durable length while the lock is held
        self._new = False  # a directory entry to fsync at the next flush
        #: the file was empty when this sink took it over: a job that had sent records to
        #: it finds them gone (`check_holds`)
        self.started_empty = False
        self._created = False
        self._record_before = b""
        self._dir = self._fd = self._record = -1
        try:
            self._dir = open_directory(self.path.parent, self._roots)
            self._fd = self._open(self.path.name, os.O_APPEND)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                self._adopt()
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        except PathRefusedError as exc:
            self._close_descriptors()
            raise SinkError(f"{self.name}: {exc}") from exc
        except SinkError:
            self._close_descriptors()
            raise
        except OSError as exc:
            self._close_descriptors()
            raise SinkError(f"{self.name}: cannot open: {_why(exc)}") from exc

    def _open(self, name: str, flags: int = 0, *, create: bool = True) -> int:
        try:
            try:
                fd = open_in(self._dir, name, os.O_RDWR | flags, self._roots)
            except FileNotFoundError:
                if not create:
                    raise
                exclusive = os.O_RDWR | os.O_CREAT | os.O_EXCL | flags
                try:
                    fd = open_in(self._dir, name, exclusive, self._roots)
                    self._new = True
                except FileExistsError:  # another worker created it in between
                    fd = open_in(self._dir, name, os.O_RDWR | flags, self._roots)
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symbolic link
                raise SinkError(
                    f"{self.name}: {self.path.parent / name} is a symbolic link; tailrace "
                    "writes only to a regular file it checked, so name the file itself"
                ) from None
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise SinkError(f"{self.name}: not a regular file")
        return fd

    # -- the record of what this sink wrote ----------------------------------------------

    def _identity(self) -> tuple[int, int]:
        info = os.fstat(self._fd)
        return info.st_dev, info.st_ino

    def _durable(self) -> int | None:
        """The durable length recorded for this very file, or None if there is no record
        of it (never written by a file sink, or since replaced)."""
        raw = os.pread(self._record, _RECORD_BYTES, 0).strip()
        try:
            record = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            return None
        if not isinstance(record, dict):
            return None
        if (record.get("dev"), record.get("ino")) != self._identity():
            return None
        durable = record.get("durable")
        return durable if isinstance(durable, int) and durable >= 0 else None

    def _set_durable(self, length: int) -> None:
        dev, ino = self._identity()
        body = orjson.dumps({"tailrace_file_sink": 1, "dev": dev, "ino": ino, "durable": length})
        os.pwrite(self._record, body.ljust(_RECORD_BYTES - 1) + b"\n", 0)
        os.fdatasync(self._record)

    def give_back(self) -> None:
        """Close a sink that took an empty file over and may not write to it, leaving
        things as they were: the record of the file the job wrote (so that file, put back,
        is taken over again) and no file where there was none."""
        if self._record >= 0:
            os.ftruncate(self._record, len(self._record_before))
            os.pwrite(self._record, self._record_before, 0)
            os.fdatasync(self._record)
        if self._created:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        self.close()

    def _adopt(self) -> None:
        """Take the file over: an empty file or one with a record; refuse anything else."""
        size = os.fstat(self._fd).st_size
        durable = None
        try:
            # the record of a non-empty file must already be there: never created beside
            # a file that is refused
            self._record = self._open(record_path(self.path).name, create=size == 0)
            durable = self._durable()
        except FileNotFoundError:
            pass
        if size == 0:  # new, or emptied since (a job that wrote to it refuses, see check_holds)
            self.started_empty = True
            self._created = self._new
            # the record as it was: a refused take-over puts it back (`give_back`)
            self._record_before = os.pread(self._record, _RECORD_BYTES, 0)
            self._set_durable(0)
            self._new = True  # its record may be a new directory entry to make durable
            return
        if durable is None:
            raise SinkError(
                f"{self.name}: {self.path} already holds {size} bytes that tailrace did not "
                f"write (no record of it in {record_path(self.path).name}); tailrace never "
                "appends to or cuts a file it did not write: name a new file, or move this "
                "one away"
            )
        self._settle(durable, size)

    def _settle(self, durable: int, size: int) -> int:
        """Make the file end at its durable length, under the lock; returns that length."""
        if size > durable:
            os.ftruncate(self._fd, durable)  # the tail of a write that did not finish
        elif size < durable:
            raise SinkError(
                f"{self.name}: {self.path} is {size} bytes, shorter than the {durable} bytes "
                f"tailrace made durable: something else truncated it. {_LOST}"
            )
        return durable

    def _lock(self) -> int:
        """Take the lock and settle the file; returns the length to append at."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            durable = self._durable()
            if durable is None:
                raise SinkError(
                    f"{self.name}: {self.path} was replaced or its record "
                    f"{record_path(self.path).name} removed while tailrace wrote to it"
                )
            return self._settle(durable, os.fstat(self._fd).st_size)
        except BaseException:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            raise

    # -- writing ---------------------------------------------------------------------------

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
            if self._hold_lock:
                self._write_early()
            else:
                self._commit()

    def _take_pending(self) -> memoryview:
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        return memoryview(data)

    def _append(self, view: memoryview) -> None:
        while view:
            # A regular file takes the whole buffer except on errors such as a full
            # disk, where the loop either finishes or raises.
            written = os.write(self._fd, view)
            view = view[written:]

    def _write_early(self) -> None:
        """Hand the buffer to the kernel and keep the lock until the flush."""
        try:
            if self._held_from is None:
                self._held_from = self._lock()
            self._append(self._take_pending())
        except OSError as exc:
            self._take_back()
            raise SinkError(f"{self.name}: write failed: {_why(exc)}") from exc
        except SinkError:
            self._take_back()
            raise

    def _commit(self) -> None:
        """Append what is pending, fsync it and record the new durable length."""
        try:
            if self._held_from is None:
                self._held_from = self._lock()
            self._append(self._take_pending())
            os.fsync(self._fd)
            if self._new:
                os.fsync(self._dir)
            self._set_durable(os.fstat(self._fd).st_size)
            self._new = False
        except OSError as exc:
            self._take_back()
            raise SinkError(f"{self.name}: write failed: {_why(exc)}") from exc
        except SinkError:
            self._take_back()
            raise
        self._release_lock()

    def _take_back(self) -> None:
        """After a failed write: cut the file back to its durable length, drop the rest."""
        self._pending.clear()
        self._pending_size = 0
        self._unacked = SinkCounters()
        if self._held_from is None:
            return
        try:
            os.ftruncate(self._fd, self._held_from)
            self._set_durable(self._held_from)  # in case the new length was half recorded
        except OSError:
            pass  # the next writer, under the lock, cuts it back to the durable length
        self._release_lock()

    def _release_lock(self) -> None:
        if self._held_from is not None:
            self._held_from = None
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def flush(self, mark: FileMark | None = None) -> None:
        """Write what is buffered, fsync it and record the durable length; only then count
        the events as delivered."""
        self._check_open()
        if self._pending or self._held_from is not None:
            self._commit()
        elif self._new:
            try:
                os.fsync(self._dir)  # an adopted empty file's record
                self._new = False
            except OSError as exc:
                raise SinkError(f"{self.name}: fsync failed: {_why(exc)}") from exc
        self._acknowledge()

    def read_durable(self) -> bytes:
        """The file's bytes up to its durable length, under the lock (the tail of a write
        that did not finish cut first): what a killed writer surely left in it."""
        self._check_open()
        if self._held_from is not None:
            raise SinkError(f"{self.name}: read while a write holds the file")
        length = self._lock()
        try:
            chunks = []
            at = 0
            while at < length:
                chunk = os.pread(self._fd, min(length - at, 1 << 24), at)
                if not chunk:
                    break
                chunks.append(chunk)
                at += len(chunk)
            return b"".join(chunks)
        except OSError as exc:
            raise SinkError(f"{self.name}: read failed: {_why(exc)}") from exc
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _release(self) -> None:
        self._release_lock()
        self._close_descriptors()

    def _close_descriptors(self) -> None:
        for fd in (self._fd, self._record, self._dir):
            if fd >= 0:
                os.close(fd)
        self._dir = self._fd = self._record = -1


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)
