"""The settings of reference 003's S3 ingestor, read for `tailrace ingest`: ``DB_HOST``,
``DB_PORT``, ``DB_USERNAME``, ``DB_PASSWORD`` and ``DB_DATABASE`` (or ``DB_NAME``) name the
database; ``AWS_REGION`` and ``AWS_ENDPOINT`` the S3 store.

Where an ingest keeps its record of files: an explicit database (``--database-url``,
``TAILRACE_DATABASE_URL``, ``DATABASE_URL``), else the PostgreSQL sink's own database, never
a local SQLite file beside a PostgreSQL sink (a CronJob pod loses that file, and with it the
record, at every run).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import quote

from tailrace.errors import ConfigurationError
from tailrace.pipeline.sinks.url import SinkKind, parse_sink_url
from tailrace.settings import DEFAULT_DATABASE_URL, current

#: The table reference 003's TypeORM entity `Log` lives in.
REFERENCE_TABLE = "log"
DB_NAME_VARIABLES = ("DB_DATABASE", "DB_NAME")

if TYPE_CHECKING:
    from tailrace.settings.model import Settings


@dataclass
class IngestEnvironment:
    """What the environment says, and the warnings about what it says but is not used."""

    sink: str | None = None
    warnings: list[str] = field(default_factory=list)


def sink_from_db_variables(env: Mapping[str, str]) -> IngestEnvironment:
    """The ``postgresql://`` sink (table `log`) that ``DB_*`` name; none without ``DB_HOST``."""
    found = IngestEnvironment()
    s = _settings(env)
    given = {
        "DB_PORT": s.ingest_db_port,
        "DB_USERNAME": s.ingest_db_username,
        "DB_PASSWORD": s.ingest_db_password,
        "DB_DATABASE": s.ingest_db_database,
        "DB_NAME": s.ingest_db_name,
    }
    host = s.ingest_db_host
    if not host:
        others = [n for n, v in given.items() if v]
        if others:
            found.warnings.append(f"{', '.join(others)} set without DB_HOST: not used")
        return found
    user = s.ingest_db_username
    if not user:
        raise ConfigurationError("DB_HOST is set but DB_USERNAME is not: set the database user")
    port = s.ingest_db_port or "5432"
    if not port.isdigit():
        raise ConfigurationError(f"DB_PORT={port!r}: expected a port number")
    names = {n: v for n in DB_NAME_VARIABLES if (v := given[n])}
    if len(set(names.values())) > 1:
        raise ConfigurationError(
            f"DB_DATABASE={names['DB_DATABASE']!r} and DB_NAME={names['DB_NAME']!r} differ:"
            " set one of them"
        )
    database = next(iter(names.values()), None)
    if database is None:
        database = user
        found.warnings.append(
            f"DB_DATABASE (or DB_NAME) is not set: using database {user!r}, PostgreSQL's"
            " default (named like DB_USERNAME)"
        )
    password = s.ingest_db_password
    credentials = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
    found.sink = (
        f"postgresql://{credentials}@{_host(host)}:{port}/{quote(database, safe='')}"
        f"?table={REFERENCE_TABLE}"
    )
    return found


def _settings(env: Mapping[str, str]) -> Settings:
    return current(None if env is os.environ else env)


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def choose_sink(given: str | None, env: Mapping[str, str]) -> IngestEnvironment:
    """`--sink` if given (with a warning when ``DB_*`` are set too: not used), else the
    sink ``DB_*`` name; an error if neither says where to write."""
    from_env = sink_from_db_variables(env)
    if given is None:
        if from_env.sink is None:
            raise ConfigurationError(
                "no sink: give --sink postgresql://… (or any sink URL), or set DB_HOST,"
                " DB_USERNAME, DB_PASSWORD and DB_DATABASE"
            )
        return from_env
    if from_env.sink is not None:
        from_env.warnings.append("DB_HOST and the other DB_* settings are not used: --sink wins")
    return IngestEnvironment(given, from_env.warnings)


def state_database(explicit: str | None, sink: str, env: Mapping[str, str]) -> tuple[str, str]:
    """The database for the record of files and the jobs, and why that one."""
    settings = _settings(env)
    if explicit or settings.origin("database_url") != "default":
        return explicit or settings.database_url, "configured"
    spec = parse_sink_url(sink)
    if spec.kind is SinkKind.POSTGRESQL and spec.dsn is not None:
        return spec.dsn, "the sink's database"
    return DEFAULT_DATABASE_URL, "the local default"


def apply_aws_region(env: dict[str, str] | os._Environ[str]) -> str | None:
    """boto3 reads ``AWS_DEFAULT_REGION``; reference 003 sets ``AWS_REGION``: it wins, and a
    different ``AWS_DEFAULT_REGION`` gets a warning (returned)."""
    region = _settings(env).aws_region
    if not region:
        return None
    other = env.get("AWS_DEFAULT_REGION")
    env["AWS_DEFAULT_REGION"] = region
    if other and other != region:
        return f"AWS_REGION={region!r} is used; AWS_DEFAULT_REGION={other!r} is not"
    return None
