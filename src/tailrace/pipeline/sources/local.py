"""Files on a local (or mounted) file system: one file, a directory tree, or a glob.

Directories are walked recursively. Names starting with ``.`` are skipped, as a shell glob
skips them: editors, sync tools and uploaders keep their temporary files there. Of the rest,
only log files are listed (see `tailrace.pipeline.sources.select`); what is left out is
counted in `skipped`, by reason. Symbolic links are followed, but a directory already
visited (a link loop, or a second link to it) is not walked twice, so no file is listed
twice; a link that loops on itself is skipped.

tailrace's own data directory and job store are never listed or opened, and a file is
checked again when it is opened (`tailrace.pipeline.confine`): where it really is, not
where it was when listed.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import re
from typing import BinaryIO

from tailrace.pipeline.confine import (
    PathRefusedError,
    Roots,
    open_to_read,
    own_files_reason,
    own_identities,
)
from tailrace.pipeline.sources.base import (
    SourceAccessError,
    SourceError,
    SourceFile,
    SourceNotFoundError,
)
from tailrace.pipeline.sources.select import (
    LINK_LOOP,
    OWN_FILES,
    UNREADABLE,
    FileSelection,
    SkippedFiles,
)

_GLOB_MAGIC = re.compile(r"[*?\[]")
_ANY_DIRS = None  # a ``**`` component: zero or more directories
ComponentPattern = re.Pattern[str] | None


class LocalSource:
    """A local file, a directory (recursive), or a glob (``**`` spans directories).

    `roots`, when given, are the directories every file opened must really be in;
    `include` and `exclude` are globs that widen or narrow the files listed.
    """

    def __init__(
        self,
        spec: str,
        *,
        roots: Roots = (),
        include: tuple[str, ...] = (),
        exclude: tuple[str, ...] = (),
    ) -> None:
        if not spec:
            raise SourceNotFoundError("empty local source path", spec)
        self.spec = spec
        self.path = os.path.abspath(os.path.expanduser(spec))
        self.roots = tuple(roots)
        self.include = include
        self.exclude = exclude
        self.skipped = SkippedFiles()

    def list_files(self) -> list[SourceFile]:
        path = self.path
        self.skipped = SkippedFiles()
        if _GLOB_MAGIC.search(path):
            files = self._glob(path)
        else:
            self._refuse_own(path)
            if os.path.isdir(path):
                selection = FileSelection(self.include, self.exclude)
                files = _walk(path, selection, self.skipped)
            elif os.path.isfile(path):
                files = [SourceFile(path, _size(path), os.path.getmtime(path))]
            elif os.path.lexists(path):
                raise SourceNotFoundError(f"not a regular file or directory: {path}", path)
            else:
                raise SourceNotFoundError(f"no such file or directory: {path}", path)
        return sorted(files, key=lambda file: file.url)

    def _refuse_own(self, path: str) -> None:
        reason = own_files_reason(os.path.realpath(path), writing=False)
        if reason is not None:
            raise SourceAccessError(f"refusing to read {path}: {reason}", path)

    def open(self, file: SourceFile, offset: int = 0) -> BinaryIO:
        if offset < 0:
            raise ValueError(f"negative offset {offset} for {file.url}")
        try:
            stream = os.fdopen(open_to_read(file.url, self.roots), "rb")
        except PathRefusedError as exc:
            raise SourceAccessError(str(exc), file.url) from None
        except FileNotFoundError:
            raise SourceNotFoundError(f"no such file: {file.url}", file.url) from None
        except PermissionError:
            raise SourceAccessError(f"permission denied: {file.url}", file.url) from None
        except OSError as exc:
            raise SourceError(f"cannot open {file.url}: {exc.strerror}", file.url) from None
        if offset:
            stream.seek(offset)
        return stream

    def _glob(self, pattern: str) -> list[SourceFile]:
        parts = pattern.split(os.sep)
        first = next(i for i, part in enumerate(parts) if _GLOB_MAGIC.search(part))
        base = os.sep.join(parts[:first]) or os.sep
        components = [_compile(part) for part in parts[first:]]
        recursive = any(component is _ANY_DIRS for component in components)
        if not os.path.isdir(base):
            raise SourceNotFoundError(
                f"glob {self.spec!r} matches nothing: no such directory {base}", self.spec
            )
        depth = None if recursive else len(components)
        # the glob chose the names: only temporary and marker files are left out
        selection = FileSelection(self.include, self.exclude, logs_only=False)
        found = _walk_named(base, depth, None, self.skipped)
        files = []
        for names, file in found:
            if not _match(components, names):
                continue
            reason = selection.reason(names[-1], "/".join(names))
            if reason is None:
                files.append(file)
            else:
                self.skipped.add(reason, "/".join(names))
        if not files:
            skipped = "; ".join(self.skipped.describe())
            raise SourceNotFoundError(
                f"glob {self.spec!r} matches no file"
                + (f" to read ({skipped})" if skipped else ""),
                self.spec,
            )
        return files


def _compile(part: str) -> ComponentPattern:
    if part == "**":
        return _ANY_DIRS
    return re.compile(fnmatch.translate(part))


def _match(components: list[ComponentPattern], names: tuple[str, ...]) -> bool:
    if not components:
        return not names
    head, rest = components[0], components[1:]
    if head is _ANY_DIRS:
        return any(_match(rest, names[skip:]) for skip in range(len(names) + 1))
    return bool(names) and head.match(names[0]) is not None and _match(rest, names[1:])


def _walk(root: str, selection: FileSelection, skipped: SkippedFiles) -> list[SourceFile]:
    return [file for _, file in _walk_named(root, None, selection, skipped)]


def _walk_named(
    root: str, max_depth: int | None, selection: FileSelection | None, skipped: SkippedFiles
) -> list[tuple[tuple[str, ...], SourceFile]]:
    """Files under `root` with their path components below it, down to `max_depth` levels,
    that `selection` takes (all with None); what is left out goes to `skipped`."""
    found: list[tuple[tuple[str, ...], SourceFile]] = []
    own = own_identities()
    seen = {_identity(root)}
    pending: list[tuple[str, tuple[str, ...]]] = [(root, ())]
    while pending:
        directory, names = pending.pop()
        for entry in _entries(directory, is_root=directory == root):
            relative = (*names, entry.name)
            shown = "/".join(relative)
            try:
                # a link may lead into the data directory: where it really goes is checked
                if entry.is_symlink() and own_files_reason(
                    os.path.realpath(entry.path), writing=False
                ):
                    skipped.add(OWN_FILES, shown)
                    continue
                if entry.is_dir():
                    if max_depth is not None and len(relative) >= max_depth:
                        continue
                    identity = _identity(entry.path)
                    if identity in own:
                        skipped.add(OWN_FILES, shown)
                    elif identity not in seen:
                        seen.add(identity)
                        pending.append((entry.path, relative))
                elif entry.is_file():
                    stat = entry.stat()
                    reason = None if selection is None else selection.reason(entry.name, shown)
                    if (stat.st_dev, stat.st_ino) in own:
                        reason = OWN_FILES
                    if reason is not None:
                        skipped.add(reason, shown)
                        continue
                    found.append((relative, SourceFile(entry.path, stat.st_size, stat.st_mtime)))
            except FileNotFoundError:
                continue  # removed while we listed: not part of the source any more
            except OSError as exc:
                skipped.add(LINK_LOOP if exc.errno == errno.ELOOP else UNREADABLE, shown)
    return found


def _entries(directory: str, *, is_root: bool) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as scan:
            return [entry for entry in scan if not entry.name.startswith(".")]
    except PermissionError:
        raise SourceAccessError(f"permission denied: {directory}", directory) from None
    except FileNotFoundError:
        if is_root:
            raise SourceNotFoundError(f"no such directory: {directory}", directory) from None
        return []


def _identity(path: str) -> tuple[int, int]:
    stat = os.stat(path)
    return stat.st_dev, stat.st_ino


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except PermissionError:
        raise SourceAccessError(f"permission denied: {path}", path) from None
