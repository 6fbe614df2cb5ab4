"""The source distribution holds the package and what describes it, nothing else (it was
59 MB with the quick start's outputs, tests and benchmarks); a wheel built from it alone has
every file the package needs at run time (SQL, migrations, the dashboard's static files)."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("build", reason="the packaging tests need `build` (pip install -e '.[test]')")
pytest.importorskip("hatchling", reason="the packaging tests need `hatchling`")


def _build(kind: str, source: Path, out: Path) -> Path:
    result = subprocess.run(
        [sys.executable, "-m", "build", f"--{kind}", "--no-isolation", "-o", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = out.glob("*.tar.gz" if kind == "sdist" else "*.whl")
    return built


@pytest.mark.slow
def test_sdist_holds_only_the_package_and_builds_a_complete_wheel(tmp_path: Path) -> None:
    # the quick start's outputs in the tree must not end up in it
    logs = REPO_ROOT / "logs"
    made = not logs.exists()
    logs.mkdir(exist_ok=True)
    stray = logs / f"tailrace-sdist-test-{tmp_path.name}.ndjson"
    stray.write_text("{}\n")
    try:
        sdist = _build("sdist", REPO_ROOT, tmp_path / "sdist")
    finally:
        stray.unlink()
        if made:
            logs.rmdir()
    with tarfile.open(sdist) as tar:
        names = tar.getnames()
        tar.extractall(tmp_path / "unpacked", filter="data")
    top = {name.split("/", 2)[1] for name in names if name.count("/") >= 1}
    assert top <= {"src", "README.md", "CHANGELOG.md", "pyproject.toml", "PKG-INFO", ".gitignore"}
    assert all(n.split("/", 2)[2].startswith("tailrace") for n in names if "/src/" in n)
    assert sdist.stat().st_size < 2_000_000, f"{sdist.stat().st_size} bytes"

    (root,) = (tmp_path / "unpacked").iterdir()
    wheel = _build("wheel", root, tmp_path / "wheel")
    with zipfile.ZipFile(wheel) as zf:
        files = set(zf.namelist())
    assert "tailrace/cli/__init__.py" in files
    assert any(f.startswith("tailrace/engine/store/") and f.endswith(".sql") for f in files)
    assert any(f.startswith("tailrace/api/ui/static/") for f in files)
    in_tree = {
        p.relative_to(REPO_ROOT / "src").as_posix()
        for p in (REPO_ROOT / "src" / "tailrace").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert in_tree <= files, f"missing from the wheel: {sorted(in_tree - files)[:10]}"
