"""Running real worker processes from tests, and waiting on them without bare sleeps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from tailrace import App, Job, JobFilter, JobState
from tests.waiting import wait_until

from .tasks_app import CRON_ENV

__all__ = ["wait_until"]  # the e2e tests take it from here

REPO_ROOT = Path(__file__).resolve().parents[2]
APP_SPEC = "tests.e2e.tasks_app:app"
# the CLI through the interpreter running the tests (there is no ``python -m tailrace`` yet)
CLI = [sys.executable, "-c", "from tailrace.cli import main; main()"]


def read_ids(path: Path) -> list[int]:
    """The job ids recorded in one record file, in order (empty if it does not exist)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    # a record is written by one write() call, so a partial last line cannot be seen
    return [int(line) for line in text.splitlines() if line]


def duplicates(ids: Sequence[int]) -> dict[int, int]:
    return {i: n for i, n in Counter(ids).items() if n > 1}


class WorkerProcess:
    """One ``tailrace worker`` process, its stderr captured to a file."""

    def __init__(self, popen: subprocess.Popen[bytes], name: str, log_path: Path, log: IO[bytes]):
        self.popen = popen
        self.name = name
        self.log_path = log_path
        self._log = log

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def send(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 25) -> str:
        body = "\n".join(self.text().splitlines()[-lines:])
        state = "running" if self.alive() else f"exited {self.popen.returncode}"
        return f"--- {self.name} (pid {self.pid}, {state}) stderr tail ---\n{body}"

    def logs(self) -> list[dict[str, Any]]:
        """The structured log entries (non-JSON lines, e.g. a traceback, are skipped)."""
        entries = []
        for line in self.text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                entries.append(entry)
        return entries

    def logged(self, msg: str) -> list[dict[str, Any]]:
        return [e for e in self.logs() if e.get("message", e.get("msg")) == msg]

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.name} did not exit within {timeout} s\n{self.tail()}"
            ) from None

    def worker_pids(self) -> list[int]:
        """The pids of the worker loops this process ran: itself, or its ``-p`` children
        (read from their worker ids, ``host:pid:suffix``)."""
        return [int(str(e["worker_id"]).split(":")[-2]) for e in self.logged("worker started")]

    def stop(self) -> None:
        """Teardown: SIGKILL it and any ``-p`` children still running, reap, close the log."""
        try:
            for pid in self.worker_pids():
                if pid != self.pid and _is_tailrace(pid):
                    _kill(pid)
            if self.alive():
                _kill(self.pid)
            self.popen.wait(10)
        finally:
            self._log.close()


def _is_tailrace(pid: int) -> bool:
    """Still a process of ours (not a reused pid)?"""
    try:
        return b"tailrace" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class Harness:
    """A store URL, a record directory, a test-side App and the worker processes of one test."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        self.url = url
        self.tmp_path = tmp_path
        self.record_dir = tmp_path / "records"
        self.record_dir.mkdir()
        self.app = App(url)  # migrates on first use, before any worker starts
        self.app.store  # noqa: B018 - open and migrate now
        self.workers: list[WorkerProcess] = []
        self.is_postgres = url.startswith(("postgresql://", "postgres://"))
        # tags every PostgreSQL connection the workers of this test open
        self.application_name = f"tailrace_e2e_{uuid.uuid4().hex[:10]}"

    # -- processes --------------------------------------------------------------------------

    def env(self, extra: dict[str, str] | None = None, url: str | None = None) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("WORKER_PRIORITY_FILTER", CRON_ENV, "TAILRACE_APP", "DATABASE_URL")
        }
        env.update(
            TAILRACE_DATABASE_URL=url or self.worker_url,
            TAILRACE_E2E_RECORD_DIR=str(self.record_dir),
            PYTHONUNBUFFERED="1",
        )
        env.update(extra or {})
        return env

    @property
    def worker_url(self) -> str:
        if not self.is_postgres:
            return self.url
        sep = "&" if "?" in self.url else "?"
        return f"{self.url}{sep}application_name={self.application_name}"

    def start_worker(
        self, *args: str, env: dict[str, str] | None = None, name: str | None = None
    ) -> WorkerProcess:
        """``tailrace --app tests.e2e.tasks_app:app worker ARGS`` in the repository root."""
        name = name or f"worker{len(self.workers) + 1}"
        log_path = self.tmp_path / f"{name}.stderr"
        log = log_path.open("wb")
        popen = subprocess.Popen(
            [*CLI, "--app", APP_SPEC, "worker", *args],
            cwd=REPO_ROOT,
            env=self.env(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        worker = WorkerProcess(popen, name, log_path, log)
        self.workers.append(worker)
        return worker

    def cli(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        """Run one ``tailrace`` command to completion."""
        return subprocess.run(
            [*CLI, *args],
            cwd=REPO_ROOT,
            env=self.env(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def wait_started(self, *workers: WorkerProcess, timeout: float = 20.0) -> None:
        for w in workers:
            wait_until(
                lambda w=w: w.logged("worker started") or not w.alive(),
                timeout,
                lambda w=w: f"{w.name} never logged 'worker started'\n{w.tail()}",
            )
            assert w.alive(), f"{w.name} died while starting\n{w.tail()}"

    def tails(self) -> str:
        return "\n".join(w.tail() for w in self.workers)

    def close(self) -> None:
        try:
            for w in self.workers:
                w.stop()
        finally:
            self.app.close()

    # -- what happened ----------------------------------------------------------------------

    def ids(self, kind: str = "runs") -> list[int]:
        return read_ids(self.record_dir / f"{kind}.log")

    def job(self, job_id: int) -> Job:
        return self.app.job(job_id)

    def jobs(self, ids: Sequence[int]) -> list[Job]:
        found = self.app.jobs(JobFilter(ids=tuple(ids)), limit=len(ids) + 1)
        assert len(found) == len(ids), f"asked for {len(ids)} jobs, found {len(found)}"
        return sorted(found, key=lambda j: j.id)

    def counts(self) -> Counter[JobState]:
        """Jobs per state, over every queue and priority."""
        counts: Counter[JobState] = Counter()
        for s in self.app.stats():
            counts[s.state] += s.count
        return counts

    def states(self, ids: Sequence[int]) -> dict[int, JobState]:
        return {j.id: j.state for j in self.jobs(ids)}

    def all_in(self, ids: Sequence[int], state: JobState) -> bool:
        return all(s is state for s in self.states(ids).values())

    def wait_state(
        self, ids: Sequence[int], state: JobState, timeout: float, what: str = ""
    ) -> None:
        def describe() -> str:
            states = self.states(ids)
            off = {i: s.value for i, s in states.items() if s is not state}
            shown = dict(list(off.items())[:10])
            return (
                f"{what or 'jobs'}: {len(off)} of {len(ids)} not {state.value} "
                f"(e.g. {shown})\n{self.tails()}"
            )

        wait_until(lambda: self.all_in(ids, state), timeout, describe, interval=0.1)
