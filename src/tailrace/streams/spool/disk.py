"""A spool on local disk: an append-only log of messages and a log of removed sequence
numbers, both fsynced before a call returns.

On open, the logs are read back into an index in memory (sequence number -> place in the
log): a spool holds what an outage leaves behind, not an unbounded backlog. A record cut
short by a crash mid-append was never acknowledged to the sender and is dropped. Once every
message is removed, both logs are truncated.
"""

from __future__ import annotations

import fcntl
import heapq
import os
import struct
import threading
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from . import SpoolBusy, Spooled, SpoolError, decode, encode

_HEADER = struct.Struct(">IIQ")  # record length, crc32 of the record, sequence number
_SEQ = struct.Struct(">Q")


class DiskSpool:
    def __init__(self, directory: str | os.PathLike[str], name: str) -> None:
        self.name = name
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        # The owner's lock: flock, released by the kernel when the owner exits, however.
        self._owner = (folder / f"{name}.lock").open("ab")
        try:
            fcntl.flock(self._owner.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._owner.close()
            raise SpoolBusy(str(folder), name) from None
        self._log_path = folder / f"{name}.spool"
        self._removed_path = folder / f"{name}.removed"
        self._lock = threading.Lock()
        self._index: dict[int, tuple[int, int]] = {}
        self._log = self._load()
        self._removed = self._removed_path.open("ab")

    def _load(self) -> BinaryIO:
        removed: set[int] = set()
        if self._removed_path.exists():
            data = self._removed_path.read_bytes()
            usable = len(data) - len(data) % _SEQ.size
            removed = {_SEQ.unpack_from(data, i)[0] for i in range(0, usable, _SEQ.size)}
        log = self._log_path.open("a+b")
        log.seek(0)
        data = log.read()
        offset = 0
        while offset + _HEADER.size <= len(data):
            length, crc, seq = _HEADER.unpack_from(data, offset)
            start = offset + _HEADER.size
            record = data[start : start + length]
            if len(record) < length or zlib.crc32(record) != crc:
                break
            if seq not in removed:
                self._index[seq] = (start, length)
            offset = start + length
        if offset < len(data):
            log.truncate(offset)  # the torn tail of an append that never returned
            os.fsync(log.fileno())
        return log

    def append(self, entries: Sequence[Spooled]) -> None:
        if not entries:
            return
        with self._lock:
            try:
                self._log.seek(0, os.SEEK_END)
                offset = self._log.tell()
                chunks = []
                for entry in entries:
                    record = encode(entry)
                    chunks.append(_HEADER.pack(len(record), zlib.crc32(record), entry.seq))
                    chunks.append(record)
                    self._index[entry.seq] = (offset + _HEADER.size, len(record))
                    offset += _HEADER.size + len(record)
                self._log.write(b"".join(chunks))
                self._log.flush()
                os.fsync(self._log.fileno())
            except OSError as exc:
                raise SpoolError(f"disk spool {self._log_path}: {exc}") from exc

    def head(self, limit: int) -> list[Spooled]:
        with self._lock:
            seqs = heapq.nsmallest(limit, self._index)
            found = []
            for seq in seqs:
                start, length = self._index[seq]
                self._log.seek(start)
                found.append(decode(seq, self._log.read(length)))
            return found

    def remove(self, entries: Sequence[Spooled]) -> None:
        if not entries:
            return
        with self._lock:
            for entry in entries:
                self._index.pop(entry.seq, None)
            try:
                if self._index:
                    self._removed.write(b"".join(_SEQ.pack(e.seq) for e in entries))
                    self._removed.flush()
                    os.fsync(self._removed.fileno())
                else:
                    # The log first: removed numbers left over name nothing in an empty log.
                    self._log.truncate(0)
                    os.fsync(self._log.fileno())
                    self._removed.truncate(0)
                    os.fsync(self._removed.fileno())
            except OSError as exc:
                raise SpoolError(f"disk spool {self._log_path}: {exc}") from exc

    def last_seq(self) -> int | None:
        with self._lock:
            return max(self._index, default=None)

    def count(self) -> int:
        with self._lock:
            return len(self._index)

    def close(self) -> None:
        with self._lock:
            self._log.close()
            self._removed.close()
            self._owner.close()  # releases the flock
