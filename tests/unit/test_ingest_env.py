"""Reference 003's settings as `tailrace ingest` reads them (docs/coming-from/s3-ingestor.md)."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from tailrace.errors import ConfigurationError
from tailrace.pipeline.ingest import scope_of
from tailrace.pipeline.ingest_env import (
    apply_aws_region,
    choose_sink,
    sink_from_db_variables,
    state_database,
)
from tailrace.pipeline.sinks.url import parse_sink_url

DB = {"DB_HOST": "postgres", "DB_PORT": "5433", "DB_USERNAME": "app", "DB_PASSWORD": "p@ss:/w"}


def test_db_variables_name_the_sink_and_its_log_table() -> None:
    found = sink_from_db_variables({**DB, "DB_DATABASE": "logs"})
    assert found.warnings == []
    assert found.sink is not None
    spec = parse_sink_url(found.sink)
    assert spec.table == "log"
    assert spec.dsn == "postgresql://app:p%40ss%3A%2Fw@postgres:5433/logs"


@pytest.mark.parametrize("name", ["DB_DATABASE", "DB_NAME"])
def test_either_database_name_variable_is_read(name: str) -> None:
    found = sink_from_db_variables({**DB, name: "db1"})
    assert found.sink is not None and "/db1?table=log" in found.sink


def test_without_a_database_name_the_user_s_is_used_and_said() -> None:
    found = sink_from_db_variables({"DB_HOST": "h", "DB_USERNAME": "app"})
    assert found.sink == "postgresql://app@h:5432/app?table=log"
    assert found.warnings == [
        "DB_DATABASE (or DB_NAME) is not set: using database 'app', PostgreSQL's default"
        " (named like DB_USERNAME)"
    ]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DB_HOST": "h"}, "DB_USERNAME is not"),
        ({"DB_HOST": "h", "DB_USERNAME": "u", "DB_PORT": "x"}, "DB_PORT='x'"),
        ({**DB, "DB_DATABASE": "a", "DB_NAME": "b"}, "differ"),
    ],
)
def test_incomplete_or_contradictory_db_variables_are_refused(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        sink_from_db_variables(env)


def test_db_variables_never_go_unmentioned() -> None:
    assert sink_from_db_variables({"DB_USERNAME": "u"}).warnings == [
        "DB_USERNAME set without DB_HOST: not used"
    ]
    given = choose_sink("file:///tmp/out.ndjson", {**DB, "DB_DATABASE": "d"})
    assert given.sink == "file:///tmp/out.ndjson"
    assert given.warnings == ["DB_HOST and the other DB_* settings are not used: --sink wins"]
    with pytest.raises(ConfigurationError, match="no sink"):
        choose_sink(None, {})


def test_the_record_of_files_follows_a_postgresql_sink_unless_configured() -> None:
    sink = "postgresql://u@h:5432/d?table=log&sslmode=require"
    assert state_database(None, sink, {}) == (
        "postgresql://u@h:5432/d?sslmode=require",
        "the sink's database",
    )
    assert state_database(None, sink, {"DATABASE_URL": "postgresql://x/y"})[0] == (
        "postgresql://x/y"
    )
    assert state_database("sqlite:///s.db", sink, {})[0] == "sqlite:///s.db"
    assert state_database(None, "file:///o.ndjson", {})[1] == "the local default"


def test_aws_region_is_the_region_boto3_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    assert boto3.session.Session().region_name is None  # boto3 alone ignores AWS_REGION
    import os

    assert apply_aws_region(os.environ) is None
    assert boto3.session.Session().region_name == "eu-west-3"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    assert apply_aws_region(os.environ) == (
        "AWS_REGION='eu-west-3' is used; AWS_DEFAULT_REGION='us-east-1' is not"
    )


def test_the_scope_of_a_source_is_where_its_listing_names_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "logs").mkdir()
    monkeypatch.chdir(tmp_path)
    assert scope_of("logs") == ("", f"{tmp_path}/logs/")
    assert scope_of("./logs/") == ("", f"{tmp_path}/logs/")
    assert scope_of("logs/*.gz") == ("", f"{tmp_path}/logs/")
    assert scope_of("logs/a.json.gz") == ("", f"{tmp_path}/logs/a.json.gz")
    assert scope_of("s3://bucket/app/2025-*/x") == ("bucket", "app/")
    assert scope_of("s3://bucket") == ("bucket", "")
