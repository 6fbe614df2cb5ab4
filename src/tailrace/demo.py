"""The demo job: a few tasks, jobs of every priority, some failing, one retried until dead.

It stands in for the main job until the reprocessing pipeline lands, and shows the engine's
behaviour end to end on the embedded default (SQLite, no services).
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from .engine.app import App, JobSpec
from .engine.jobs import JobFilter
from .engine.retry import RetryPolicy
from .engine.states import JobState, Priority
from .engine.tasks import JobContext
from .engine.worker import Worker, WorkerOptions

QUEUE = "demo"


class PaymentGatewayTimeout(Exception):
    pass


class InventoryServiceDown(Exception):
    pass


def build_app(database_url: str | None = None) -> App:
    # short backoff so that the retries happen while you watch
    app = App(database_url, retry=RetryPolicy(base_s=0.2, max_s=1.0), default_queue=QUEUE)

    @app.task(name="charge_card", priority=Priority.CRITICAL, pass_context=True)
    def charge_card(ctx: JobContext, order_id: int, flaky: bool = False) -> None:
        if flaky and ctx.attempt == 1:
            raise PaymentGatewayTimeout(f"gateway timed out charging order {order_id}")
        time.sleep(0.002)

    @app.task(name="send_email", priority=Priority.HIGH)
    async def send_email(user_id: int) -> None:
        await asyncio.sleep(0.005)

    @app.task(name="resize_image")
    def resize_image(image_id: int) -> None:
        time.sleep(0.004)

    @app.task(name="refresh_search_index", priority=Priority.LOW)
    async def refresh_search_index(shard: int) -> None:
        await asyncio.sleep(0.003)

    @app.task(name="sync_inventory", priority=Priority.BULK)
    def sync_inventory(warehouse: str) -> None:
        raise InventoryServiceDown(f"inventory service for {warehouse!r} refused the connection")

    return app


def demo_jobs(rng: random.Random) -> list[JobSpec]:
    jobs = [JobSpec("charge_card", {"order_id": i, "flaky": rng.random() < 0.2}) for i in range(60)]
    jobs += [JobSpec("send_email", {"user_id": i}) for i in range(150)]
    jobs += [JobSpec("resize_image", {"image_id": i}) for i in range(150)]
    jobs += [JobSpec("refresh_search_index", {"shard": i}) for i in range(80)]
    jobs.append(JobSpec("sync_inventory", {"warehouse": "berlin-2"}))
    rng.shuffle(jobs)
    return jobs


@dataclass
class DemoResult:
    ids: list[int]
    seconds: float
    states: Counter[tuple[Priority, JobState]]
    retried: int
    dead_errors: list[str]


def run_demo(app: App, progress: Callable[[int, int], None] | None = None) -> DemoResult:
    """Enqueue the demo jobs, run one worker until they are all finished, summarise."""
    ids = app.enqueue_many(demo_jobs(random.Random(7)))
    worker = Worker(app, WorkerOptions(queues=[QUEUE], concurrency=16, burst=True, poll_s=0.1))
    started = time.perf_counter()
    thread = threading.Thread(target=worker.run, name="tailrace-demo-worker")
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.1)
            if progress:
                progress(_finished(app, ids), len(ids))
    except KeyboardInterrupt:
        worker.stop()
        thread.join()
        raise
    seconds = time.perf_counter() - started
    jobs = app.jobs(JobFilter(ids=tuple(ids)), limit=len(ids))
    return DemoResult(
        ids=ids,
        seconds=seconds,
        states=Counter((j.priority, j.state) for j in jobs),
        retried=sum(1 for j in jobs if j.attempts > 1),
        dead_errors=[
            f"job {j.id} ({j.task}): {len(j.errors)} attempts, last: {j.errors[-1]['error']}"
            for j in jobs
            if j.state is JobState.DEAD and j.errors
        ],
    )


def _finished(app: App, ids: list[int]) -> int:
    done = (JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED)
    return sum(s.count for s in app.stats() if s.queue == QUEUE and s.state in done) if ids else 0
