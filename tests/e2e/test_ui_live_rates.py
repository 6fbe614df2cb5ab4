"""The reprocessing jobs list while a job runs, in headless Chromium against `tailrace serve`
on PostgreSQL: a real `tailrace reprocess` into a PostgreSQL table that takes its rows slowly
(a row trigger that waits), so the job stays running long enough for the list to measure it
between polls. Its row shows events/s measured now (not the run's average) and an ETA that
moves as the job goes on."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from tailrace.pipeline.sinks.postgres.sink import PostgresSink
from tests.services import stop_process

from .support import REPO_ROOT
from .test_ui_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    CLI,
    TOKEN,
    Server,
    browser_type,  # noqa: F401  (a fixture)
    pg_server,  # noqa: F401  (a fixture)
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

DURATION = re.compile(r"^\d+(s|m \d+s)$")
RATE = re.compile(r"^\d+(\.\d)?k?/s$")


def _slow_table(url: str, table: str) -> None:
    """The sink's table, made as the sink makes it, then slowed down: one row in ten waits a
    millisecond as it is inserted, as a busy database would make it."""
    PostgresSink(url, table).close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION slow_row() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN IF random() < 0.1 THEN PERFORM pg_sleep(0.001); END IF; RETURN NEW; END $$"
        )
        conn.execute(
            f"CREATE TRIGGER slow_rows BEFORE INSERT ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION slow_row()"
        )


def _ndjson(path: Path, lines: int) -> None:
    path.parent.mkdir(parents=True)
    with path.open("wb") as out:
        for n in range(lines):
            event = {"messageId": f"m{n}", "timestamp": "2025-04-01T18:34:01.581Z", "n": n}
            out.write(orjson.dumps({**event, "message": "Processing GET request"}) + b"\n")


def test_a_running_job_shows_its_rate_now_and_a_moving_eta(
    pg_server: Server,  # noqa: F811
    browser_type: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    url = pg_server.database_url
    _slow_table(url, "live_logs")
    # half a minute of work or more at the slowed pace (stopped once seen enough), in
    # NDJSON: read a chunk at a time, so the bytes done move with the lines
    _ndjson(tmp_path / "logs" / "api.ndjson", lines=100_000)
    sink = f"{url}&table=live_logs"
    args = ["reprocess", str(tmp_path / "logs"), "--sink", sink, "--checkpoint-every", "0.2"]
    log = tmp_path / "reprocess.log"
    with log.open("wb") as output:  # a file, not a pipe nobody reads: it never fills
        process = subprocess.Popen(
            [*CLI, *args, "--workers", "1"],
            cwd=tmp_path,
            env={**os.environ, "TAILRACE_DATABASE_URL": url, "PYTHONPATH": str(REPO_ROOT / "src")},
            stdout=output,
            stderr=subprocess.STDOUT,
        )

    browser = browser_type.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    page_errors: list[str] = []
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    try:
        page.goto(pg_server.base + "/")
        page.fill("#token", TOKEN)
        page.click("button[type=submit]")
        row = page.locator('#jobs tr[data-status="running"]')
        expect(row).to_have_count(1, timeout=15_000)
        rate = row.locator('[data-field="rate"]')
        eta = row.locator('[data-field="eta"]')
        # measured between two polls (not the run's average, which is shown muted)
        expect(rate).to_have_text(RATE, timeout=10_000)
        expect(rate).not_to_have_class(re.compile(r"\bmuted\b"), timeout=10_000)
        expect(rate).to_have_attribute("title", "now (smoothed over the last polls)")
        expect(eta).to_have_text(DURATION)
        expect(eta).to_have_attribute("title", "at the current rate")
        first = eta.inner_text()
        # live: the next polls give another estimate, the job still running
        expect(eta).not_to_have_text(first, timeout=10_000)
        expect(eta).to_have_text(DURATION)
        expect(row.locator(".badge").first).to_have_text("running")
    except BaseException:
        print(pg_server.log_tail())
        print(log.read_text(errors="replace")[-3000:])
        print("page errors:", page_errors)
        print(pg_server.api("GET", "/api/admin/reprocessing/jobs"))
        raise
    finally:
        stop_process(process, 10)
        browser.close()
    assert not page_errors, f"script errors on the page: {page_errors}"
