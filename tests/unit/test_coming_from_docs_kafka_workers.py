"""docs/coming-from/kafka-workers.md names a test for each row it claims: each must exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "coming-from" / "kafka-workers.md"


def test_every_test_the_page_names_exists() -> None:
    text = PAGE.read_text(encoding="utf-8")
    named = set(
        re.findall(r"`((?:unit|e2e|integration|conformance)/[\w/]+\.py)(?:::(\w+))?`", text)
    )
    assert len(named) >= 15
    for path, function in named:
        source = (ROOT / "tests" / path).read_text(encoding="utf-8")
        if function:
            assert f"def {function}(" in source, f"{path}::{function} is not a test"


def test_the_page_speaks_of_the_system_not_of_reference_numbers() -> None:
    assert not re.search(r"reference \d", PAGE.read_text(encoding="utf-8"), re.IGNORECASE)
