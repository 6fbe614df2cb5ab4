"""The dialect: which database a URL names, parameters in SQLite's form, stored times."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tailrace.db import Dialect
from tailrace.errors import ConfigurationError


def test_a_url_names_its_dialect() -> None:
    assert Dialect.of("postgresql://h/db") is Dialect.POSTGRES
    assert Dialect.of("postgres://h/db") is Dialect.POSTGRES
    assert Dialect.of("sqlite:///x.db") is Dialect.SQLITE
    with pytest.raises(ConfigurationError, match="mysql"):
        Dialect.of("mysql://h/db")


def test_parameters_are_written_once_in_psycopg_form() -> None:
    sql = "SELECT %(a)s, '%%', %(b_2)s"
    assert Dialect.POSTGRES.sql(sql) == sql
    assert Dialect.SQLITE.sql(sql) == "SELECT :a, '%', :b_2"


def test_times() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    assert Dialect.POSTGRES.timestamp(when) is when
    assert Dialect.SQLITE.timestamp(when) == when.timestamp()
    assert Dialect.SQLITE.datetime(when.timestamp()) == when
    assert Dialect.SQLITE.timestamp(None) is None and Dialect.SQLITE.datetime(None) is None
