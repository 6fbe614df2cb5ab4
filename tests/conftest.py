from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import postgres_schema


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files with a slow test first, each file's tests kept together and in order.

    Under xdist (`--dist loadfile --no-loadscope-reorder`, see pyproject) workers take files
    in this order: a long file taken last would run alone while the other worker idles.
    """
    slow = {item.path for item in items if item.get_closest_marker("slow") is not None}
    items.sort(key=lambda item: item.path not in slow)  # stable: same order within each group


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same behaviour suite runs on both stores."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/tailrace.db"
    else:
        with postgres_schema() as url:
            yield url


@pytest.fixture
def pg_url() -> Iterator[str]:
    with postgres_schema() as url:
        yield url
