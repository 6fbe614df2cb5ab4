"""The engine's Python API: register tasks, enqueue jobs, inspect and operate on them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypedDict, TypeVar, Unpack, overload

import orjson

from ..errors import InvalidArgumentsError, QueueFullError, TailraceError, UnknownTaskError
from ..observability import tracing
from ..settings import database_url as resolve_database_url
from ..settings import max_attempts_from_env
from . import aging
from .aging import default_aging_from_env, queue_aging_from_env
from .capacity import capacities_from_env
from .cron import Cron
from .jobs import Job, JobBatch, JobFilter, NewJob, PoolInfo, QueueInfo, QueueStats
from .retry import RetryPolicy
from .states import DEFAULT_MAX_ATTEMPTS, JobState, Priority
from .store import Store, open_store

if TYPE_CHECKING:
    from ..db.connection import ConnectionPolicy
from .tasks import Task, make_task

F = TypeVar("F", bound=Callable[..., Any])

OnFull = Literal["error", "wait"]
"""What ``enqueue`` does when a queue is at capacity: raise QueueFullError, or wait for room."""


class JobOptions(TypedDict, total=False):
    """The options ``App.enqueue`` takes for one job (all optional; see ``App.new_job``)."""

    queue: str | None
    priority: Priority | str | int | None
    run_at: datetime | None
    delay: float | None
    max_attempts: int | None
    timeout: float | None
    dedup_key: str | None
    dedup_window: float | timedelta | None


@dataclass(frozen=True)
class Schedule:
    """A cron schedule: at each tick, exactly one job of ``task`` is enqueued."""

    name: str
    cron: Cron
    task: str
    args: Any = None
    queue: str | None = None
    priority: Priority | None = None


@dataclass(frozen=True)
class JobSpec:
    """One job for ``App.enqueue_many``."""

    task: str
    args: Any = None
    queue: str | None = None
    priority: Priority | str | None = None
    run_at: datetime | None = None
    max_attempts: int | None = None
    dedup_key: str | None = None


# the keywords of the ``App.task`` overload above, checked for callers mypy does not see
_TASK_OPTIONS = frozenset(
    {"name", "queue", "priority", "max_attempts", "retry", "timeout", "pass_context"}
)


class App:
    """Holds the task registry, the schedules and the store.

    ``priority_aging_s`` is how long a waiting job takes to climb one priority level: a BULK
    job enqueued 4 times that long ago sorts with a CRITICAL job enqueued now, so nothing starves
    (default: ``TAILRACE_PRIORITY_AGING_S``, else 60). ``queue_aging_s`` sets it per queue
    (added to ``TAILRACE_QUEUE_AGING_S="queue=seconds,…"``); see `tailrace.engine.aging`.

    ``queue_capacity``: the most waiting or running jobs of a priority in any one queue that
    sets no cap of its own for it (added to ``JOBS_QUEUE_CAPACITY_<PRIORITY>``).
    """

    def __init__(
        self,
        database_url: str | None = None,
        *,
        priority_aging_s: float | None = None,
        queue_aging_s: Mapping[str, float] | None = None,
        queue_capacity: Mapping[Priority | str, int] | None = None,
        retry: RetryPolicy | None = None,
        max_attempts: Mapping[Priority, int] | None = None,
        default_queue: str = "default",
        auto_migrate: bool = True,
        connection_policy: ConnectionPolicy | None = None,
        check_task_names: bool = True,
    ) -> None:
        self.database_url = resolve_database_url(database_url)
        self.priority_aging_s = (
            default_aging_from_env() if priority_aging_s is None else priority_aging_s
        )
        self.queue_aging_s = aging.check({**queue_aging_from_env(), **(queue_aging_s or {})})
        self.queue_capacity_defaults: dict[Priority, int] = {
            **capacities_from_env(),
            **{Priority.parse(p): n for p, n in (queue_capacity or {}).items()},
        }
        self.retry = retry or RetryPolicy()
        from_env = max_attempts_from_env(p.name for p in Priority)
        self.max_attempts = {
            **DEFAULT_MAX_ATTEMPTS,
            **{Priority[name]: n for name, n in from_env.items()},
            **(max_attempts or {}),
        }
        self.default_queue = default_queue
        self.auto_migrate = auto_migrate
        # how long `store` waits for PostgreSQL (a worker's own connections wait forever)
        self.connection_policy = connection_policy
        self.tasks: dict[str, Task] = {}
        # an App that registers tasks refuses to enqueue a name none of them answers to
        # (a typo would otherwise surface as dead jobs); off for producers of other apps' tasks
        self.check_task_names = check_task_names
        self._short_names: dict[str, list[str]] = {}  # "export" -> ["myproject.tasks.export"]
        self.schedules: dict[str, Schedule] = {}
        self._store: Store | None = None

    # -- the store --------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = self.open_store()
        return self._store

    def open_store(self, policy: ConnectionPolicy | None = None) -> Store:
        """A new connection to the store (workers use several); migrates on first use.
        ``policy``: how long it waits for a PostgreSQL server (default: this App's)."""
        store = open_store(self.database_url, policy or self.connection_policy)
        if self.auto_migrate:
            store.migrate()
        return store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- tasks and schedules ----------------------------------------------------------------

    @overload
    def task(self, fn: F) -> F: ...
    @overload
    def task(
        self,
        *,
        name: str | None = None,
        queue: str | None = None,
        priority: Priority | str | None = None,
        max_attempts: int | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        pass_context: bool = False,
    ) -> Callable[[F], F]: ...

    def task(self, fn: Any = None, **options: Any) -> Any:
        """Register a sync or async function as a task; jobs name it by ``name``
        (default ``module.qualname``)."""
        unknown = options.keys() - _TASK_OPTIONS
        if unknown:  # a misspelt option would otherwise be ignored without a word
            raise TypeError(
                f"task() got unknown option(s) {', '.join(sorted(unknown))}; "
                f"it takes {', '.join(sorted(_TASK_OPTIONS))}"
            )

        def register(f: F) -> F:
            priority = options.get("priority")
            t = make_task(
                f,
                options.get("name"),
                queue=options.get("queue"),
                priority=Priority.parse(priority) if priority is not None else None,
                max_attempts=options.get("max_attempts"),
                retry=options.get("retry"),
                timeout_s=options.get("timeout"),
                pass_context=options.get("pass_context", False),
            )
            self.tasks[t.name] = t
            for short in {t.name.rpartition(".")[2], f.__name__} - {t.name}:
                self._short_names.setdefault(short, []).append(t.name)
            return f

        return register(fn) if fn is not None else register

    def find_task(self, name: str) -> Task | None:
        """The task a job named ``name`` runs: the one registered under that name, else the
        only one whose short name (function name, or last dotted part) it is."""
        task = self.tasks.get(name)
        if task is not None:
            return task
        full = self._short_names.get(name, [])
        return self.tasks[full[0]] if len(full) == 1 else None

    def task_name(self, task: str | Callable[..., Any]) -> str:
        """The name to store for a job of ``task``: the registered name of a function, or of
        a short name (``export`` for ``myproject.tasks.export``). A name this App cannot
        resolve is refused when it registers tasks, and kept as given when it knows none
        (a producer that enqueues by name for workers elsewhere)."""
        if not isinstance(task, str):
            for name, t in self.tasks.items():
                if t.fn is task:
                    return name
            raise TailraceError(f"{task!r} is not a registered task; decorate it with @app.task")
        if task in self.tasks or not self.tasks or not self.check_task_names:
            return task
        full = self._short_names.get(task, [])
        if len(full) == 1:
            return full[0]
        if full:
            raise UnknownTaskError(
                f"task name {task!r} is ambiguous: it is the short name of "
                f"{', '.join(sorted(full))}; enqueue one of those names"
            )
        raise UnknownTaskError(
            f"no task named {task!r} is registered (this App has: "
            f"{', '.join(sorted(self.tasks))}); register it with @app.task, or build the "
            "App with check_task_names=False to enqueue tasks that only other workers know"
        )

    def periodic(
        self,
        cron: str,
        task: str | Callable[..., Any],
        *,
        name: str | None = None,
        args: Any = None,
        queue: str | None = None,
        priority: Priority | str | None = None,
        timezone: str | None = None,
    ) -> Schedule:
        """Enqueue ``task`` at every tick of ``cron`` (5 fields, or 6 with seconds first),
        in ``timezone`` (an IANA name; default UTC), following its daylight-saving changes.
        Every worker fires schedules; the store makes each tick fire exactly once."""
        task_name = self.task_name(task)
        schedule = Schedule(
            name=name or task_name,
            cron=Cron.parse(cron, timezone),
            task=task_name,
            args=args,
            queue=queue,
            priority=Priority.parse(priority) if priority is not None else None,
        )
        self.schedules[schedule.name] = schedule
        return schedule

    # -- enqueue ----------------------------------------------------------------------------

    def new_job(
        self,
        task: str | Callable[..., Any],
        args: Any = None,
        *,
        queue: str | None = None,
        priority: Priority | str | int | None = None,
        run_at: datetime | None = None,
        delay: float | None = None,
        max_attempts: int | None = None,
        timeout: float | None = None,
        dedup_key: str | None = None,
        dedup_window: float | timedelta | None = None,
    ) -> NewJob:
        """Resolve defaults (task options, then the app's) into a job ready to store."""
        name = self.task_name(task)
        t = self.find_task(name)
        try:
            args_json = orjson.dumps(tracing.inject_job_args(args)).decode()
        except TypeError as exc:
            raise InvalidArgumentsError(
                f"arguments of a {name!r} job are not JSON-serialisable: {exc}"
            ) from None
        prio = (
            Priority.parse(priority)
            if priority is not None
            else (t.priority if t and t.priority is not None else Priority.DEFAULT)
        )
        now = datetime.now(UTC)
        when = run_at or now
        if delay:
            when = now + timedelta(seconds=delay)
        if when.tzinfo is None:
            raise TailraceError(
                f"run_at {when.isoformat()} has no timezone; pass an aware datetime"
            )
        window = (
            dedup_window.total_seconds() if isinstance(dedup_window, timedelta) else dedup_window
        )
        attempts = max_attempts or (t.max_attempts if t else None) or self.max_attempts[prio]
        resolved_queue = queue or (t.queue if t and t.queue else self.default_queue)
        return NewJob(
            task=name,
            args_json=args_json,
            queue=resolved_queue,
            priority=prio,
            run_at=when,
            sort_at=self.sort_at(when, prio, resolved_queue),
            max_attempts=attempts,
            timeout_s=timeout if timeout is not None else (t.timeout_s if t else None),
            dedup_key=dedup_key,
            dedup_window_s=window,
        )

    def aging_s(self, queue: str | None = None) -> float:
        """Seconds a waiting job of ``queue`` takes to climb one priority level."""
        if queue is None:
            return self.priority_aging_s
        return self.queue_aging_s.get(queue, self.priority_aging_s)

    def sort_at(self, run_at: datetime, priority: Priority, queue: str | None = None) -> datetime:
        """Claim order: later by the queue's aging per level below CRITICAL."""
        return run_at + timedelta(seconds=int(priority) * self.aging_s(queue))

    def enqueue(
        self,
        task: str | Callable[..., Any],
        args: Any = None,
        *,
        connection: Any | None = None,
        on_full: OnFull = "error",
        wait_timeout: float = 30.0,
        **options: Unpack[JobOptions],
    ) -> int:
        """Enqueue one job; returns its id (the existing job's id when deduplicated).

        ``connection``: the caller's own psycopg or sqlite3 connection; the job is written
        in its current transaction and exists only if that transaction commits.
        ``on_full``: "error" raises QueueFullError at capacity; "wait" retries until there
        is room or ``wait_timeout`` seconds pass.
        """
        unknown = options.keys() - JobOptions.__optional_keys__
        if unknown:
            # new_job would say "new_job() got an unexpected keyword": name the caller's call
            raise TypeError(
                f"enqueue() got unknown option(s) {', '.join(sorted(unknown))}; "
                f"it takes {', '.join(sorted(JobOptions.__optional_keys__))}"
            )
        job = self.new_job(task, args, **options)
        return self._insert([job], connection, on_full, wait_timeout)[0]

    def enqueue_many(
        self,
        jobs: Iterable[JobSpec | NewJob],
        *,
        connection: Any | None = None,
        on_full: OnFull = "error",
        wait_timeout: float = 30.0,
    ) -> list[int]:
        """Enqueue many jobs in one transaction (COPY on PostgreSQL); returns their ids."""
        # Jobs that differ only in their arguments share one resolved template: resolving
        # defaults (or building an object) per job would cost more than writing it.
        templates: dict[tuple[Any, ...], NewJob] = {}
        batch = JobBatch()
        carrier = tracing.current_carrier()  # one call's jobs share the caller's span
        for j in jobs:
            if isinstance(j, NewJob):
                batch.add(j, j.args_json.encode())
                continue
            if j.dedup_key is not None:
                job = self.new_job(
                    j.task,
                    j.args,
                    queue=j.queue,
                    priority=j.priority,
                    run_at=j.run_at,
                    max_attempts=j.max_attempts,
                    dedup_key=j.dedup_key,
                )
                batch.add(job, job.args_json.encode())
                continue
            key = (j.task, j.queue, j.priority, j.run_at, j.max_attempts)
            template = templates.get(key)
            if template is None:
                template = templates[key] = self.new_job(
                    j.task,
                    None,
                    queue=j.queue,
                    priority=j.priority,
                    run_at=j.run_at,
                    max_attempts=j.max_attempts,
                )
            try:
                args_json = orjson.dumps(tracing.inject_job_args(j.args, carrier))
            except TypeError as exc:
                raise InvalidArgumentsError(
                    f"arguments of a {template.task!r} job are not JSON-serialisable: {exc}"
                ) from None
            batch.add(template, args_json)
        return self._insert(batch, connection, on_full, wait_timeout)

    def _insert(
        self, jobs: Sequence[NewJob], connection: Any | None, on_full: OnFull, wait_timeout: float
    ) -> list[int]:
        if on_full not in ("error", "wait"):
            raise TailraceError(f"on_full must be 'error' or 'wait', not {on_full!r}")
        deadline = time.monotonic() + wait_timeout
        delay = 0.01
        while True:
            try:
                return self.store.jobs_insert(jobs, connection, self.queue_capacity_defaults)
            except QueueFullError:
                if on_full == "error" or time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    # -- inspection and operations ----------------------------------------------------------

    def job(self, job_id: int) -> Job:
        return self.store.job_get(job_id)

    def jobs(self, where: JobFilter | None = None, limit: int = 100, offset: int = 0) -> list[Job]:
        return self.store.jobs_list(where or JobFilter(), limit, offset)

    def cancel(self, job_id: int) -> Job:
        """Cancel a job: a waiting one at once, a running one at its worker's next heartbeat."""
        return self.store.job_cancel(job_id)

    def replay(self, where: JobFilter | None = None) -> int:
        """Put dead jobs (or, with ``where.state``, cancelled ones) back to pending."""
        where = where or JobFilter(state=JobState.DEAD)
        return self.store.jobs_replay(where, self.aging_s(where.queue))

    def discard(self, where: JobFilter | None = None) -> int:
        """Delete dead jobs matching ``where``."""
        return self.store.jobs_discard(where or JobFilter(state=JobState.DEAD))

    def prune(self, older_than: float | timedelta, include_dead: bool = False) -> int:
        """Delete finished jobs older than ``older_than`` (seconds or a timedelta)."""
        seconds = older_than.total_seconds() if isinstance(older_than, timedelta) else older_than
        states = [JobState.SUCCEEDED, JobState.CANCELLED] + (
            [JobState.DEAD] if include_dead else []
        )
        return self.store.jobs_prune(seconds, states)

    def queue_pause(self, name: str) -> None:
        self.store.queue_pause(name)

    def queue_resume(self, name: str) -> None:
        self.store.queue_resume(name)

    def queue_capacity(
        self, name: str, capacity: int | None, priority: Priority | str | None = None
    ) -> None:
        """Cap how many jobs may wait or run in ``name`` (None removes the cap). With
        ``priority``, cap only that priority's jobs; see `tailrace.engine.capacity`."""
        if capacity is not None and capacity < 1:
            raise TailraceError(f"capacity must be at least 1, not {capacity}")
        prio = Priority.parse(priority) if priority is not None else None
        self.store.queue_set_capacity(name, capacity, prio)

    def pool_pause(self, name: str) -> None:
        """Workers of pool ``name`` stop claiming jobs and firing schedules; running jobs
        finish. Takes effect at their next claim, without a restart."""
        self.store.pool_set_paused(name, True)

    def pool_resume(self, name: str) -> None:
        self.store.pool_set_paused(name, False)

    def pools(self) -> list[PoolInfo]:
        return self.store.pools_list()

    def queues(self) -> list[QueueInfo]:
        return self.store.queues_list()

    def stats(self) -> list[QueueStats]:
        return self.store.queues_stats()
