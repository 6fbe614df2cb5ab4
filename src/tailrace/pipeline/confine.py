"""Which local paths a job may read and write, checked on the descriptor actually opened.

Two rules, for every file a job reads (a source) or writes (a sink, its dead letters):

- tailrace's own data directory (``TAILRACE_DATA_DIR``, default ``.tailrace``: the SQLite job
  store, the API token, worker logs) and the SQLite store wherever ``TAILRACE_DATABASE_URL``
  puts it are never read or written by a job. The one exception is the ``out`` directory
  inside the data directory, where the API puts a job's output when no sink is named: a job
  may write there (never read it back as a source).
- when a job has `roots` (jobs started through the API: ``TAILRACE_API_SOURCE_ROOTS``), the
  file must be under one of them.

Both are checked after the file is opened, on the path the kernel reports for the open
descriptor (``/proc/self/fd``): a file swapped for a symbolic link between planning and
reading cannot lead outside, and a file to write is created inside a directory descriptor
that was checked first, never through a symbolic link at its own name.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from tailrace.errors import TailraceError
from tailrace.settings import data_dir, database_url

OUTPUT_DIR = "out"  # inside the data directory: where a job may write
_SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")

Roots = Sequence[str | os.PathLike[str]]


class PathRefusedError(TailraceError):
    """A path a job may not read or write: tailrace's own files, or outside the job's roots."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


def _real(path: str | os.PathLike[str]) -> str:
    return os.path.realpath(os.path.expanduser(os.fspath(path)))


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _store_files() -> list[str]:
    url = database_url()
    if not (url.startswith("sqlite:") or "://" not in url):
        return []
    from tailrace.db.sqlite import path_from_url

    try:
        base = _real(path_from_url(url))
    except TailraceError:
        return []
    return [base + suffix for suffix in _SQLITE_SUFFIXES]


def own_files_reason(path: str, *, writing: bool) -> str | None:
    """Why the resolved `path` is tailrace's own and off limits to a job, else None."""
    directory = _real(data_dir())
    if _under(path, directory):
        if (
            writing
            and _under(path, os.path.join(directory, OUTPUT_DIR))
            and (path != os.path.join(directory, OUTPUT_DIR))
        ):
            return None
        return (
            f"{path} is inside tailrace's data directory {directory} (its job store, API "
            "token and logs; TAILRACE_DATA_DIR), which jobs never "
            + ("write" if writing else "read")
        )
    if path in _store_files():
        return f"{path} is tailrace's job store (TAILRACE_DATABASE_URL), which jobs never touch"
    return None


def own_identities() -> frozenset[tuple[int, int]]:
    """(device, inode) of the data directory and the SQLite store files that exist: a
    directory walk leaves them out without resolving every path."""
    found = set()
    for path in (os.fspath(data_dir()), *_store_files()):
        try:
            info = os.stat(path)
        except OSError:
            continue
        found.add((info.st_dev, info.st_ino))
    return frozenset(found)


def refusal(path: str, roots: Roots, *, writing: bool) -> str | None:
    """Why a job may not read (or write) the resolved `path`, else None."""
    reason = own_files_reason(path, writing=writing)
    if reason is not None:
        return reason
    if roots and not any(_under(path, _real(root)) for root in roots):
        shown = ", ".join(os.fspath(root) for root in roots)
        return f"{path} is outside the directories this job may use ({shown})"
    return None


def check_path(path: str | os.PathLike[str], roots: Roots = (), *, writing: bool) -> None:
    """Refuse `path` (resolved now) if a job may not use it: for planning, before any open."""
    real = _real(path)
    reason = refusal(real, roots, writing=writing)
    if reason is not None:
        raise PathRefusedError(reason, os.fspath(path))


def descriptor_path(fd: int, fallback: str) -> str:
    """The path the kernel holds for an open descriptor (`fallback` resolved where there
    is no ``/proc``)."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return _real(fallback)


def open_to_read(path: str, roots: Roots = ()) -> int:
    """A descriptor on the regular file `path` for reading, checked once opened."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise PathRefusedError(f"not a regular file: {path}", path)
        reason = refusal(descriptor_path(fd, path), roots, writing=False)
        if reason is not None:
            raise PathRefusedError(f"refusing to read {path}: {reason}", path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_directory(directory: Path, roots: Roots = ()) -> int:
    """A descriptor on `directory` (created if missing) to create and open files in, after
    checking where it really is."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        real = descriptor_path(fd, os.fspath(directory))
        # a file in it is what gets written: check a name inside, not the directory itself
        reason = refusal(os.path.join(real, "_"), roots, writing=True)
        if reason is not None:
            raise PathRefusedError(f"refusing to write in {directory}: {reason}", str(directory))
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_in(directory_fd: int, name: str, flags: int, roots: Roots = (), mode: int = 0o644) -> int:
    """Open `name` for writing inside a directory opened with `open_directory`, never
    through a symbolic link at that name, after checking the file's own path."""
    path = os.path.join(descriptor_path(directory_fd, "."), name)
    reason = refusal(path, roots, writing=True)
    if reason is not None:
        raise PathRefusedError(f"refusing to write {path}: {reason}", path)
    return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=directory_fd)
