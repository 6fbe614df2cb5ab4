"""A real, small file system for disk-full tests: tmpfs mounted by the test.

Mounting needs root (or CAP_SYS_ADMIN); where it is refused the test is skipped with the
reason, also under CI=true: a mount permission is a property of the sandbox, not a service
tailrace promises, and the same fault cannot be made real without it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def small_filesystem(directory: Path, size: str) -> Iterator[Path]:
    """`directory` as a tmpfs of `size` (``2m``) for the duration of the block."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a small tmpfs for a disk-full test: {exc}")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs for a disk-full test: {mounted.stderr.strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], capture_output=True, timeout=30)


def grow(directory: Path, size: str) -> None:
    """Give the mounted file system more room (space returned)."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(directory)], check=True, timeout=30)
