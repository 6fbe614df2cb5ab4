"""The web UI in a real headless Chromium (Playwright), against `tailrace serve` in a
subprocess: log in through the form, start a reprocessing job from the jobs page, watch it
finish on the job page, read its logs, and replay a dead engine job from the queues page; and
a job that failed (a truncated gzip) shows the failed badge and the reason on both pages.

Chromium comes from the system (/usr/bin/chromium), never downloaded at run time. Without it
or Playwright the test is skipped locally and fails under CI=true. A full-page screenshot of
every page goes to $TAILRACE_ARTIFACTS (default tests/artifacts/).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tailrace import App, JobState
from tailrace.engine.worker import Worker, WorkerOptions
from tests.services import free_port, missing

from .reprocess_support import run_cli, summary
from .support import REPO_ROOT, wait_until

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "ui-test-token-3f9c2a7d51e84b06"
DEAD_QUEUE = "ui-dead"
JOB_TIMEOUT_MS = 120_000
CLI = [sys.executable, "-m", "tailrace"]


def artifacts_dir() -> Path:
    path = Path(os.environ.get("TAILRACE_ARTIFACTS") or REPO_ROOT / "tests" / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- the server ---------------------------------------------------------------------------------


@dataclass
class Server:
    base: str
    database_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """A call with the bearer token, as a script (not the browser) would make it."""
        request = urllib.request.Request(
            self.base + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return "--- tailrace serve stderr tail ---\n" + "\n".join(text)


def _healthy(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    port = free_port()
    database_url = f"sqlite:///{tmp_path}/t.db"
    log_path = tmp_path / "serve.log"
    env = {
        **os.environ,
        "TAILRACE_API_TOKENS": TOKEN,
        "TAILRACE_DATABASE_URL": database_url,
        # the tree under test, not whichever tailrace is installed
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH")) if p
        ),
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*CLI, "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    srv = Server(f"http://127.0.0.1:{port}", database_url, process, log_path)
    try:
        wait_until(
            lambda: process.poll() is not None or _healthy(srv.base),
            30,
            lambda: "tailrace serve never answered /healthz\n" + srv.log_tail(),
        )
        assert process.poll() is None, "tailrace serve exited\n" + srv.log_tail()
        yield srv
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# -- what the pages act on ------------------------------------------------------------------------


def sample_logs(tmp_path: Path) -> Path:
    directory = tmp_path / "logs"
    subprocess.run(
        # 12 files: the planner gives one worker per 10 files, so two workers share them
        [*CLI, "sample-logs", str(directory), *"--files 12 --lines 1500 --bad-lines".split()],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return directory


def make_dead_job(database_url: str) -> int:
    """A job for a task nobody registered, allowed one attempt: a burst worker runs it once
    (UnknownTaskError) and it is dead. The worker runs in its own thread because Playwright's
    sync API keeps an event loop running in this one."""
    with App(database_url) as app:
        job_id = app.enqueue("ui_test.nobody_runs_this", {"n": 1}, queue=DEAD_QUEUE, max_attempts=1)
        worker = Worker(app, WorkerOptions(queues=[DEAD_QUEUE], burst=True, poll_s=0.05))
        thread = threading.Thread(target=worker.run, name="burst-worker")
        thread.start()
        thread.join(60)
        assert not thread.is_alive(), "the burst worker did not finish"
        assert app.job(job_id).state is JobState.DEAD
    return job_id


@pytest.fixture
def browser_type() -> Iterator[Any]:
    if not CHROMIUM.exists():
        missing("Chromium", f"{CHROMIUM} not found (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        missing("Playwright", f"cannot import playwright.sync_api: {exc}")
    with sync_playwright() as p:
        yield p.chromium


# -- the test -------------------------------------------------------------------------------------


def test_ui_end_to_end(server: Server, browser_type: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    shots = artifacts_dir()
    (shots / "failure.png").unlink(missing_ok=True)
    logs_dir = sample_logs(tmp_path)
    out = tmp_path / "out.ndjson"
    dead_id = make_dead_job(server.database_url)

    browser = browser_type.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    visited: list[str] = []
    requested: list[str] = []
    page_errors: list[str] = []
    page.on("framenavigated", lambda frame: visited.append(frame.url))
    page.on("request", lambda request: requested.append(request.url))
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    try:
        # -- login: a wrong token is refused, the right one opens a session ------------------
        page.goto(server.base + "/ui/queues")
        expect(page).to_have_url(re.compile(r"/login\?next=(/|%2F)ui(/|%2F)queues$"))
        page.fill("#token", "not-the-token")
        page.click("button[type=submit]")
        expect(page.get_by_text("That token is not valid")).to_be_visible()
        page.screenshot(path=str(shots / "login.png"), full_page=True)
        page.fill("#token", TOKEN)
        page.click("button[type=submit]")
        expect(page).to_have_url(server.base + "/ui/queues")
        cookies = {c["name"]: c for c in context.cookies()}
        assert cookies["tailrace_session"]["httpOnly"] is True
        assert cookies["tailrace_csrf"]["httpOnly"] is False

        # -- start a job from the form ------------------------------------------------------
        page.click("nav >> text=Jobs")
        expect(page).to_have_url(server.base + "/")
        page.click("#new-job-card summary")
        # the API's error message reaches the user in a toast
        page.fill("#path", str(tmp_path / "no-such-logs"))
        page.click("#start-job")
        expect(page.locator(".toast.error")).to_contain_text("no-such-logs")
        expect(page).to_have_url(server.base + "/")
        page.fill("#path", str(logs_dir))
        page.fill("#sink", f"file:{out}")
        page.fill("#max_workers", "2")
        page.click("#start-job")
        expect(page).to_have_url(re.compile(r"/ui/jobs/[^/]+$"), timeout=30_000)
        job_id = page.url.rsplit("/", 1)[1]

        # -- the job page follows it to the end ---------------------------------------------
        expect(page.locator("#job-status .badge")).to_have_text("completed", timeout=JOB_TIMEOUT_MS)
        workers = page.locator(".worker")
        expect(workers).to_have_count(2)
        for i in range(2):
            expect(workers.nth(i).locator(".progress")).to_have_attribute(
                "data-progress", "100", timeout=10_000
            )
            expect(workers.nth(i).locator(".badge")).to_have_text("completed")
        expect(page.locator("#overall .progress")).to_have_attribute("data-progress", "100")
        job = server.api("GET", f"/api/admin/reprocessing/jobs/{job_id}")
        assert job["success_count"] > 0 and job["error_count"] > 0, job
        expect(page.locator('[data-counter="sent"] .value')).to_have_text(
            f"{job['success_count']:,}"
        )
        expect(page.locator('[data-counter="deadlettered"] .value')).to_have_text(
            f"{job['error_count']:,}"
        )
        # a finished job loads its dead letters by itself: the bad lines, with their reason
        expect(page.locator("#deadletters tbody tr").first.locator("td")).to_have_count(5)
        expect(page.locator("#chart")).not_to_be_empty()
        page.screenshot(path=str(shots / "job.png"), full_page=True)
        assert out.exists() and out.stat().st_size > 0

        # -- the jobs list shows it ---------------------------------------------------------
        page.click("nav >> text=Jobs")
        row = page.locator(f'#jobs tr[data-job-id="{job_id}"]')
        expect(row.locator(".badge")).to_have_text("completed")
        expect(row.locator(".progress")).to_have_attribute("data-progress", "100")
        page.screenshot(path=str(shots / "jobs.png"), full_page=True)
        page.select_option("#status-filter", "failed")
        expect(page.locator("#jobs tbody")).to_have_text("No failed jobs.")
        page.select_option("#status-filter", "completed")
        expect(row.locator(".badge")).to_have_text("completed")

        # -- the log viewer: per worker, then merged by time, then paused ----------------------
        row.get_by_role("link", name="Logs").click()
        expect(page).to_have_url(f"{server.base}/ui/jobs/{job_id}/logs")
        expect(page.locator("#logbox .logline").first).to_be_visible(timeout=15_000)
        expect(page.locator("#logbox section[data-worker]")).to_have_count(2)
        # at least one incremental refresh (since=...) before looking for duplicates
        with page.expect_response(lambda r: "/logs?" in r.url and "since=" in r.url):
            pass
        toggle = page.locator("#toggle-view")
        expect(toggle).to_have_text("Switch to Chronological")
        toggle.click()
        expect(toggle).to_have_text("Switch to Per-Worker")
        expect(page.locator("#logbox .logline .wb").first).to_have_text(re.compile(r"^\[W[01]\]$"))
        page.click("#pause")
        expect(page.locator("#pause")).to_have_text("Resume")
        expect(page.locator("#live-text")).to_have_text("paused")
        texts = page.locator("#logbox .logline").all_inner_texts()
        assert texts and len(texts) == len(set(texts)), "the viewer shows a line twice"
        page.screenshot(path=str(shots / "logs.png"), full_page=True)

        # -- queues: replay the dead job, pause and resume its queue -------------------------
        page.click("nav >> text=Queues")
        dead_row = page.locator(f'#dead-jobs tr[data-job-id="{dead_id}"]')
        expect(dead_row).to_contain_text("ui_test.nobody_runs_this")
        card = page.locator(f'.queue[data-queue="{DEAD_QUEUE}"]')
        expect(card.locator('[data-counter="dead"] .value')).to_have_text("1")
        page.screenshot(path=str(shots / "queues.png"), full_page=True)
        # the queue is paused first, so no worker could pick the replayed job up and the
        # pending state stays observable
        card.locator('button[data-action="pause"]').click()
        expect(card.locator(".badge").first).to_have_text("paused")
        dead_row.locator('button[data-action="replay"]').click()
        expect(dead_row).to_have_count(0)
        expect(card.locator('[data-counter="pending"] .value')).to_have_text("1")
        expect(card.locator('[data-counter="dead"] .value')).to_have_text("0")
        assert server.api("GET", f"/api/admin/jobs/{dead_id}")["state"] == "pending"
        card.locator('button[data-action="resume"]').click()
        expect(card.locator(".badge").first).to_have_text("active")
        page.screenshot(path=str(shots / "queues-after-replay.png"), full_page=True)

        # -- a session that ends sends the page to the login form, which brings it back ------
        context.clear_cookies()
        expect(page).to_have_url(re.compile(r"/login\?next=(/|%2F)ui(/|%2F)queues$"))
        page.fill("#token", TOKEN)
        page.click("button[type=submit]")
        expect(page).to_have_url(server.base + "/ui/queues")

        # -- logout ends the session --------------------------------------------------------
        page.click("#logout-form button")
        expect(page).to_have_url(re.compile(r"/login"))
        page.goto(server.base + "/")
        expect(page).to_have_url(re.compile(r"/login\?next=(/|%2F)$"))
    except BaseException:
        print(server.log_tail())
        try:
            page.screenshot(path=str(shots / "failure.png"), full_page=True)
        except Exception as exc:  # the page may be gone; the first error is the one to see
            print(f"no failure screenshot: {exc}")
        raise
    finally:
        context.close()
        browser.close()

    assert not page_errors, f"script errors on the pages: {page_errors}"
    leaked = [url for url in visited + requested if TOKEN in url]
    assert not leaked, f"the token appeared in a URL: {leaked}"
    elsewhere = [url for url in requested if not url.startswith(server.base + "/")]
    assert not elsewhere, f"the UI fetched from another origin: {elsewhere}"


# -- a failed job ---------------------------------------------------------------------------------


def _failed_job(server: Server, tmp_path: Path) -> dict[str, Any]:
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = b"".join(
        json.dumps({"messageId": str(n), "origin": {"sourceId": "s"}}).encode() + b"\n"
        for n in range(3_000)
    )
    (logs / "good.ndjson").write_bytes(lines)
    whole = gzip.compress(lines, mtime=0)
    (logs / "cut.ndjson.gz").write_bytes(whole[: len(whole) // 2])
    args = ["reprocess", str(logs), "--sink", f"file://{tmp_path}/out.ndjson", "--json"]
    result = run_cli(args, server.database_url, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    report = summary(result.stdout)
    assert report["status"] == "failed", report
    return report


def test_a_failed_job_shows_its_reason_and_failed_files(
    server: Server, browser_type: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    report = _failed_job(server, tmp_path)
    job_id = report["job_id"]
    browser = browser_type.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    page_errors: list[str] = []
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    try:
        page.goto(server.base + "/")
        page.fill("#token", TOKEN)
        page.click("button[type=submit]")
        row = page.locator(f'#jobs tr[data-job-id="{job_id}"]')
        expect(row.locator(".badge")).to_have_text("failed")
        expect(row.locator(".reason")).to_contain_text("1 of 2 files failed")
        expect(row.locator(".reason")).to_have_attribute("title", report["error"])

        row.locator(f'a[href="/ui/jobs/{job_id}"]').click()
        expect(page).to_have_url(re.compile(rf"/ui/jobs/{job_id}$"))
        expect(page.locator("#job-status .badge")).to_have_text("failed")
        expect(page.locator("#job-error")).to_have_text(report["error"])
        card = page.locator("#failed-files-card")
        expect(card).to_be_visible()
        [failed] = report["failed_files"]
        file_row = card.locator("tbody tr")
        expect(file_row).to_have_count(1)
        expect(file_row.locator("td").first).to_have_text("cut.ndjson.gz")
        expect(file_row.locator(".reason")).to_have_text(failed["error"])
        assert failed["error"].startswith("unreadable: truncated gzip stream")
        expect(page.locator("#resume")).to_be_enabled()
        expect(page.locator("#cancel")).to_be_disabled()
    finally:
        browser.close()
    assert not page_errors, page_errors
