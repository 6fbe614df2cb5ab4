"""The operator's pages in headless Chromium against `tailrace serve` on PostgreSQL, with real
engine jobs run by a real worker: the engine jobs list (filters, search, keyset pages, live
rows, bulk actions with their confirmation), one job (arguments, timings, dedup key, every
attempt's error and traceback), the queues (due apart from scheduled, reprocessing queues
apart, history from the server), the workers, dark mode and button contrast. A screenshot of
each page goes to tests/artifacts/ (or $TAILRACE_ARTIFACTS)."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tailrace import App, JobSpec, JobState, RetryPolicy
from tailrace.engine.worker import Worker, WorkerOptions

from .support import wait_until
from .test_ui_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    TOKEN,
    Server,
    artifacts_dir,
    browser_type,  # noqa: F401  (a fixture)
    pg_server,  # noqa: F401  (a fixture)
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SECONDS = re.compile(r"^\d[\d.]* ?[smh]")  # 0.077 s, 12s, 1m 5s
NO_VALUE = "\u2013"  # the pages' en dash for a value that is not known


class Jobs:
    """The engine jobs the pages show, run by a real worker in a thread (Playwright's sync
    API keeps an event loop in the test's own thread)."""

    def __init__(self, url: str) -> None:
        self.app = App(url, retry=RetryPolicy(base_s=0.01, max_s=0.05))
        self.release = threading.Event()
        app = self.app

        @app.task(name="ops.ok")
        def ok(n: int) -> None:
            pass

        @app.task(name="ops.boom", max_attempts=2)
        def boom(reason: str) -> None:
            raise ValueError(f"the report could not be built: {reason}")

        @app.task(name="ops.hold")
        def hold() -> None:
            self.release.wait(120)

        self.worker = Worker(
            app, WorkerOptions(queues=["ops"], concurrency=4, heartbeat_s=0.5, poll_s=0.05)
        )
        self.thread = threading.Thread(target=self.worker.run, name="ops-worker")

    def start(self) -> None:
        self.thread.start()

    def run_burst(self, queue: str) -> None:
        worker = Worker(self.app, WorkerOptions(queues=[queue], burst=True, poll_s=0.05))
        thread = threading.Thread(target=worker.run, name=f"burst-{queue}")
        thread.start()
        thread.join(60)
        assert not thread.is_alive(), f"the burst worker of {queue} did not finish"

    def stop(self) -> None:
        self.release.set()
        self.worker.stop()
        self.thread.join(60)
        self.app.close()


def contrast(page: Any, selector: str) -> float:
    """WCAG contrast ratio of an element's text against its own background colour."""
    ratio: float = page.eval_on_selector(
        selector,
        """(node) => {
          const rgb = (c) => c.match(/\\d+(\\.\\d+)?/g).slice(0, 3).map(Number);
          const lum = ([r, g, b]) => {
            const f = (v) => {
              v /= 255;
              return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
            };
            return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
          };
          const s = getComputedStyle(node);
          const a = lum(rgb(s.color)), b = lum(rgb(s.backgroundColor));
          return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
        }""",
    )
    return ratio


def test_operator_pages(pg_server: Server, browser_type: Any) -> None:  # noqa: F811
    from playwright.sync_api import expect

    shots = artifacts_dir()
    jobs = Jobs(pg_server.database_url)
    app = jobs.app
    # finished jobs for the list's pages, dead ones with tracebacks, jobs due later
    ok_ids = app.enqueue_many([JobSpec("ops.ok", {"n": n}, queue="ops") for n in range(120)])
    boom_id = app.enqueue("ops.boom", {"reason": "disk full"}, queue="ops", dedup_key="boom-1")
    bulk_ids = app.enqueue_many([JobSpec("ops.boom", {"reason": "b"}, queue="bulkq")] * 3)
    later = datetime.now(UTC) + timedelta(hours=2)
    app.enqueue_many([JobSpec("ops.ok", {"n": 0}, queue="later", run_at=later)] * 5)
    app.enqueue("ops.ok", {"n": 1}, queue="reprocess:demo1")  # a reprocessing job's own queue
    jobs.start()
    jobs.run_burst("bulkq")
    wait_until(
        lambda: (
            app.job(boom_id).state is JobState.DEAD
            and all(app.job(i).state is JobState.SUCCEEDED for i in ok_ids)
        ),
        60,
        "the worker never finished the first jobs",
    )
    held = app.enqueue("ops.hold", queue="ops")
    wait_until(lambda: app.job(held).state is JobState.RUNNING, 30, "the held job never ran")
    # two minutes of history from before the page opens: the chart must show them
    with psycopg.connect(pg_server.database_url, autocommit=True) as conn:
        for minutes in (5, 4, 3):
            conn.execute(
                "INSERT INTO tailrace_queue_history VALUES "
                "(date_trunc('minute', now()) - make_interval(mins => %s), 'ops',"
                " 0, 0, 1, 1, %s, 0, 0.01, 0.05)",
                (minutes, 40 * minutes),
            )

    browser = browser_type.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    page_errors: list[str] = []
    dialogs: list[str] = []
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    page.on("console", lambda m: page_errors.append(m.text) if m.type == "error" else None)

    def accept(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    try:
        page.goto(pg_server.base + "/ui/engine")
        page.fill("#token", TOKEN)
        page.click("button[type=submit]")
        expect(page).to_have_url(pg_server.base + "/ui/engine")

        # -- the list: newest first, keyset pages -------------------------------------------
        page.select_option("#f-state", "succeeded")
        page.fill("#f-queue", "ops")
        page.click("#filters button[type=submit]")
        rows = page.locator("#engine-jobs tbody tr[data-job-id]")
        expect(rows).to_have_count(50)
        expect(rows.first).to_have_attribute("data-job-id", str(max(ok_ids)))
        page.screenshot(path=str(shots / "engine-jobs.png"), full_page=True)
        page.click("#older")
        expect(rows.first).to_have_attribute("data-job-id", str(sorted(ok_ids)[-51]))
        page.click("#older")
        expect(rows).to_have_count(20)
        expect(rows.last).to_have_attribute("data-job-id", str(min(ok_ids)))
        expect(page.locator("#older")).to_be_disabled()

        # -- search by dedup key, then the job page -----------------------------------------
        page.select_option("#f-state", "")
        page.fill("#f-queue", "")
        page.fill("#f-q", "boom-1")
        page.click("#filters button[type=submit]")
        expect(rows).to_have_count(1)
        expect(rows.first.locator(".badge").first).to_have_text("dead")
        rows.first.locator(f'a[href="/ui/engine/jobs/{boom_id}"]').click()
        expect(page).to_have_url(f"{pg_server.base}/ui/engine/jobs/{boom_id}")
        expect(page.locator("#job-state .badge")).to_have_text("dead")
        expect(page.locator('#details [data-field="dedup"] td')).to_have_text("boom-1")
        expect(page.locator("#args")).to_contain_text('"reason": "disk full"')
        attempts = page.locator("#attempts .attempt")
        expect(attempts).to_have_count(2)
        expect(attempts.nth(1).locator(".error")).to_have_text(
            "ValueError: the report could not be built: disk full"
        )
        attempts.nth(1).locator("summary").click()
        expect(attempts.nth(1).locator("pre.traceback")).to_contain_text("in boom")
        expect(page.locator('#timings [data-field="waited"] td')).to_have_text(
            re.compile(r"^\d[\d.]* ?[smh]")
        )
        expect(page.locator('#timings [data-field="ran"] td')).to_have_text(
            re.compile(r"^\d[\d.]* ?[smh]")
        )
        expect(page.locator("#retry")).to_be_enabled()
        expect(page.locator("#cancel")).to_be_disabled()
        page.screenshot(path=str(shots / "engine-job.png"), full_page=True)

        # -- bulk retry, then cancel, by filter, each counted and confirmed ------------------
        pg_server.api("POST", "/api/admin/queues/bulkq/pause")  # the retried jobs stay put
        page.goto(pg_server.base + "/ui/engine?queue=bulkq&state=dead")
        expect(rows).to_have_count(3)
        page.click('[data-bulk="retry"]')
        expect(page.locator(".toast.ok").last).to_have_text("retry: 3 jobs")
        assert dialogs[-1].startswith("Retry 3 jobs (state=dead, queue=bulkq)"), dialogs
        expect(rows).to_have_count(0)  # none dead any more: the list follows by itself
        states = {pg_server.api("GET", f"/api/admin/jobs/{i}")["state"] for i in bulk_ids}
        assert states == {"pending"}
        page.select_option("#f-state", "")
        page.click("#filters button[type=submit]")
        page.click('[data-bulk="cancel"]')
        expect(page.locator(".toast.ok").last).to_have_text("cancel: 3 jobs")
        assert dialogs[-1].startswith("Cancel 3 jobs (queue=bulkq)"), dialogs
        expect(rows.locator(".badge.cancelled")).to_have_count(3)

        # -- live: a job enqueued now appears without a reload ---------------------------------
        page.fill("#f-queue", "live")
        page.click("#filters button[type=submit]")
        expect(page.locator("#engine-jobs tbody")).to_have_text("No jobs match.")
        new_id = app.enqueue("ops.ok", {"n": 7}, queue="live")
        expect(page.locator(f'#engine-jobs tr[data-job-id="{new_id}"]')).to_be_visible()

        # -- queues: due apart from scheduled, reprocessing queues apart, history ------------
        page.click("nav >> text=Queues")
        later_card = page.locator('.queue[data-queue="later"]')
        expect(later_card.locator('[data-counter="scheduled"] .value')).to_have_text("5")
        expect(later_card.locator('[data-counter="pending"] .value')).to_have_text("0")
        ops_card = page.locator('.queue[data-queue="ops"]')
        expect(ops_card.locator('[data-counter="running"] .value')).to_have_text("1")
        expect(ops_card.locator('tr[data-priority="DEFAULT"] [data-state="p95"]')).not_to_have_text(
            NO_VALUE
        )
        expect(page.locator('.queue[data-queue="reprocess:demo1"]')).to_have_count(0)
        expect(page.locator('#internal-queues tr[data-queue="reprocess:demo1"]')).to_contain_text(
            "demo1"
        )
        chart = page.locator("#history-chart")
        expect(chart).to_have_attribute("data-points", re.compile(r"^[3-9]$"))
        page.reload()  # the history is the server's: it survives a reload
        expect(chart).to_have_attribute("data-points", re.compile(r"^[3-9]$"))
        pause = '.queue[data-queue="ops"] button[data-action="pause"]'
        expect(page.locator(pause)).to_be_visible()  # the cards render after the chart
        assert contrast(page, pause) >= 4.5
        page.screenshot(path=str(shots / "queues-operator.png"), full_page=True)

        # -- workers: the running engine worker, with its job in flight ------------------------
        page.click("nav >> text=Workers")
        worker_row = page.locator(f'#engine-workers tr[data-worker-id="{jobs.worker.id}"]')
        expect(worker_row).to_contain_text("ops")
        expect(worker_row.locator('[data-field="in-flight"]')).to_have_text("1")
        expect(worker_row.locator(".badge")).to_have_text("active")
        page.screenshot(path=str(shots / "workers.png"), full_page=True)

        # -- dark mode: the system's choice, with readable buttons ------------------------------
        dark = browser.new_context(viewport={"width": 1360, "height": 900}, color_scheme="dark")
        dark.add_cookies(context.cookies())
        dark_page = dark.new_page()
        dark_page.goto(pg_server.base + "/ui/queues")
        expect(dark_page.locator('.queue[data-queue="ops"]')).to_be_visible()
        background = dark_page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(11, 17, 32)", background
        expect(dark_page.locator(pause)).to_be_visible()
        assert contrast(dark_page, pause) >= 4.5
        dark_page.screenshot(path=str(shots / "queues-dark.png"), full_page=True)
        dark.close()
    except BaseException:
        print(pg_server.log_tail())
        print("page errors:", page_errors)
        try:
            page.screenshot(path=str(shots / "operator-failure.png"), full_page=True)
        except Exception as exc:
            print(f"no failure screenshot: {exc}")
        raise
    finally:
        context.close()
        browser.close()
        jobs.stop()
    assert not page_errors, f"script errors on the pages: {page_errors}"
