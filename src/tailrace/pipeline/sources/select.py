"""Which files of a directory or an S3 prefix are read, and a record of those left out.

By default only log files: ``.ndjson``, ``.jsonl``, ``.json`` and ``.log``, each optionally
compressed (``.gz``, ``.zst``). Temporary files (``*.tmp``, ``*.rotating``, ``*.part``...)
and markers (``_SUCCESS``...) are never read unless `include` names them; `exclude` leaves
out anything it matches, first. Globs match the file's name (``--include '*.txt'``) or, when
they hold a ``/``, its path below the source (``--exclude 'archive/*'``).

A file named on its own is always read; a glob's matches skip only temporary and marker
files (the glob chose the names).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

LOG_SUFFIXES = (".ndjson", ".jsonl", ".json", ".log")
COMPRESSED_SUFFIXES = ("", ".gz", ".zst")
TEMPORARY = ("*.tmp", "*.temp", "*.rotating", "*.part", "*.partial", "*.swp", "*~", "*.crc")
MARKERS = ("_SUCCESS", "_FAILURE", "_SUCCESS.*", "_started_*", "_committed_*", "_temporary")
EXAMPLES_KEPT = 5

EXCLUDED = "excluded by --exclude"
TEMPORARY_FILE = "temporary file"
MARKER_FILE = "marker file"
NOT_A_LOG = "not a log file (.ndjson, .jsonl, .json, .log, optionally .gz or .zst)"
LINK_LOOP = "symbolic link loop"
UNREADABLE = "cannot be examined"
OWN_FILES = "tailrace's own files"
OUTSIDE_ROOTS = "outside the allowed directories"

_LOG_NAMES = tuple(f"*{log}{packed}" for log in LOG_SUFFIXES for packed in COMPRESSED_SUFFIXES)


def _matches(patterns: Sequence[str], name: str, relative: str) -> bool:
    return any(
        fnmatch.fnmatchcase(relative if "/" in pattern else name, pattern) for pattern in patterns
    )


@dataclass(frozen=True, slots=True)
class FileSelection:
    """The rule for one listing: `logs_only` for directories and prefixes, not for globs."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    logs_only: bool = True

    def reason(self, name: str, relative: str | None = None) -> str | None:
        """Why the file `name` (at `relative` below the source) is not read, else None."""
        relative = relative or name
        if _matches(self.exclude, name, relative):
            return EXCLUDED
        if _matches(self.include, name, relative):
            return None
        lowered = name.lower()
        if _matches(TEMPORARY, lowered, lowered):
            return TEMPORARY_FILE
        if _matches(MARKERS, name, name):
            return MARKER_FILE
        if self.logs_only and not _matches(_LOG_NAMES, lowered, lowered):
            return NOT_A_LOG
        return None


@dataclass(slots=True)
class SkippedFiles:
    """Files a listing left out: how many per reason, and the first few names of each."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, name: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        kept = self.examples.setdefault(reason, [])
        if len(kept) < EXAMPLES_KEPT:
            kept.append(name)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": dict(self.counts),
            "examples": {k: list(v) for k, v in self.examples.items()},
        }

    def describe(self) -> list[str]:
        """One line per reason, for a summary: ``3 skipped (temporary file): a.tmp, ...``."""
        return [
            f"{count:,} skipped ({reason}): {', '.join(self.examples.get(reason, []))}"
            + (", ..." if count > len(self.examples.get(reason, [])) else "")
            for reason, count in sorted(self.counts.items())
        ]
