"""How reprocessing workers start: `local` child processes (the embedded default), or a
Kubernetes Indexed Job (`kubernetes`, imported on demand: it needs the kubernetes client)."""

from .base import Executor
from .local import LocalExecutor
from .processes import WorkerProcesses

__all__ = ["Executor", "LocalExecutor", "WorkerProcesses"]
