"""The migration lines as files: numbered without gaps, the same files for both dialects
where a line has both, and readable without importing the packages that own them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tailrace.db.dialect import Dialect
from tailrace.db.migrations import LINES, Line, line_migrations


@pytest.mark.parametrize("line", LINES, ids=[line.name for line in LINES])
def test_each_line_is_numbered_from_one_without_gaps(line: Line) -> None:
    for dialect in Dialect:
        versions = [m.version for m in line_migrations(line, dialect)]
        assert versions == list(range(1, len(versions) + 1)), (dialect, versions)


def test_a_line_with_both_dialects_has_the_same_files_in_each() -> None:
    both = 0
    for line in LINES:
        pg = [(m.version, m.name) for m in line_migrations(line, Dialect.POSTGRES)]
        lite = [(m.version, m.name) for m in line_migrations(line, Dialect.SQLITE)]
        assert pg, f"{line.name} has no PostgreSQL migrations"
        if lite:
            both += 1
            assert pg == lite, line.name
    assert both == 4  # the streams need PostgreSQL; every other line runs on both


PROBE = """
import sys
from tailrace import App
app = App(sys.argv[1])
assert app.store.migrations_pending() == []
loaded = sorted(m for m in sys.modules if m.startswith(("psycopg", "fastapi", "tailrace.api",
                "tailrace.streams", "tailrace.objects", "tailrace.pipeline")))
print(",".join(loaded))
"""


def test_migrating_sqlite_loads_no_other_package_and_no_psycopg(tmp_path: Path) -> None:
    found = subprocess.run(
        [sys.executable, "-c", PROBE, f"sqlite:///{tmp_path}/t.db"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert found.stdout.strip() == ""


def test_every_migration_file_in_the_package_belongs_to_a_line() -> None:
    """A file left where the numbered layout kept them (``engine/store/postgres/migrations/``)
    or misnamed would never be applied: it must fail here instead."""
    import tailrace

    root = Path(tailrace.__file__).parent
    known = {
        root.joinpath(*line.folder.split("/"), dialect.value)
        for line in LINES
        for dialect in Dialect
    }
    files = [p for p in root.rglob("*.sql") if "migrations" in p.relative_to(root).parts]
    assert files
    strays = [str(p.relative_to(root)) for p in files if p.parent not in known]
    numbered = re.compile(r"\d{4}_\w+\.sql")
    misnamed = [str(p.relative_to(root)) for p in files if not numbered.fullmatch(p.name)]
    assert strays == [] and misnamed == []
