"""A PostgreSQL cluster of the test's own, on its own port, that the test can restart, stop,
start and freeze: the database faults of tests/integration/postgres/test_db_faults_*.py.

The shared server at 127.0.0.1:5432 is never touched. `initdb` refuses to run as root, so as
root the cluster runs as the `postgres` user (in a directory it owns); trust auth, no fsync
(the faults here are restarts and stops, not power cuts: a fast shutdown writes everything).
Missing binaries or user: skip with the reason (fail under CI=true, see tests/services.py).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from tests.services import free_port, missing
from tests.waiting import wait_until

BIN_DIR = Path(os.environ.get("TAILRACE_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


class Cluster:
    def __init__(self, root: Path, port: int, user: str | None) -> None:
        self.root = root
        self.data = root / "data"
        self.port = port
        self.user = user  # run the server as this user (None: as ourselves)
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        self._frozen: list[int] = []

    # -- running the binaries -----------------------------------------------------------------

    def _cmd(self, *args: str, timeout: float = 120.0) -> str:
        argv = [str(BIN_DIR / args[0]), *args[1:]]
        if self.user is not None:
            argv = ["runuser", "-u", self.user, "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {done.stdout}{done.stderr}")
        return done.stdout

    def init(self) -> None:
        self._cmd("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\n"
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.root}'\n"
                "fsync = off\nfull_page_writes = off\n"
                "max_connections = 200\nshared_buffers = 64MB\n"
                "log_min_messages = warning\n"
            )

    def start(self) -> None:
        self._cmd("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-w", "start")

    def stop(self) -> None:
        self._cmd("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        """`pg_ctl restart -m fast`: every connection is cut, the server is back at once."""
        self._cmd(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "log"),
            "-m",
            "fast",
            "-w",
            "restart",
        )

    def running(self) -> bool:
        try:
            psycopg.connect(self.url, connect_timeout=2).close()
        except psycopg.Error:
            return False
        return True

    # -- freezing -----------------------------------------------------------------------------

    def _pids(self) -> list[int]:
        """The postmaster and every process it started (backends, background workers)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(
            ["pgrep", "-P", str(postmaster)], capture_output=True, text=True
        ).stdout.split()
        return [postmaster, *(int(pid) for pid in children)]

    def freeze(self) -> None:
        """SIGSTOP the server: connections stay open, nothing answers."""
        self._frozen = self._pids()
        for pid in self._frozen:
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self._frozen:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self._frozen = []

    @contextmanager
    def frozen(self) -> Iterator[None]:
        self.freeze()
        try:
            yield
        finally:
            self.thaw()

    # -- databases ----------------------------------------------------------------------------

    def database(self, name: str) -> str:
        """A fresh database in this cluster; returns its URL."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def destroy(self) -> None:
        self.thaw()
        try:
            self._cmd("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=60)
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.root, ignore_errors=True)


def _server_user() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        missing("PostgreSQL cluster", "running as root and there is no 'postgres' user for initdb")
    return "postgres"


@contextmanager
def own_cluster() -> Iterator[Cluster]:
    if not (BIN_DIR / "initdb").exists():
        missing("PostgreSQL cluster", f"no initdb in {BIN_DIR} (set TAILRACE_TEST_PG_BIN)")
    user = _server_user()
    root = Path(tempfile.mkdtemp(prefix="tailrace-pg-"))
    if user is not None:
        shutil.chown(root, user)
    cluster = Cluster(root, free_port(), user)
    try:
        try:
            cluster.init()
            cluster.start()
            wait_until(cluster.running, 60, "the test's PostgreSQL cluster to accept connections")
        except (RuntimeError, OSError, subprocess.TimeoutExpired, AssertionError) as exc:
            missing("PostgreSQL cluster", f"could not create one in {root}: {exc}")
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="module")
def pg_cluster() -> Iterator[Cluster]:
    """One cluster per test module (its start costs a few seconds)."""
    with own_cluster() as cluster:
        yield cluster


@pytest.fixture
def cluster_url(pg_cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database in the module's cluster, up and thawed for each test."""
    if not pg_cluster.running():
        pg_cluster.thaw()
        if not pg_cluster.running():
            pg_cluster.start()
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:50].lower()
    yield pg_cluster.database(name)
    pg_cluster.thaw()
