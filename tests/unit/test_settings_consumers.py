"""The modules that use a setting read it from the settings model: its ``TAILRACE_`` name, its
documented aliases and tailrace.toml all reach them, and a bad value names the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailrace.cli.worker import processing_enabled
from tailrace.engine.aging import default_aging_from_env, queue_aging_from_env
from tailrace.engine.capacity import capacities_from_env
from tailrace.engine.states import Priority
from tailrace.errors import ConfigurationError
from tailrace.objects.merge_requests import MergeSettings, client_from_env


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A directory without tailrace.toml, and none of the settings under test inherited."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TAILRACE_CONFIG", raising=False)
    for name in (
        "TAILRACE_PRIORITY_AGING_S",
        "TAILRACE_QUEUE_AGING_S",
        "TAILRACE_WORKER_ENABLED",
        "QUARKUS_SCHEDULER_ENABLED",
        "MINIO_BUCKET",
        "MINIO_ENDPOINT",
        "MINIO_SECURE",
        "TAILRACE_MERGE_TOPIC",
        *(f"{p}JOBS_QUEUE_CAPACITY_{q.name}" for p in ("", "TAILRACE_") for q in Priority),
    ):
        monkeypatch.delenv(name, raising=False)


def _toml(text: str) -> None:
    Path("tailrace.toml").write_text(text, encoding="utf-8")


def test_queue_capacity_under_its_documented_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAILRACE_JOBS_QUEUE_CAPACITY_CRITICAL", "5")
    monkeypatch.setenv("JOBS_QUEUE_CAPACITY_BULK", "3")
    _toml("jobs_queue_capacity_low = 7\n")
    assert capacities_from_env() == {Priority.CRITICAL: 5, Priority.LOW: 7, Priority.BULK: 3}
    monkeypatch.setenv("JOBS_QUEUE_CAPACITY_HIGH", "0")
    with pytest.raises(ConfigurationError, match="JOBS_QUEUE_CAPACITY_HIGH='0': expected a whole"):
        capacities_from_env()


def test_priority_aging_from_the_toml_file() -> None:
    _toml('priority_aging_s = 30\nqueue_aging_s = "reports=600, fifo=0"\n')
    assert default_aging_from_env() == 30.0
    assert queue_aging_from_env() == {"reports": 600.0, "fifo": 0.0}


def test_priority_aging_default_when_unset() -> None:
    assert default_aging_from_env(45.0) == 45.0
    assert queue_aging_from_env() == {}


def test_worker_enabled_from_the_toml_file_and_its_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    assert processing_enabled() is True
    _toml("worker_enabled = false\n")
    assert processing_enabled() is False
    monkeypatch.setenv("QUARKUS_SCHEDULER_ENABLED", "true")  # the environment wins over the file
    assert processing_enabled() is True
    monkeypatch.setenv("QUARKUS_SCHEDULER_ENABLED", "maybe")
    with pytest.raises(ConfigurationError, match="QUARKUS_SCHEDULER_ENABLED='maybe': expected"):
        processing_enabled()


def test_merge_settings_prefer_tailrace_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINIO_BUCKET", "theirs")
    monkeypatch.setenv("TAILRACE_MERGE_BUCKET", "ours")
    _toml('merge_topic = "uploads-done"\nminio_endpoint = "minio.internal:9000"\n')
    monkeypatch.setenv("TAILRACE_MINIO_SECURE", "true")
    settings = MergeSettings.from_env()
    assert (settings.bucket, settings.topic) == ("ours", "uploads-done")
    assert client_from_env().meta.endpoint_url == "https://minio.internal:9000"
