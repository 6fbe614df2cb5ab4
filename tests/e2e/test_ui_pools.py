"""Worker pools on the dashboard, in headless Chromium against `tailrace serve` on PostgreSQL
with real `tailrace worker --pool` processes: the queues page lists each pool with its live
workers and pauses it (after a confirmation) and resumes it, the paused workers really stop
claiming, and the workers page shows each worker's pool. Screenshots go to tests/artifacts/."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tailrace import JobState

from .support import Harness, wait_until
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


def test_pause_and_resume_a_worker_pool_from_the_queues_page(
    pg_server: Server,  # noqa: F811
    pg_harness: Harness,
    browser_type: Any,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    h = pg_harness
    shots = artifacts_dir()
    etl = [h.start_worker("--pool", "etl", "-q", "etl", "--poll", "0.1") for _ in range(2)]
    reports = h.start_worker("--pool", "reports", "-q", "reports", "--poll", "0.1")
    h.wait_started(*etl, reports)

    browser = browser_type.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    page_errors: list[str] = []
    dialogs: list[str] = []
    # the first confirmation of each pause (pool, then queue) is declined, the second accepted
    answers = [False, True, False, True]
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))

    def answer(dialog: Any) -> None:
        dialogs.append(dialog.message)
        if answers.pop(0):
            dialog.accept()
        else:
            dialog.dismiss()

    page.on("dialog", answer)
    try:
        page.goto(pg_server.base + "/ui/queues")
        page.fill("#token", TOKEN)
        page.click("button[type=submit]")
        etl_row = page.locator('#pools tr[data-pool="etl"]')
        reports_row = page.locator('#pools tr[data-pool="reports"]')
        expect(etl_row.locator('[data-field="live"]')).to_have_text("2")
        expect(reports_row.locator('[data-field="live"]')).to_have_text("1")
        expect(etl_row.locator(".badge")).to_have_text("active")

        # declined: nothing changes
        etl_row.locator('button[data-action="pause-pool"]').click()
        assert dialogs == [
            "Pause worker pool etl? Its 2 live workers stop claiming jobs and firing "
            "schedules; running jobs finish."
        ], dialogs
        assert pg_server.api("GET", "/api/admin/pools")["pools"] == [
            {"name": "etl", "paused": False},
            {"name": "reports", "paused": False},
        ]
        # accepted: the pool is paused in the database and its workers notice
        etl_row.locator('button[data-action="pause-pool"]').click()
        expect(etl_row.locator(".badge")).to_have_text("paused")
        expect(page.locator(".toast.ok").last).to_have_text("pool etl paused")
        assert {
            p["name"]: p["paused"] for p in pg_server.api("GET", "/api/admin/pools")["pools"]
        } == {
            "etl": True,
            "reports": False,
        }
        for w in etl:
            wait_until(lambda w=w: w.logged("worker pool paused"), 30, w.tail)
        held = h.app.enqueue("record", queue="etl")
        # the other pool still works: its job runs while the paused pool's waits
        ran = h.app.enqueue("record", queue="reports")
        h.wait_state([ran], JobState.SUCCEEDED, 30)
        assert h.job(held).state is JobState.PENDING, h.tails()
        expect(reports_row.locator(".badge")).to_have_text("active")
        # the etl queue's card says its pool holds it, though the queue itself is active
        etl_card = page.locator('.queue[data-queue="etl"]')
        reports_card = page.locator('.queue[data-queue="reports"]')
        expect(etl_card.locator(".badge").first).to_have_text("active")
        expect(etl_card.locator('.badge[data-pool="etl"]')).to_have_text("pool etl paused")
        expect(etl_card.locator('[data-field="pool-notice"]')).to_have_text(
            "No live worker claims these jobs: every worker of this queue is in a paused pool "
            "(etl). Resume the pool under Worker pools."
        )
        expect(reports_card.locator("[data-pool]")).to_have_count(0)
        expect(reports_card.locator('[data-field="pool-notice"]')).to_have_count(0)
        # each queue's table by priority shows every column without a sideways scroll
        expect(page.locator(".queue table.depth")).to_have_count(2)
        hidden = page.eval_on_selector_all(
            ".queue .table-wrap", "els => els.map((e) => e.scrollWidth - e.clientWidth)"
        )
        assert hidden == [0, 0], hidden
        page.screenshot(path=str(shots / "queues-pools.png"), full_page=True)

        # resume needs no confirmation; the held job runs
        etl_row.locator('button[data-action="resume-pool"]').click()
        expect(etl_row.locator(".badge")).to_have_text("active")
        h.wait_state([held], JobState.SUCCEEDED, 30)
        expect(etl_card.locator("[data-pool]")).to_have_count(0)
        assert len(dialogs) == 2, dialogs

        # pausing a queue is confirmed first, as pausing a pool is
        reports_pause = reports_card.locator('button[data-action="pause"]')
        reports_pause.click()
        assert dialogs[2] == (
            "Pause queue reports? No worker claims its jobs until it is resumed; "
            "running jobs finish."
        ), dialogs
        assert not any(q.paused for q in h.app.queues()), h.app.queues()
        reports_pause.click()
        expect(reports_card.locator(".badge").first).to_have_text("paused")
        assert {q.name for q in h.app.queues() if q.paused} == {"reports"}
        assert len(dialogs) == 4, dialogs

        # the workers page: each worker's pool
        page.click("nav >> text=Workers")
        pools = page.locator('#engine-workers [data-field="pool"]')
        expect(pools).to_have_count(3)
        assert sorted(pools.all_inner_texts()) == ["etl", "etl", "reports"]
        page.screenshot(path=str(shots / "workers-pools.png"), full_page=True)

        # a job due later is "scheduled" in the jobs list and on its page, as the queues
        # page counts it, not "pending"
        later = h.app.enqueue(
            "record", queue="later", run_at=datetime.now(UTC) + timedelta(hours=1)
        )
        page.goto(pg_server.base + "/ui/engine?queue=later")
        expect(page.locator(f'#engine-jobs tr[data-job-id="{later}"] .badge').first).to_have_text(
            "scheduled"
        )
        page.goto(f"{pg_server.base}/ui/engine/jobs/{later}")
        expect(page.locator("#job-state .badge")).to_have_text("scheduled")

        # dark and narrow: the pools table stays inside the screen
        dark = browser.new_context(viewport={"width": 390, "height": 844}, color_scheme="dark")
        dark.add_cookies(context.cookies())
        dark_page = dark.new_page()
        dark_page.goto(pg_server.base + "/ui/queues")
        expect(dark_page.locator('#pools tr[data-pool="etl"] .badge')).to_have_text("active")
        width = dark_page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, width
        dark_page.locator("#pools-card").screenshot(path=str(shots / "queues-pools-dark-390.png"))
        dark.close()
    except BaseException:
        print(pg_server.log_tail())
        print(h.tails())
        print("page errors:", page_errors)
        raise
    finally:
        context.close()
        browser.close()
    assert not page_errors, f"script errors on the pages: {page_errors}"
