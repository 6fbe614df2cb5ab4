"""``tailrace worker``: run jobs."""

from __future__ import annotations

import logging
import sys

import click

from ..db.connection import PROMPT
from ..engine.states import Priority
from ..engine.store import open_store
from ..engine.worker import Worker, WorkerOptions, run_workers
from ..errors import ConfigurationError
from ..loading import load_app
from ..observability import worker_server
from ..settings import current, database_url
from .context import app_from
from .options import metrics_options

log = logging.getLogger("tailrace.worker")


def processing_enabled() -> bool:
    """``TAILRACE_WORKER_ENABLED``, else the priority-job framework's
    ``QUARKUS_SCHEDULER_ENABLED`` (or ``worker_enabled`` in tailrace.toml): false starts the
    worker with processing off."""
    return current().worker_enabled is not False


def _split(text: str | None) -> list[str] | None:
    items = [part.strip() for part in (text or "").split(",") if part.strip()]
    return items or None


@click.command()
@click.option(
    "--app",
    "app_spec",
    default=None,
    help="module:attribute of your App (same as the global --app, accepted here too).",
)
@click.option("-q", "--queues", help="Comma-separated queues to work (default: all).")
@click.option(
    "--priorities",
    help="Comma-separated priorities to work, e.g. CRITICAL,HIGH "
    "(env WORKER_PRIORITY_FILTER; default: all).",
)
@click.option(
    "-c", "--concurrency", default=16, show_default=True, help="Jobs run at once per process."
)
@click.option("-p", "--processes", default=1, show_default=True, help="Worker processes.")
@click.option("--batch-size", default=200, show_default=True, help="Most jobs claimed at once.")
@click.option(
    "--lease",
    "lease_s",
    default=30.0,
    show_default=True,
    help="Seconds a claim lasts without a heartbeat.",
)
@click.option(
    "--poll",
    "poll_s",
    default=1.0,
    show_default=True,
    help="Seconds between polls when no notification arrives.",
)
@click.option(
    "--grace",
    "grace_s",
    default=30.0,
    show_default=True,
    help="Seconds in-flight jobs get to finish after SIGTERM.",
)
@click.option(
    "--retention",
    "retention_s",
    default=86400.0,
    show_default=True,
    help="Seconds finished jobs are kept before pruning.",
)
@click.option(
    "--prune-every",
    "prune_every_s",
    default=60.0,
    show_default=True,
    help="Seconds between pruning passes.",
)
@click.option("--burst", is_flag=True, help="Exit once no job is left to run.")
@click.option(
    "--pool",
    envvar="TAILRACE_WORKER_POOL",
    help="This worker's pool, which `tailrace queues pause-pool NAME` pauses without a "
    "restart (env TAILRACE_WORKER_POOL).",
)
@metrics_options
@click.option(
    "--job",
    "job_id",
    help="Work the files of this reprocessing job, then exit (env TAILRACE_JOB_ID, or JOB_ID "
    "beside WORKER_INDEX). A job not in the "
    "database is read from /config/files/files.json and /config/job/config.json "
    "(TAILRACE_WORKER_CONFIG_DIR) when they are there.",
)
@click.option(
    "--index",
    "worker_index",
    type=click.IntRange(min=0),
    default=None,
    show_default="0",
    help="This worker's index within its reprocessing job (env WORKER_INDEX).",
)
@click.pass_context
def worker(
    ctx: click.Context,
    app_spec: str | None,
    queues: str | None,
    priorities: str | None,
    concurrency: int,
    processes: int,
    batch_size: int,
    lease_s: float,
    poll_s: float,
    grace_s: float,
    retention_s: float,
    prune_every_s: float,
    burst: bool,
    pool: str | None,
    metrics_port: int | None,
    metrics_host: str,
    job_id: str | None,
    worker_index: int | None,
) -> None:
    """Run a worker: claim jobs from the queues and run them until SIGTERM.

    With --job, work one reprocessing job's files instead, and exit when none is left.
    """
    settings = current()
    job_id = job_id or settings.job_id
    priorities = priorities or settings.worker_priority_filter
    if job_id:
        from ..pipeline.jobs.model import ReprocessingStatus
        from ..pipeline.mounted import ensure_job
        from ..pipeline.worker import ReprocessWorker

        url = database_url(ctx.find_root().obj.get("database_url"))
        # Jitsu's worker pods: the job may be known only from its mounted files
        ensure_job(url, job_id)
        index = settings.worker_index if worker_index is None else worker_index
        reprocess = ReprocessWorker(url, job_id, index)
        if metrics_port:
            from ..pipeline.worker_metrics import serve_worker

            prompt = worker_server.PromptStore(lambda: open_store(url, PROMPT))
            try:
                serve_worker(
                    reprocess, metrics_port, metrics_host, worker_server.database_check(prompt)
                )
            except OSError as exc:
                # its figures are in the database too (the admin service's /metrics): a
                # port taken by another worker on the host must not cost the job a worker
                log.warning("no metrics server for this worker: %s", exc)
        status = reprocess.run()
        sys.exit(1 if status is ReprocessingStatus.FAILED else 0)
    try:
        prios = Priority.parse_list(priorities) if priorities else list(Priority)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--priorities") from None
    options = WorkerOptions(
        queues=_split(queues),
        priorities=prios,
        concurrency=concurrency,
        batch_size=batch_size,
        lease_s=lease_s,
        poll_s=poll_s,
        shutdown_grace_s=grace_s,
        retention_s=retention_s,
        prune_every_s=prune_every_s,
        burst=burst,
        pool=pool or None,
        enabled=processing_enabled(),
    )
    if app_spec:
        ctx.find_root().obj["app"] = app_spec
    app = app_from(ctx)
    if not app.tasks:
        # it would claim every job and fail each one: refuse before touching the queues
        raise ConfigurationError(
            "this worker has no tasks to run: pass --app module:app (or set TAILRACE_APP) "
            "naming the App whose @app.task functions it should run"
        )
    children = None
    if metrics_port and processes > 1:
        from ..observability.child_metrics import ChildMetrics

        children = ChildMetrics(processes, worker_server.counter_registries())
    if metrics_port:
        shown = {
            "pool": options.pool or "default",
            "enabled": options.enabled,
            "queues": options.queues or "all",
            "priorities": [p.name for p in options.priorities],
            "concurrency": concurrency,
            "processes": processes,
        }
        try:
            worker_server.serve(
                metrics_port,
                lambda: open_store(app.database_url, PROMPT),
                metrics_host,
                pool=shown,
                pool_name=options.pool,
                children=children,
            )
        except OSError as exc:  # before any job is claimed: say where, not a traceback
            raise ConfigurationError(
                f"cannot serve metrics on {metrics_host}:{metrics_port} (--metrics-port): "
                f"{exc.strerror or exc}"
            ) from None
    if processes <= 1:
        Worker(app, options).run()
        return
    root = ctx.find_root().obj
    codes = run_workers(
        lambda: load_app(root.get("app"), root.get("database_url")),
        options,
        processes,
        in_child=children.answer if children else None,
        forked=children.forked if children else None,
    )
    # like a shell: a child killed by signal N (exit code -N) makes ours 128 + N
    failed = [c if c > 0 else 128 - c for c in codes if c != 0]
    sys.exit(failed[0] if failed else 0)
