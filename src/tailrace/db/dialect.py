"""The two databases tailrace runs on, and what differs between them for the stores:
which one a URL names, how parameters are written, how times are stored."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from ..errors import ConfigurationError

_PARAM = re.compile(r"%\((\w+)\)s|%%")


class Dialect(StrEnum):
    POSTGRES = "postgres"  # many machines; times are timestamptz
    SQLITE = "sqlite"  # embedded, one file; times are epoch seconds (REAL), UTC

    @classmethod
    def of(cls, url: str) -> Dialect:
        """``postgresql://…`` (or ``postgres://``) or ``sqlite:///path``."""
        if url.startswith(("postgresql://", "postgres://")):
            return cls.POSTGRES
        if url.startswith("sqlite:"):
            return cls.SQLITE
        raise ConfigurationError(
            f"unsupported database URL {url.split('://')[0]!r}://…: "
            "expected postgresql://… or sqlite:///path"
        )

    def sql(self, text: str) -> str:
        """SQL written with psycopg's ``%(name)s`` parameters (and ``%%`` for a percent
        sign), in this dialect's form (SQLite's ``:name`` and ``%``). Shared query files are
        written once, in psycopg's form."""
        if self is Dialect.POSTGRES:
            return text
        return _PARAM.sub(lambda m: f":{m[1]}" if m[1] else "%", text)

    def timestamp(self, value: datetime | None) -> Any:
        """A time as this dialect stores it."""
        if value is None or self is Dialect.POSTGRES:
            return value
        return value.timestamp()

    def datetime(self, value: Any) -> datetime | None:
        """A stored time back as an aware datetime."""
        if value is None or isinstance(value, datetime):
            return value
        return datetime.fromtimestamp(float(value), UTC)

    def now(self) -> Any:
        return self.timestamp(datetime.now(UTC))
