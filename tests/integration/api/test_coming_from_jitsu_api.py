"""docs/coming-from/failover-reprocessing.md, the admin service's rows: Jitsu's own settings
(``ADMIN_*``, salted token hashes), its ``/health``, CORS for its console, and its log
viewer link with ``?token=``; on a real PostgreSQL schema."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tailrace.api import ApiConfig, create_app
from tailrace.api.auth import SESSION_COOKIE
from tailrace.errors import ConfigurationError

pytestmark = pytest.mark.postgres

JOBS = "/api/admin/reprocessing/jobs"
RAW = "raw-jitsu-token-0123456789"
HASHED_RAW = "hashed-jitsu-token-0123456789"
SECRET = "dea42a58-acf4-45af-85bb-e77e94bd5025"
SALT = "2f0c3f5e-salt"


def _hex_hash(token: str, salt: str, secret: str) -> str:
    return hashlib.sha512((token + salt + secret).encode()).hexdigest()


def _b64_hash(token: str, salt: str, secret: str) -> str:
    digest = hashlib.sha512((token + salt + secret).encode()).digest()
    return base64.b64encode(digest).decode().rstrip("=")


@pytest.fixture(autouse=True)
def _environment_restored() -> Iterator[None]:
    """The service copies Jitsu's names to tailrace's in os.environ (for the processes it
    starts): those copies must not outlive the test, as monkeypatch's own settings do not."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def jitsu_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_url: str) -> Path:
    """The environment of a Jitsu admin deployment, and no TAILRACE_* setting at all."""
    monkeypatch.chdir(tmp_path)
    for name in (
        "TAILRACE_API_TOKENS",
        "TAILRACE_DATABASE_URL",
        "DATABASE_URL",
        "TAILRACE_DEFAULT_SINK",
        "KAFKA_BOOTSTRAP_SERVERS",
        "KAFKA_DESTINATIONS_TOPIC",
        "TAILRACE_EXECUTOR",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TAILRACE_DATA_DIR", str(tmp_path / ".tailrace"))
    monkeypatch.setenv("ADMIN_DATABASE_URL", pg_url)
    monkeypatch.setenv("ADMIN_RAW_AUTH_TOKENS", RAW)
    hexed = f"{SALT}.{_hex_hash(HASHED_RAW, SALT, SECRET)}"
    older = f"old-salt.{_b64_hash(RAW + 'x', 'old-salt', SECRET)}"  # Jitsu's base64 form
    monkeypatch.setenv("ADMIN_AUTH_TOKENS", f"{hexed},{older}")
    monkeypatch.setenv("ADMIN_TOKEN_SECRET", f"another-secret,{SECRET}")
    monkeypatch.setenv("ADMIN_KAFKA_BOOTSTRAP_SERVERS", "broker-a:9092,broker-b:9093")
    monkeypatch.setenv("ADMIN_KAFKA_DESTINATIONS_TOPIC_NAME", "destination-messages")
    return tmp_path


@pytest.fixture
def jitsu(jitsu_env: Path) -> Iterator[TestClient]:
    app = create_app(ApiConfig.from_environment())
    with TestClient(app) as client:
        yield client


def test_admin_database_url_is_the_database_not_a_local_sqlite_file(
    jitsu: TestClient, jitsu_env: Path, pg_url: str
) -> None:
    config: ApiConfig = jitsu.app.state.services.config  # type: ignore[attr-defined]
    assert config.database_url == pg_url
    assert config.token_file is None  # no generated token beside Jitsu's
    assert not (jitsu_env / ".tailrace" / "api-token").exists()


def test_jitsu_tokens_raw_and_salted_hashes_in_hex_and_base64_are_accepted(
    jitsu: TestClient,
) -> None:
    for token in (RAW, HASHED_RAW, RAW + "x"):
        answer = jitsu.get(JOBS, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, (token, answer.text)
    for wrong in ("not-a-token-0123456789", HASHED_RAW + "y", SALT):
        answer = jitsu.get(JOBS, headers={"Authorization": f"Bearer {wrong}"})
        assert answer.status_code == 401, wrong


def test_hashed_tokens_without_their_secret_are_refused_at_start_with_the_fix(
    jitsu_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ADMIN_TOKEN_SECRET")
    with pytest.raises(ConfigurationError, match="ADMIN_TOKEN_SECRET is not set"):
        ApiConfig.from_environment()


def test_kafka_destinations_topic_name_makes_the_default_sink(jitsu: TestClient) -> None:
    config: ApiConfig = jitsu.app.state.services.config  # type: ignore[attr-defined]
    assert config.default_sink == "kafka://broker-a:9092,broker-b:9093/destination-messages"


def test_the_workers_kafka_address_of_jitsu_is_the_sinks(
    jitsu_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADMIN_REPROCESSING_WORKER_KAFKA_BOOTSTRAP_SERVERS", "inside:29092")
    config = ApiConfig.from_environment()
    assert config.default_sink == "kafka://inside:29092/destination-messages"


def test_a_setting_recognised_but_not_honoured_is_a_startup_warning_naming_it(
    jitsu_env: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("ADMIN_CLICKHOUSE_URL", "http://clickhouse:8123")
    monkeypatch.setenv("ADMIN_KAFKA_SASL", '{"mechanism":"PLAIN"}')
    monkeypatch.setenv("ADMIN_SOMETHING_NEW", "1")
    monkeypatch.setenv("K8S_NAMESPACE", "jitsu")  # the local executor has no namespace
    with caplog.at_level(logging.WARNING, logger="tailrace.api"):
        with TestClient(create_app(ApiConfig.from_environment())):
            pass
    said = "\n".join(r.getMessage() for r in caplog.records)
    assert "ADMIN_CLICKHOUSE_URL is set but not honoured" in said
    assert "ADMIN_KAFKA_SASL is set but not honoured: set KAFKA_SASL_MECHANISM" in said
    assert "ADMIN_SOMETHING_NEW is set but is not a setting tailrace knows" in said
    assert "K8S_NAMESPACE is set but not honoured" in said and "TAILRACE_EXECUTOR" in said
    assert "ADMIN_DATABASE_URL" not in said  # honoured: no warning


def test_health_answers_like_healthz_without_a_token(jitsu: TestClient) -> None:
    for path in ("/health", "/healthz"):
        answer = jitsu.get(path)
        assert answer.status_code == 200
        assert answer.json()["status"] == "ok"


def test_cors_preflight_is_answered_for_configured_origins(
    jitsu_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAILRACE_API_CORS_ORIGINS", "https://console.example.com")
    with TestClient(create_app(ApiConfig.from_environment())) as client:
        preflight = client.options(
            JOBS,
            headers={
                "Origin": "https://console.example.com",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 200, preflight.text
        allowed = preflight.headers["access-control-allow-origin"]
        assert allowed == "https://console.example.com"
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        other = client.options(
            JOBS,
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert other.status_code == 400
        assert "access-control-allow-origin" not in other.headers
        # the real request carries the header too, and still needs its token
        listed = client.get(
            JOBS,
            headers={"Origin": "https://console.example.com", "Authorization": f"Bearer {RAW}"},
        )
        assert listed.status_code == 200
        assert listed.headers["access-control-allow-origin"] == "https://console.example.com"
        refused = client.get(JOBS, headers={"Origin": "https://console.example.com"})
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == "https://console.example.com"


def test_the_log_viewer_link_with_a_valid_token_opens_the_viewer(
    jitsu: TestClient, jitsu_env: Path
) -> None:
    logs = jitsu_env / "logs"
    logs.mkdir()
    (logs / "incoming.tok=1.log").write_text('{"_timestamp": "2026-12-01T00:00:00Z"}\n')
    started = jitsu.post(
        JOBS,
        json={"local_path": str(logs), "dry_run": True},
        headers={"Authorization": f"Bearer {RAW}"},
    )
    assert started.status_code == 201, started.text
    job = started.json()["id"]
    answer = jitsu.get(f"{JOBS}/{job}/logs/view", params={"token": RAW}, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/ui/jobs/{job}/logs"  # no token in it
    assert SESSION_COOKIE in answer.cookies
    page = jitsu.get(f"/ui/jobs/{job}/logs", follow_redirects=False)
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    # the session reads the API the viewer calls
    assert jitsu.get(JOBS).status_code == 200


def test_the_log_viewer_link_with_a_hashed_token_opens_the_viewer(jitsu: TestClient) -> None:
    answer = jitsu.get(
        f"{JOBS}/abc123/logs/view", params={"token": HASHED_RAW}, follow_redirects=False
    )
    assert answer.status_code == 303
    assert SESSION_COOKIE in answer.cookies


def test_the_log_viewer_link_with_a_wrong_token_asks_for_a_login(jitsu: TestClient) -> None:
    answer = jitsu.get(f"{JOBS}/abc123/logs/view", params={"token": "wrong-token-0123456789"})
    assert answer.url.path == "/login"
    assert SESSION_COOKIE not in jitsu.cookies
