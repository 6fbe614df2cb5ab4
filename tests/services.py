"""Access to the real services tests use, and the rule for when one is missing:
skip locally with the reason, fail under CI=true."""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import psycopg
import pytest

PG_BASE_URL = os.environ.get("TAILRACE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(service: str, reason: str) -> None:
    message = f"{service} unavailable: {reason}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true makes service-backed tests mandatory)")
    pytest.skip(message)


_pg_error: str | None = None
_pg_checked = False


def postgres_error() -> str | None:
    global _pg_error, _pg_checked
    if not _pg_checked:
        _pg_checked = True
        try:
            psycopg.connect(PG_BASE_URL, connect_timeout=3).close()
        except psycopg.Error as exc:
            _pg_error = f"cannot connect to {PG_BASE_URL}: {str(exc).strip()}"
    return _pg_error


def schema_url(schema: str) -> str:
    sep = "&" if "?" in PG_BASE_URL else "?"
    return f"{PG_BASE_URL}{sep}options={quote(f'-csearch_path={schema}')}"


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A fresh schema for one test; yields a URL whose search_path points at it."""
    error = postgres_error()
    if error:
        missing("PostgreSQL", error)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_BASE_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield schema_url(schema)
    finally:
        with psycopg.connect(PG_BASE_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database for one test, for what a schema does not isolate: VACUUM keeps the
    rows that an open transaction anywhere in the same database may still see, and the
    tests running beside this one (xdist's other worker) hold such transactions."""
    error = postgres_error()
    if error:
        missing("PostgreSQL", error)
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_BASE_URL, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield PG_BASE_URL.split("?")[0].rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_BASE_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


# -- processes the tests start themselves (moto, Tansu) -----------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL if it is still there after `timeout` seconds; reaped either way."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait(timeout=timeout)
