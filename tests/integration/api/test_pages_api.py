"""The dashboard's addresses without a page behind them, and the API description at /docs:
a browser gets the not-found page (status 404), an API client JSON; /docs renders from
files this service serves."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tailrace import App

from .conftest import TOKEN

HTML = {"Accept": "text/html,application/xhtml+xml"}


def _logged_in(anonymous: TestClient) -> TestClient:
    response = anonymous.post("/login", data={"token": TOKEN, "next": "/"}, follow_redirects=False)
    assert response.status_code == 303 and "tailrace_session" in anonymous.cookies
    return anonymous


def test_unknown_addresses_are_a_page_for_browsers_and_json_for_the_api(
    anonymous: TestClient,
) -> None:
    page = anonymous.get("/ui/no-such-page", headers=HTML)
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "Not found" in page.text and "/static/notfound.js" in page.text
    for path in ("/api/admin/no-such-thing", "/static/no-such-file.js"):
        answer = anonymous.get(path, headers={"Authorization": f"Bearer {TOKEN}", **HTML})
        assert answer.status_code == 404, path
        assert answer.json()["error"]["code"] == "not_found", path


def test_a_job_page_of_no_job_is_the_not_found_page(anonymous: TestClient, pg_url: str) -> None:
    client = _logged_in(anonymous)
    with App(pg_url) as app:
        job_id = app.enqueue("pages.some_task", {"n": 1})
    assert client.get(f"/ui/engine/jobs/{job_id}").status_code == 200
    for path in (
        f"/ui/engine/jobs/{job_id + 1000}",
        "/ui/engine/jobs/not-a-number",
        "/ui/jobs/no-such-job",
        "/ui/jobs/no-such-job/logs",
    ):
        page = client.get(path)
        assert page.status_code == 404, path
        assert "Not found" in page.text, path
    # without a session, the login form comes first (whether the job exists is not told)
    client.cookies.clear()
    first = client.get("/ui/jobs/no-such-job", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"].startswith("/login")


def test_docs_render_from_files_served_here(anonymous: TestClient) -> None:
    assert anonymous.get("/docs", follow_redirects=False).headers["location"] == (
        "/login?next=/docs"
    )
    client = _logged_in(anonymous)
    page = client.get("/docs")
    assert page.status_code == 200
    scripts = [line for line in page.text.splitlines() if "<script" in line or "stylesheet" in line]
    assert all('"/static/' in line for line in scripts), scripts
    bundle = client.get("/static/docs/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and "SwaggerUIBundle" in bundle.text
    assert client.get("/static/docs/swagger-ui.css").status_code == 200
    spec = client.get("/openapi.json")  # with the session, as the page reads it
    assert spec.status_code == 200 and spec.json()["info"]["title"] == "tailrace admin"


def test_the_ui_address_an_operator_types_leads_to_the_jobs_page(anonymous: TestClient) -> None:
    client = _logged_in(anonymous)
    for path in ("/ui", "/ui/"):
        answer = client.get(path, headers=HTML, follow_redirects=False)
        assert (answer.status_code, answer.headers.get("location")) == (307, "/"), path
        assert client.get(path, headers=HTML).status_code == 200, path
