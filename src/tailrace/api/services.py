"""What the routes use: the settings, the authenticator, the executor of the workers,
and a pool of database handles (an engine `App` and a `JobStore` each), so that requests
served on several threads never share a connection."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from ..engine.app import App
from ..executors.base import Executor
from ..executors.supervisor import JobSupervisor
from ..pipeline.jobs import JobStore
from .auth import Authenticator
from .config import ApiConfig
from .errors import ApiError
from .recent import Recent

POOL_WAIT_S = 10.0


@dataclass
class Handle:
    app: App
    store: JobStore

    def close(self) -> None:
        self.app.close()
        self.store.close()


class Services:
    def __init__(self, config: ApiConfig) -> None:
        self.config = config
        self.auth = Authenticator(config.tokens, config.session_ttl_s)
        self.executor = _executor(config)
        self.recent = Recent(config.status_ttl_s)
        self._idle: queue.LifoQueue[Handle] = queue.LifoQueue()
        self._opened = 0
        self._all: list[Handle] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        with App(self.config.database_url) as app:
            app.store.migrate()
        self.executor.start()

    def close(self) -> None:
        self.executor.stop()
        with self._lock:
            for handle in self._all:
                handle.close()
            self._all.clear()

    @contextmanager
    def db(self) -> Iterator[Handle]:
        handle = self._checkout()
        try:
            yield handle
        finally:
            self._idle.put(handle)

    def _checkout(self) -> Handle:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if self._opened < self.config.pool_size:
                url = self.config.database_url
                app = App(url, auto_migrate=False)
                try:
                    store = JobStore(url)  # connects now: counted only once it did
                except BaseException:
                    app.close()
                    raise
                handle = Handle(app, store)
                self._opened += 1
                self._all.append(handle)
                return handle
        try:
            return self._idle.get(timeout=POOL_WAIT_S)
        except queue.Empty:
            raise ApiError(503, "busy", "every database connection is busy; retry") from None


def _executor(config: ApiConfig) -> Executor:
    if config.executor == "kubernetes":
        from ..executors.kubernetes import KubernetesExecutor, KubernetesSettings

        return KubernetesExecutor(config.database_url, KubernetesSettings.from_environment())
    return JobSupervisor(config.database_url)


# async: FastAPI runs a plain function dependency on a worker thread, two thread hand-offs
# per request for what takes microseconds (and, under load, waits for a thread and the GIL)
async def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


async def authenticated(request: Request) -> None:
    """The dependency every protected route has (the gate checked the request already)."""
    request.app.state.services.auth.check(request)


Svc = Annotated[Services, Depends(services)]
