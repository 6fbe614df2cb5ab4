"""Who gets in: tokens, sessions, CSRF, and the routes left open."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from .conftest import TOKEN

pytestmark = pytest.mark.postgres


def _protected(client: TestClient) -> list[tuple[str, str]]:
    """Every API operation in the OpenAPI document, with placeholder ids."""
    paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]
    return [
        (method.upper(), path.replace("{job_id}", "1").replace("{name}", "default"))
        for path, operations in paths.items()
        if path.startswith("/api/admin/")
        for method in operations
    ]


def test_every_api_route_needs_a_token(anonymous: TestClient) -> None:
    routes = _protected(anonymous)
    assert len(routes) >= 18
    for method, path in routes:
        response = anonymous.request(method, path)
        assert response.status_code == 401, (method, path, response.text)
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "header",
    [f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer ", f"Basic {TOKEN}", TOKEN],
)
def test_a_wrong_or_malformed_token_is_refused(anonymous: TestClient, header: str) -> None:
    response = anonymous.get("/api/admin/queues", headers={"Authorization": header})
    assert response.status_code == 401
    assert TOKEN not in response.text


def test_each_configured_token_works(anonymous: TestClient) -> None:
    for token in (TOKEN, "another-token-0123456789"):
        response = anonymous.get("/api/admin/queues", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200


def test_probes_are_open_and_metrics_are_not_by_default(anonymous: TestClient) -> None:
    assert anonymous.get("/healthz").json() == {"status": "ok", "detail": None}
    assert anonymous.get("/readyz").json() == {"status": "ok", "detail": None}
    assert anonymous.get("/metrics").status_code == 401
    metrics = anonymous.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert metrics.status_code == 200
    assert 'tailrace_reprocessing_jobs{status="running"} 0.0' in metrics.text


def test_metrics_can_be_opened(
    api_env: object, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tailrace.api import ApiConfig, create_app

    monkeypatch.setenv("TAILRACE_METRICS_PUBLIC", "true")
    with TestClient(create_app(ApiConfig.from_environment(pg_url))) as client:
        response = client.get("/metrics")
        assert response.status_code == 200
        assert "tailrace_reprocessing_jobs" in response.text
        assert client.get("/api/admin/queues").status_code == 401


def test_readyz_says_when_the_database_is_unreachable(
    api_env: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tailrace.api import ApiConfig, create_app

    # a port nothing listens on: the service starts, is alive, and is not ready
    config = ApiConfig.from_environment("postgresql://postgres@127.0.0.1:1/test")
    app = create_app(config)
    client = TestClient(app)  # no lifespan: startup would try to migrate
    assert client.get("/healthz").status_code == 200
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert "database unreachable" in response.json()["detail"]


def test_smallrye_health_paths_are_open(anonymous: TestClient) -> None:
    for path in ("/q/health", "/q/health/ready"):
        response = anonymous.get(path)
        assert response.status_code == 200, path
        assert response.json() == {
            "status": "UP",
            "checks": [{"name": "database", "status": "UP"}],
        }
    assert anonymous.get("/q/health/live").json() == {"status": "UP", "checks": []}


def test_smallrye_readiness_is_down_without_the_database(
    api_env: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tailrace.api import ApiConfig, create_app

    config = ApiConfig.from_environment("postgresql://postgres@127.0.0.1:1/test")
    client = TestClient(create_app(config))  # no lifespan: startup would try to migrate
    assert client.get("/q/health/live").status_code == 200
    for path in ("/q/health", "/q/health/ready"):
        response = client.get(path)
        assert response.status_code == 503, path
        body = response.json()
        assert body["status"] == "DOWN"
        [check] = body["checks"]
        assert check["name"] == "database" and check["status"] == "DOWN"
        assert check["data"]["error"]


def test_login_opens_a_session_with_http_only_strict_cookies(anonymous: TestClient) -> None:
    refused = anonymous.post(
        "/login", data={"token": "wrong", "next": "/ui/queues"}, follow_redirects=False
    )
    assert refused.status_code == 303
    assert refused.headers["location"] == "/login?error=1&next=/ui/queues"
    assert "tailrace_session" not in refused.cookies

    page = anonymous.get("/ui/queues", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/ui/queues"

    accepted = anonymous.post(
        "/login", data={"token": TOKEN, "next": "/ui/queues"}, follow_redirects=False
    )
    assert accepted.status_code == 303 and accepted.headers["location"] == "/ui/queues"
    cookies = accepted.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("tailrace_session="))
    csrf = next(c for c in cookies if c.startswith("tailrace_csrf="))
    assert "HttpOnly" in session and "SameSite=strict" in session
    assert "HttpOnly" not in csrf
    assert TOKEN not in session

    assert anonymous.get("/api/admin/queues").status_code == 200  # the cookie is enough
    refused_post = anonymous.post("/api/admin/queues/default/pause")
    assert refused_post.status_code == 403
    assert refused_post.json()["error"]["code"] == "csrf_failed"
    allowed = anonymous.post(
        "/api/admin/queues/default/pause",
        headers={"X-CSRF-Token": anonymous.cookies["tailrace_csrf"]},
    )
    assert allowed.status_code == 200 and allowed.json() == {"name": "default", "paused": True}

    anonymous.post("/logout", follow_redirects=False)
    anonymous.cookies.clear()
    assert anonymous.get("/api/admin/queues").status_code == 401


def test_a_forged_or_stale_session_is_refused(anonymous: TestClient) -> None:
    from tailrace.api.auth import Authenticator

    anonymous.post("/login", data={"token": TOKEN}, follow_redirects=False)
    genuine = anonymous.cookies["tailrace_session"]
    payload = genuine.partition(".")[0]
    stale, _ = Authenticator((TOKEN, "another-token-0123456789"), -60).open_session(0)
    other_key, _ = Authenticator(("some-other-token-0123456789",), 3600).open_session(0)
    anonymous.cookies.clear()
    for forged in (payload + ".00", "x" + genuine, "", ".", stale, other_key):
        header = f"tailrace_session={forged}"
        response = anonymous.get("/api/admin/queues", headers={"Cookie": header})
        assert response.status_code == 401, forged
    not_ascii = "tailrace_session=é.é".encode()
    assert anonymous.get("/api/admin/queues", headers={b"Cookie": not_ascii}).status_code == 401
    assert (
        anonymous.get(
            "/api/admin/queues", headers={"Cookie": f"tailrace_session={genuine}"}
        ).status_code
        == 200
    )


def test_login_never_redirects_off_site(anonymous: TestClient) -> None:
    for target in ("//evil.example/", "https://evil.example/", "evil"):
        response = anonymous.post(
            "/login", data={"token": TOKEN, "next": target}, follow_redirects=False
        )
        assert response.headers["location"] == "/"


def test_an_unreachable_database_never_uses_up_the_pool(
    api_env: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tailrace.api import ApiConfig, create_app

    monkeypatch.setenv("TAILRACE_API_POOL_SIZE", "2")
    app = create_app(ApiConfig.from_environment("postgresql://postgres@127.0.0.1:1/test"))
    client = TestClient(app)  # no lifespan: startup would try to migrate
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for _ in range(5):  # more than the pool holds
        assert client.get("/readyz").status_code == 503
        response = client.get("/api/admin/reprocessing/jobs", headers=headers)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "unavailable"
    assert app.state.services._opened == 0


def test_a_proxys_own_authorization_header_leaves_the_session_working(
    anonymous: TestClient,
) -> None:
    anonymous.post("/login", data={"token": TOKEN}, follow_redirects=False)
    basic = {"Authorization": "Basic dXNlcjpwYXNz"}  # an ingress's basic auth, passed on
    assert anonymous.get("/api/admin/queues", headers=basic).status_code == 200
    anonymous.cookies.clear()
    assert anonymous.get("/api/admin/queues", headers=basic).status_code == 401
