"""The web UI in a real headless Chromium (Playwright), against `tailrace serve` in a
subprocess on PostgreSQL with real workers: log in through the form, see the form's errors
beside their fields, start a reprocessing job from the jobs page, watch it finish on the job
page and in the list (sent, filtered, dead, duration, rate), read its logs (a pane per
worker, search, level, download), replay a dead engine job from the queues page, the
not-found page, /docs, and the header at 390 px; and a job that failed (a truncated gzip)
shows the failed badge and the reason on both pages.

Chromium comes from the system (/usr/bin/chromium), never downloaded at run time. Without it
or Playwright the test is skipped locally and fails under CI=true. A screenshot of every page
goes to $TAILRACE_ARTIFACTS (default tests/artifacts/, where they are committed for review).
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
from contextlib import contextmanager
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
NO_VALUE = "\u2013"  # the pages' en dash for a value that is not known
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


@contextmanager
def serving(database_url: str, tmp_path: Path) -> Iterator[Server]:
    """`tailrace serve` on `database_url`, from the tree under test, until the block ends."""
    port = free_port()
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


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with serving(f"sqlite:///{tmp_path}/t.db", tmp_path) as srv:
        yield srv


@pytest.fixture
def pg_server(pg_url: str, tmp_path: Path) -> Iterator[Server]:
    with serving(pg_url, tmp_path) as srv:
        yield srv


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


@pytest.mark.postgres
def test_ui_end_to_end(pg_server: Server, browser_type: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    server = pg_server
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
        # the form's errors stand beside their fields: the browser's own checks, then the API's
        page.fill("#max_workers", "0")
        page.click("#start-job")
        expect(page.locator("#error-path")).to_contain_text("Give a local path or an S3 path")
        expect(page.locator("#error-max_workers")).to_have_text("A whole number above 0.")
        expect(page.locator("#path")).to_have_attribute("aria-invalid", "true")
        expect(page.locator("#path")).to_be_focused()
        page.fill("#max_workers", "")
        expect(page.locator("#error-max_workers")).to_have_count(0)  # fixed: the note goes
        page.fill("#path", str(tmp_path / "no-such-logs"))
        page.click("#start-job")
        expect(page.locator("#error-path")).to_contain_text("no-such-logs")
        expect(page.locator(".field-error")).to_have_count(1)
        page.screenshot(path=str(shots / "jobs-form-errors.png"), full_page=True)
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

        # -- the jobs list shows it, with its outcome per line and how long it ran ------------
        page.click("nav >> text=Jobs")
        row = page.locator(f'#jobs tr[data-job-id="{job_id}"]')
        expect(row.locator(".badge")).to_have_text("completed")
        expect(row.locator(".progress")).to_have_attribute("data-progress", "100")
        for field, key in (("sent", "success_count"), ("filtered", "filtered_count")):
            expect(row.locator(f'[data-field="{field}"]')).to_have_text(f"{job[key]:,}")
        expect(row.locator('[data-field="dead"]')).to_have_text(f"{job['error_count']:,}")
        expect(row.locator('[data-field="duration"]')).to_have_text(re.compile(r"^\d+(s|m \d+s)$"))
        expect(row.locator('[data-field="rate"]')).to_have_text(re.compile(r"^[\d.]+k?/s$"))
        expect(row.locator('[data-field="eta"]')).to_have_text(NO_VALUE)  # finished
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
        # every worker's pane shows its own tail, side by side, not only the last worker's
        for index in range(2):
            pane = page.locator(f'#logbox section[data-worker="{index}"] .worker-lines')
            expect(pane.locator(".logline").last).to_be_in_viewport()
            gap = pane.evaluate("(n) => n.scrollHeight - n.scrollTop - n.clientHeight")
            assert gap <= 2, f"worker {index}'s pane is not at its tail ({gap} px above)"
        page.screenshot(path=str(shots / "logs-per-worker.png"), full_page=True)
        # search and level hide lines; the download holds what is shown
        lines = page.locator("#logbox .logline")
        texts_before = lines.all_inner_texts()
        total = len(texts_before)
        word = page.locator("#logbox .logline .msg").first.inner_text().split()[0]
        loud = page.locator("#logbox .logline.warning, #logbox .logline.error").count()
        page.select_option("#log-level", "warning")
        expect(lines).to_have_count(loud)
        expect(page.locator("#logbox .logline.info, #logbox .logline.debug")).to_have_count(0)
        page.select_option("#log-level", "debug")
        expect(lines).to_have_count(total)
        page.fill("#log-search", "no-such-text-in-any-line")
        expect(lines).to_have_count(0)
        expect(page.locator("#shown-count")).to_have_text("0 shown")
        matching = [t for t in texts_before if word.lower() in t.lower()]
        assert 0 < len(matching) <= total
        page.fill("#log-search", word.upper())  # the search ignores case
        expect(lines).to_have_count(len(matching))
        with page.expect_download() as download_info:
            page.click("#download")
        saved = Path(download_info.value.path()).read_text().splitlines()
        assert len(saved) == len(matching), (len(saved), len(matching))
        assert all(word.lower() in line.lower() for line in saved), saved[:3]
        assert all(re.match(r"^\S+ \[W[01]\] ", line) for line in saved), saved[:3]
        assert download_info.value.suggested_filename == f"tailrace-{job_id}-logs.txt"
        page.fill("#log-search", "")
        expect(lines).to_have_count(total)
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
        asked: list[str] = []

        def accept(dialog: Any) -> None:
            asked.append(dialog.message)
            dialog.accept()

        page.once("dialog", accept)  # pausing a queue is confirmed first
        card.locator('button[data-action="pause"]').click()
        expect(card.locator(".badge").first).to_have_text("paused")
        assert asked == [
            f"Pause queue {DEAD_QUEUE}? No worker claims its jobs until it is resumed; "
            "running jobs finish."
        ], asked
        dead_row.locator('button[data-action="replay"]').click()
        expect(dead_row).to_have_count(0)
        expect(card.locator('[data-counter="pending"] .value')).to_have_text("1")
        expect(card.locator('[data-counter="dead"] .value')).to_have_text("0")
        assert server.api("GET", f"/api/admin/jobs/{dead_id}")["state"] == "pending"
        card.locator('button[data-action="resume"]').click()
        expect(card.locator(".badge").first).to_have_text("active")
        page.screenshot(path=str(shots / "queues-after-replay.png"), full_page=True)

        # -- an address with nothing behind it: the not-found page, with its status -----------
        response = page.goto(server.base + "/ui/jobs/no-such-job")
        assert response is not None and response.status == 404
        expect(page.locator("#what")).to_have_text("There is no reprocessing job no-such-job.")
        expect(page.locator("header.topbar")).to_be_visible()
        page.screenshot(path=str(shots / "not-found.png"), full_page=True)

        # -- the API's description, rendered from files served here ----------------------------
        page.click("nav >> text=API")
        expect(page).to_have_url(server.base + "/docs")
        # a 1.4 MB script to parse and the whole description to build: give it time
        title = page.locator(".swagger-ui .info .title")
        expect(title).to_contain_text("tailrace admin", timeout=30_000)
        expect(page.locator(".swagger-ui .opblock").first).to_be_visible()
        page.screenshot(path=str(shots / "docs.png"), full_page=False)

        # -- a 390 px phone: the header wraps, every link in reach, nothing scrolls sideways ---
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(server.base + "/")
        expect(row.locator(".badge")).to_have_text("completed")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page is {width} px wide at 390"
        for link in page.locator("header.topbar nav a, #logout-form button").all():
            box = link.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
        page.screenshot(path=str(shots / "jobs-390px.png"), full_page=False)
        page.set_viewport_size({"width": 1360, "height": 900})
        page.goto(server.base + "/ui/queues")
        expect(page.locator(f'.queue[data-queue="{DEAD_QUEUE}"]')).to_be_visible()

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
    # the download is a blob: of this origin (the lines the page holds)
    here = (server.base + "/", "blob:" + server.base + "/")
    elsewhere = [url for url in requested if not url.startswith(here)]
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
