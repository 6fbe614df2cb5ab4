"""The user docs: no internal jargon, a guide per example and an example per guide (each with
the test that runs it), and links that lead somewhere."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
USER_DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# the project's internal vocabulary: its design documents and its tracker
JARGON = re.compile(r"\breferences? ?0\d\d\b|\breference-0\d\d\b|\bissue #?\d+|\bwaves?\b", re.I)


@pytest.mark.parametrize("page", USER_DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_internal_jargon(page: Path) -> None:
    found = [
        f"{number}: {line.strip()}"
        for number, line in enumerate(page.read_text().splitlines(), 1)
        if JARGON.search(line)
    ]
    assert found == []


def test_every_example_has_a_guide_and_a_test_and_every_guide_an_example() -> None:
    guides = {p.name: p.read_text() for p in (ROOT / "docs" / "guides").glob("*.md")}
    examples = sorted(p for p in (ROOT / "examples").iterdir() if p.is_dir())
    assert len(examples) >= 5
    for example in examples:
        assert (example / "run.sh").is_file(), example.name
        assert any(f"examples/{example.name}/" in text for text in guides.values()), example.name
        test = ROOT / "tests" / "examples" / f"test_{example.name.replace('-', '_')}.py"
        assert test.is_file(), f"no {test.relative_to(ROOT)}"
    for name, text in guides.items():
        if name not in ("README.md", "shell-completion.md"):
            assert re.search(r"examples/[a-z0-9-]+/", text), name


@pytest.mark.parametrize(
    "page",
    [*sorted((ROOT / "docs" / "guides").glob("*.md")), ROOT / "docs" / "what-tailrace-replaces.md"],
    ids=lambda p: p.name,
)
def test_relative_links_resolve(page: Path) -> None:
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
        assert (page.parent / target).exists(), f"{page.name}: {target}"


def test_no_internal_jargon_in_the_api_description(tmp_path: Path) -> None:
    """The OpenAPI document (its descriptions come from the routes' docstrings) is a user doc
    too."""
    pytest.importorskip("fastapi")
    from tailrace.api import ApiConfig, create_app

    app = create_app(ApiConfig.from_environment(f"sqlite:///{tmp_path}/t.db"))
    text = json.dumps(app.openapi())
    assert JARGON.findall(text) == []
