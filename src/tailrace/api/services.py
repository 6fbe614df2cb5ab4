"""What the routes use: the settings, the authenticator, the executor of the workers,
and a pool of database handles (an engine `App` and a `ReprocessingStore` each), so that requests
served on several threads never share a connection.

Handles wait for the database the `PROMPT` way: with the database down, frozen or
restarting, a request that needs it answers 503 (``unavailable``) in about two seconds
rather than hanging, and the next request after it is back reconnects."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated

import psycopg
from fastapi import Depends, Request

from ..db.connection import PROMPT
from ..engine.app import App
from ..executors.base import Executor
from ..executors.local import LocalExecutor
from ..pipeline.jobs import ReprocessingStore
from .auth import Authenticator
from .config import ApiConfig
from .errors import ApiError
from .recent import Recent

# How long a request waits for a free handle: with the database frozen, every handle is
# stuck for up to an operation's deadline, and a request must still answer in ~2 s.
POOL_WAIT_S = 1.0
UNREACHABLE_FOR_S = 10.0
UNAVAILABLE = "the database is unreachable; retry shortly"


@dataclass
class Handle:
    app: App
    store: ReprocessingStore

    def close(self) -> None:
        self.app.close()
        self.store.close()


class Services:
    def __init__(self, config: ApiConfig) -> None:
        self.config = config
        self.auth = Authenticator(config.tokens, config.session_ttl_s, hashed=config.hashed_tokens)
        self.executor = _executor(config)
        self.recent = Recent(config.status_ttl_s)
        self._idle: queue.LifoQueue[Handle] = queue.LifoQueue()
        self._opened = 0
        self._all: list[Handle] = []
        self._lock = threading.Lock()
        self._unreachable_at: float | None = None

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
        try:
            handle = self._checkout()
        except psycopg.OperationalError:  # could not connect a new handle
            self._unreachable_at = time.monotonic()
            raise
        try:
            yield handle
        except psycopg.OperationalError:
            self._unreachable_at = time.monotonic()
            raise
        else:
            self._unreachable_at = None
        finally:
            self._idle.put(handle)

    def _unreachable(self) -> bool:
        """Did a request find the database unreachable lately (and none reach it since)?"""
        at = self._unreachable_at
        return at is not None and time.monotonic() - at < UNREACHABLE_FOR_S

    def _checkout(self) -> Handle:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            opening = self._opened < self.config.pool_size
            if opening:
                self._opened += 1  # a slot taken now, connected outside the lock
        if opening:
            url = self.config.database_url
            app = App(url, auto_migrate=False, connection_policy=PROMPT)
            try:
                store = ReprocessingStore(
                    url, PROMPT
                )  # connects now: the slot is freed if it fails
            except BaseException:
                app.close()
                with self._lock:
                    self._opened -= 1
                raise
            handle = Handle(app, store)
            with self._lock:
                self._all.append(handle)
            return handle
        try:
            return self._idle.get(timeout=POOL_WAIT_S)
        except queue.Empty:
            if self._unreachable():  # the handles are busy waiting for a database that is gone
                raise ApiError(503, "unavailable", UNAVAILABLE) from None
            raise ApiError(503, "busy", "every database connection is busy; retry") from None


def _executor(config: ApiConfig) -> Executor:
    if config.executor == "kubernetes":
        from ..executors.kubernetes import KubernetesExecutor, KubernetesSettings

        return KubernetesExecutor(config.database_url, KubernetesSettings.from_environment())
    return LocalExecutor(config.database_url)


# async: FastAPI runs a plain function dependency on a worker thread, two thread hand-offs
# per request for what takes microseconds (and, under load, waits for a thread and the GIL)
async def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


async def authenticated(request: Request) -> None:
    """The dependency every protected route has (the gate checked the request already)."""
    request.app.state.services.auth.check(request)


Svc = Annotated[Services, Depends(services)]
