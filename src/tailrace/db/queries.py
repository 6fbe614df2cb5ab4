"""Named SQL blocks, loaded from the ``.sql`` files that sit beside the code that runs them."""

from __future__ import annotations

import re
from importlib import resources

from .dialect import Dialect

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def load_queries(
    package: str, filename: str = "queries.sql", dialect: Dialect = Dialect.POSTGRES
) -> dict[str, str]:
    """Split a file of ``-- name: foo`` blocks into {"foo": "SQL..."}.

    A file shared by both dialects is written with psycopg's ``%(name)s`` parameters;
    ``dialect=Dialect.SQLITE`` gives them in SQLite's ``:name`` form.
    """
    text = resources.files(package).joinpath(filename).read_text(encoding="utf-8")
    parts = _NAME.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        queries[name] = dialect.sql(body.strip().rstrip(";"))
    return queries
