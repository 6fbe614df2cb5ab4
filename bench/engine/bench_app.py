"""The tasks the engine benchmark runs: a no-op, and one that records when it started."""

from __future__ import annotations

import os
import time

from tailrace import App, JobContext

app = App()


@app.task(name="noop")
async def noop() -> None:
    pass


@app.task(name="noop_sync")
def noop_sync() -> None:
    pass


@app.task(name="stamp", pass_context=True)
async def stamp(ctx: JobContext) -> None:
    # one write per job, O_APPEND: lines from several processes never interleave
    fd = os.open(os.environ["BENCH_STAMP_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, f"{ctx.job_id} {time.time():.6f}\n".encode())
    finally:
        os.close(fd)
