"""Small pieces: priorities, retry policy, settings, argument mapping, SQL files."""

from __future__ import annotations

import inspect
import random

import pytest

import tailrace
from tailrace.db.queries import load_queries
from tailrace.engine.retry import RetryPolicy
from tailrace.engine.states import DEFAULT_MAX_ATTEMPTS, JobState, Priority
from tailrace.engine.tasks import call_args
from tailrace.settings import database_url, redact_url


def test_priority_parsing() -> None:
    assert Priority.parse_list("critical, HIGH") == [Priority.CRITICAL, Priority.HIGH]
    assert Priority.parse(4) is Priority.BULK
    with pytest.raises(ValueError, match="unknown priority 'URGENT'"):
        Priority.parse("URGENT")


def test_seed_attempt_defaults() -> None:
    assert DEFAULT_MAX_ATTEMPTS[Priority.CRITICAL] == 5
    assert {DEFAULT_MAX_ATTEMPTS[p] for p in Priority if p is not Priority.CRITICAL} == {3}


def test_finished_states() -> None:
    assert {s for s in JobState if s.finished} == {
        JobState.SUCCEEDED,
        JobState.DEAD,
        JobState.CANCELLED,
    }


def test_backoff_grows_exponentially_within_jitter_and_cap() -> None:
    policy = RetryPolicy(base_s=1, factor=2, max_s=10, jitter=0.5)
    rng = random.Random(1)
    for attempt, ceiling in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 10), (9, 10)]:
        for _ in range(50):
            assert ceiling * 0.5 <= policy.delay(attempt, rng) <= ceiling
    assert RetryPolicy(base_s=3, jitter=0).delay(2) == 6


def test_database_url_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAILRACE_DATABASE_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert database_url().startswith("sqlite:///")
    monkeypatch.setenv("DATABASE_URL", "postgresql://a/b")
    assert database_url() == "postgresql://a/b"
    monkeypatch.setenv("TAILRACE_DATABASE_URL", "postgresql://c/d")
    assert database_url() == "postgresql://c/d"
    assert database_url("sqlite:///x.db") == "sqlite:///x.db"


def test_redact_url_hides_passwords() -> None:
    assert redact_url("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert "secret" not in redact_url("postgresql://u:se@cret@h/db")


def test_call_args() -> None:
    assert call_args({"a": 1}) == ((), {"a": 1})
    assert call_args([1, 2]) == ((1, 2), {})
    assert call_args(None) == ((), {})
    assert call_args("x") == (("x",), {})


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_each_store_has_the_same_named_queries(store: str) -> None:
    package = f"tailrace.engine.store.{store}"
    queries = load_queries(package)
    assert {
        "jobs_claim",
        "jobs_succeed",
        "lease_renew",
        "leases_reap",
        "jobs_replay",
        "jobs_discard",
        "jobs_prune",
        "cron_tick_insert",
    } <= set(queries)


def test_public_surface() -> None:
    for name in tailrace.__all__:
        assert getattr(tailrace, name) is not None
    assert {"App", "Worker", "Priority", "JobState", "RetryPolicy"} <= set(tailrace.__all__)


def test_job_options_are_the_keywords_new_job_takes() -> None:
    """enqueue checks its options against JobOptions: one new_job takes but JobOptions lacks
    would be refused, one it lists but new_job lacks would fail deeper down."""
    params = inspect.signature(tailrace.App.new_job).parameters.values()
    keywords = {p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert tailrace.JobOptions.__optional_keys__ == keywords
    assert tailrace.JobOptions.__required_keys__ == frozenset()


def test_attempt_limits_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from tailrace import App
    from tailrace.errors import ConfigurationError

    monkeypatch.setenv("JOBS_RETRY_MAX_ATTEMPTS_CRITICAL", "8")
    monkeypatch.setenv("JOBS_RETRY_MAX_ATTEMPTS_DEFAULT", "2")
    app = App("sqlite:///unused.db")
    assert app.max_attempts[Priority.CRITICAL] == 8
    assert app.max_attempts[Priority.DEFAULT] == 2
    assert app.max_attempts[Priority.LOW] == 3
    monkeypatch.setenv("JOBS_RETRY_MAX_ATTEMPTS_LOW", "lots")
    with pytest.raises(ConfigurationError, match="JOBS_RETRY_MAX_ATTEMPTS_LOW='lots'"):
        App("sqlite:///unused.db")
