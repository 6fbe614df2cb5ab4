"""docs/coming-from/priority-job-framework.md names a test for each row it claims: each must
exist, and each of the framework's settings has its row."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "coming-from" / "priority-job-framework.md"


def test_every_test_the_page_names_exists() -> None:
    text = PAGE.read_text(encoding="utf-8")
    named = set(
        re.findall(r"`((?:unit|e2e|integration|conformance|deploy)/[\w/]+\.py)(?:::(\w+))?`", text)
    )
    assert len(named) >= 15
    for path, function in named:
        source = (ROOT / "tests" / path).read_text(encoding="utf-8")
        if function:
            assert f"def {function}(" in source, f"{path}::{function} is not a test"


def test_every_setting_of_the_framework_has_a_row() -> None:
    rows = [
        line for line in PAGE.read_text(encoding="utf-8").splitlines() if line.startswith("| `")
    ]
    for setting in (
        "QUARKUS_SCHEDULER_ENABLED",
        "JOBS_QUEUE_CAPACITY_<PRIORITY>",
        "JOBS_RETRY_MAX_ATTEMPTS_<PRIORITY>",
        "WORKER_PRIORITY_FILTER",
    ):
        assert any(row.startswith(f"| `{setting}") for row in rows), setting
