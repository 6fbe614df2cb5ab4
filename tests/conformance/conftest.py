from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tailrace import App, RetryPolicy, Worker, WorkerOptions


@pytest.fixture
def app(database_url: str) -> Iterator[App]:
    app = App(database_url, retry=RetryPolicy(base_s=0.01, max_s=0.05))
    yield app
    app.close()


def drain(app: App, **options: Any) -> Worker:
    """Run a worker in this thread until nothing is left to run."""
    options.setdefault("poll_s", 0.05)
    worker = Worker(app, WorkerOptions(burst=True, **options))
    worker.run()
    return worker


@pytest.fixture
def background_worker() -> Iterator[Callable[..., Worker]]:
    """Start workers in threads; stops and joins them at teardown."""
    started: list[tuple[Worker, threading.Thread]] = []

    def start(app: App, **options: Any) -> Worker:
        options.setdefault("poll_s", 0.05)
        worker = Worker(app, WorkerOptions(**options))
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        started.append((worker, thread))
        return worker

    yield start
    for worker, thread in started:
        worker.stop()
        thread.join(15)


@pytest.fixture
def request_close() -> Iterator[Callable[[App], None]]:
    """Close the Apps a test builds itself."""
    apps: list[App] = []
    yield apps.append
    for app in apps:
        app.close()
