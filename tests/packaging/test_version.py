"""The version comes from the git tag (docs/releasing.md); a tree without history or tags
still builds; the changelog has a section per release."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip(
    "hatch_vcs", reason="the version tests need hatch-vcs (pip install -e '.[test]')"
)

GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}
GIT_ENV.pop("SETUPTOOLS_SCM_PRETEND_VERSION", None)


def _tree(where: Path) -> Path:
    where.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, where / name)
    (where / "src" / "tailrace").mkdir(parents=True)
    (where / "src" / "tailrace" / "__init__.py").write_text("")
    return where


def _version(tree: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "hatchling", "version"],
        cwd=tree,
        capture_output=True,
        text=True,
        env=GIT_ENV,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _git(tree: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=tree, check=True, env=GIT_ENV, capture_output=True)


def test_the_version_is_the_tag_s_and_commits_after_it_make_a_dev_version(
    tmp_path: Path,
) -> None:
    tree = _tree(tmp_path / "repo")
    _git(tree, "init", "-q")
    _git(tree, "add", ".")
    _git(tree, "commit", "-q", "-m", "first")
    _git(tree, "tag", "v9.8.7")
    assert _version(tree) == "9.8.7"
    (tree / "README.md").write_text("changed\n")
    _git(tree, "commit", "-q", "-am", "after the release")
    assert _version(tree).startswith("9.8.8.dev1+")


def test_a_tree_without_git_has_the_fallback_version(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "plain")
    fallback = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["version"][
        "fallback-version"
    ]
    assert _version(tree) == fallback


def test_the_changelog_has_unreleased_then_a_section_per_release() -> None:
    headings = re.findall(r"^## (.+)$", (ROOT / "CHANGELOG.md").read_text(), re.MULTILINE)
    assert headings[0] == "[Unreleased]"
    releases = headings[1:]
    for heading in releases:
        assert re.fullmatch(r"\[\d+\.\d+\.\d+\] - \d{4}-\d{2}-\d{2}", heading), heading
    versions = [tuple(map(int, h[1:].split("]")[0].split("."))) for h in releases]
    assert versions == sorted(versions, reverse=True), "newest first"
    # every release tagged in this clone (if it has tags) has its section
    tags = subprocess.run(
        ["git", "tag", "--list", "v[0-9]*"], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()
    sections = {h[1:].split("]")[0] for h in releases}
    assert {tag[1:] for tag in tags} <= sections
