"""The App that end-to-end worker processes load with ``--app tests.e2e.tasks_app:app``.

Configured from the environment the test gives each worker:

- ``TAILRACE_DATABASE_URL``: the store (the App reads it when it is built).
- ``TAILRACE_E2E_RECORD_DIR``: where tasks record what they did. Each record is one line,
  ``"<job id>\\n"``, appended to ``<dir>/<kind>.log`` with a single ``write`` on an ``O_APPEND``
  descriptor, so lines from concurrent processes never interleave.
- ``TAILRACE_E2E_CRON``: when set, a cron expression at whose ticks a ``record`` job runs.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from tailrace import App, JobContext

RECORD_DIR_ENV = "TAILRACE_E2E_RECORD_DIR"
CRON_ENV = "TAILRACE_E2E_CRON"
SCHEDULE_NAME = "e2e-tick"

app = App(os.environ.get("TAILRACE_DATABASE_URL"))


def record(kind: str, job_id: int) -> None:
    """Append ``job_id`` to the ``kind`` log in one atomic write."""
    directory = os.environ.get(RECORD_DIR_ENV)
    if not directory:
        raise RuntimeError(f"{RECORD_DIR_ENV} is not set: the e2e tasks need somewhere to record")
    fd = os.open(Path(directory) / f"{kind}.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{job_id}\n".encode())
    finally:
        os.close(fd)


@app.task(name="record", pass_context=True)
async def record_run(ctx: JobContext, *args: object, **kwargs: object) -> None:
    """Record that this job ran (arguments are accepted and ignored)."""
    record("runs", ctx.job_id)


@app.task(name="slow", pass_context=True)
async def slow(ctx: JobContext, seconds: float) -> None:
    """Record the start, sleep ``seconds`` (async), record the finish."""
    record("started", ctx.job_id)
    await asyncio.sleep(seconds)
    record("finished", ctx.job_id)


@app.task(name="slow_sync", pass_context=True)
def slow_sync(ctx: JobContext, seconds: float) -> None:
    """Like ``slow``, but a sync task blocking its thread in ``time.sleep``."""
    record("started", ctx.job_id)
    time.sleep(seconds)
    record("finished", ctx.job_id)


@app.task(name="boom", pass_context=True)
def boom(ctx: JobContext, message: str) -> None:
    record("started", ctx.job_id)
    raise ValueError(message)


@app.task(name="hang_async", timeout=0.5, pass_context=True)
async def hang_async(ctx: JobContext) -> None:
    record("started", ctx.job_id)
    await asyncio.sleep(60)
    record("finished", ctx.job_id)


@app.task(name="hang_sync", timeout=0.5, pass_context=True)
def hang_sync(ctx: JobContext, seconds: float = 20.0) -> None:
    """Blocks without ever looking at ``ctx.cancelled``: the timeout cannot stop the thread."""
    record("started", ctx.job_id)
    time.sleep(seconds)
    record("finished", ctx.job_id)


if os.environ.get(CRON_ENV):
    app.periodic(os.environ[CRON_ENV], "record", name=SCHEDULE_NAME)


@app.task(name="say")
def say(text: str) -> None:
    """Log ``text`` through an application logger (not tailrace's)."""
    import logging

    logging.getLogger("e2e.application").info(text, extra={"chars": len(text)})
