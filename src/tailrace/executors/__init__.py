"""How reprocessing workers start: `local` child processes (the embedded default)."""

from tailrace.executors.local import LocalExecutor

__all__ = ["LocalExecutor"]
