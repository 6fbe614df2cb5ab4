"""The settings layer: TAILRACE_ names and their aliases, tailrace.toml, one-line errors,
`tailrace config` (sources, secrets masked) and the reference page."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tailrace.cli import cli
from tailrace.errors import ConfigurationError
from tailrace.settings import current, database_url
from tailrace.settings.model import Settings, env_names
from tailrace.settings.report import reference
from tailrace.settings.sources import load

ROOT = Path(__file__).resolve().parents[2]


def test_the_tailrace_name_wins_over_its_aliases_in_their_order() -> None:
    env = {"DATABASE_URL": "postgresql://b/x", "ADMIN_DATABASE_URL": "postgresql://c/x"}
    assert load(env).database_url == "postgresql://b/x"
    assert load({"ADMIN_DATABASE_URL": "postgresql://c/x"}).database_url == "postgresql://c/x"
    s = load({**env, "TAILRACE_DATABASE_URL": "postgresql://a/x"})
    assert s.database_url == "postgresql://a/x"
    assert s.origin("database_url") == "env TAILRACE_DATABASE_URL"
    assert s.origin("worker_nice") == "default"
    # empty counts as unset
    assert load({"TAILRACE_DATABASE_URL": " ", **env}).database_url == "postgresql://b/x"


def test_known_names_are_read_as_aliases() -> None:
    s = load(
        {
            "WORKER_PRIORITY_FILTER": "CRITICAL,HIGH",
            "K8S_NAMESPACE": "jobs",
            "ADMIN_KUBERNETES_CONTEXT": "prod",
            "REPOSITORY_URL": "http://repo",
            "JOBS_RETRY_MAX_ATTEMPTS_HIGH": "7",
            "TAILRACE_JOBS_RETRY_MAX_ATTEMPTS_BULK": "2",
            "DB_HOST": "db",
            "AWS_ENDPOINT": "http://s3",
            "TOTAL_WORKERS": "4",
        }
    )
    assert s.worker_priority_filter == "CRITICAL,HIGH"
    assert (s.k8s_namespace, s.k8s_context) == ("jobs", "prod")
    assert s.repository_url == "http://repo"
    assert s.max_attempts() == {"HIGH": 7, "BULK": 2}
    assert (s.ingest_db_host, s.s3_endpoint_url, s.total_workers) == ("db", "http://s3", 4)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TAILRACE_WORKER_NICE": "abc"}, "TAILRACE_WORKER_NICE='abc': expected a whole number"),
        ({"WORKER_INDEX": "-1"}, "WORKER_INDEX='-1': expected a whole number of at least 0"),
        ({"K8S_MAX_PARALLEL_WORKERS": "0"}, "K8S_MAX_PARALLEL_WORKERS='0': expected a whole"),
        ({"TAILRACE_REPOSITORY_TIMEOUT_S": "soon"}, "_TIMEOUT_S='soon': expected a number"),
        ({"TAILRACE_COOKIE_SECURE": "maybe"}, "TAILRACE_COOKIE_SECURE='maybe': expected true"),
        ({"JOBS_RETRY_MAX_ATTEMPTS_LOW": "x"}, "JOBS_RETRY_MAX_ATTEMPTS_LOW='x'"),
    ],
)
def test_a_value_that_does_not_fit_names_its_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load(env)


def test_a_stray_job_id_is_set_aside_with_a_warning() -> None:
    s = load({"JOB_ID": "88", "TAILRACE_WORKER_INDEX": ""})
    assert s.job_id is None
    assert any("JOB_ID is set without WORKER_INDEX" in w for w in s.warnings)
    assert load({"JOB_ID": "88", "WORKER_INDEX": "3"}).job_id == "88"
    assert load({"TAILRACE_JOB_ID": "88"}).job_id == "88"


def test_tailrace_toml_below_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tailrace.toml").write_text(
        'database_url = "postgresql://from-toml/db"\nworker_nice = 3\nk8s_namespace = "t"\n'
        "ingest_db_port = 5433\n"
    )
    s = load({"K8S_NAMESPACE": "from-env"})
    assert (s.database_url, s.worker_nice, s.k8s_namespace) == (
        "postgresql://from-toml/db",
        3,
        "from-env",
    )
    assert s.origin("worker_nice") == "toml tailrace.toml"
    assert s.ingest_db_port == "5433"  # a TOML number where the setting is text
    assert s.origin("k8s_namespace") == "env K8S_NAMESPACE"
    other = tmp_path / "elsewhere.toml"
    other.write_text("worker_nice = -2\n")
    with pytest.raises(ConfigurationError, match=r"elsewhere.toml: worker_nice=-2: expected"):
        load({"TAILRACE_CONFIG": str(other)})
    other.write_text("worker_nise = 2\n")
    with pytest.raises(ConfigurationError, match="worker_nise is not a setting"):
        load({"TAILRACE_CONFIG": str(other)})
    with pytest.raises(ConfigurationError, match=r"TAILRACE_CONFIG='nowhere\.toml': no such"):
        load({"TAILRACE_CONFIG": "nowhere.toml"})


def test_current_is_read_once_and_again_when_the_environment_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TAILRACE_DATABASE_URL", "postgresql://one/db")
    first = current()
    assert current() is first
    monkeypatch.setenv("TAILRACE_DATABASE_URL", "postgresql://two/db")
    assert database_url() == "postgresql://two/db"
    assert database_url("sqlite:///given.db") == "sqlite:///given.db"


def test_tailrace_config_shows_sources_and_masks_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tailrace.toml").write_text('k8s_namespace = "from-toml"\n')
    env = {
        "DATABASE_URL": "postgresql://me:hunter2-db@db:5432/jobs",
        "TAILRACE_API_TOKENS": "token-hunter2-0123456789",
        "REPOSITORY_AUTH_TOKEN": "hunter2-repo",
        "AWS_SECRET_ACCESS_KEY": "hunter2-aws",
        "KAFKA_SASL_PASSWORD": "hunter2-kafka",
        "TAILRACE_SINK_WAREHOUSE": "postgresql://w:hunter2-sink@h/db?password=hunter2-p",
        "TAILRACE_LOG_LEVEL": "WARNING",
    }
    result = CliRunner().invoke(cli, ["config"], env=env)
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()}
    assert "postgresql://me:***@db:5432/jobs" in lines["TAILRACE_DATABASE_URL"]
    assert lines["TAILRACE_DATABASE_URL"].endswith("env DATABASE_URL")
    assert lines["TAILRACE_K8S_NAMESPACE"].endswith("toml tailrace.toml")
    assert lines["TAILRACE_WORKER_NICE"].split()[1:] == ["10", "default"]
    for name in ("TAILRACE_API_TOKENS", "AWS_SECRET_ACCESS_KEY", "TAILRACE_KAFKA_SASL_PASSWORD"):
        assert "***" in lines[name], lines[name]
    rows = [
        json.loads(line)
        for line in CliRunner().invoke(cli, ["config", "--json"], env=env).output.splitlines()
    ]
    assert {r["env"] for r in rows} >= {env_names(f)[0] for f in Settings.model_fields}
    assert "hunter2" not in json.dumps(rows)


def test_a_bad_setting_is_one_line_from_the_cli(tmp_path: Path) -> None:
    env = {**os.environ, "TAILRACE_WORKER_NICE": "lots", "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run(
        [sys.executable, "-c", "from tailrace.cli import main; main()", "config"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr == (
        "error: TAILRACE_WORKER_NICE='lots': expected a whole number of at least 0\n"
    )


def test_the_reference_page_is_the_model() -> None:
    page = (ROOT / "docs" / "settings.md").read_text()
    assert page == reference(), "regenerate: tailrace config --reference > docs/settings.md"
    for field in Settings.model_fields:
        for name in env_names(field):
            assert f"`{name}`" in page, name


@pytest.mark.parametrize("args", [["--help"], ["worker", "--help"], ["config", "--help"]])
def test_help_loads_no_settings_model(args: list[str]) -> None:
    """pydantic-settings costs more to import than `tailrace --help` may take in all."""
    probe = (
        "import sys\nfrom tailrace.cli import main\ntry:\n    main()\nexcept SystemExit:\n"
        "    pass\nprint(sorted(m for m in sys.modules if m.startswith('pydantic')),"
        " file=sys.stderr)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run(
        [sys.executable, "-c", probe, *args], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.stderr.strip().splitlines()[-1] == "[]", result.stderr
