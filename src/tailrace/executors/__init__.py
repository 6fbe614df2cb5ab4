"""How reprocessing workers start: `local` child processes (the embedded default), or a
Kubernetes Indexed Job (`kubernetes`, imported on demand: it needs the kubernetes client)."""

from tailrace.executors.base import Executor
from tailrace.executors.local import LocalExecutor
from tailrace.executors.processes import WorkerProcesses

__all__ = ["Executor", "LocalExecutor", "WorkerProcesses"]
