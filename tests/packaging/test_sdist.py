"""The source distribution holds the package and what describes it, nothing else (it was
59 MB with the quick start's outputs, tests and benchmarks); a wheel built from it alone has
every file the package needs at run time (SQL, migrations, the dashboard's static files), and
installed in a fresh virtual environment it serves the dashboard."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import time
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.services import accepts, free_port, stop_process

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
    _serves_its_ui_from_a_fresh_venv(wheel, tmp_path)


def _serves_its_ui_from_a_fresh_venv(wheel: Path, tmp_path: Path) -> None:
    """The wheel installed in a new venv (its dependencies from this environment: no network
    here) runs `tailrace serve` from its own files, not from the source tree."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python, tailrace = venv / "bin" / "python", venv / "bin" / "tailrace"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TAILRACE_DATABASE_URL")}
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        env=env,
        timeout=120,
    )
    where = subprocess.run(
        [python, "-c", "import tailrace; print(tailrace.__file__, tailrace.__version__)"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=tmp_path,
    ).stdout.split()
    assert Path(where[0]).is_relative_to(venv), where
    assert where[1] == wheel.name.split("-")[1]

    work = tmp_path / "served"
    work.mkdir()
    port = free_port()
    with (work / "serve.log").open("wb") as log:
        server = subprocess.Popen(
            [tailrace, "serve", "--port", str(port)],
            cwd=work,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while not accepts(port):
            assert server.poll() is None, (work / "serve.log").read_text()
            assert time.monotonic() < deadline, (work / "serve.log").read_text()
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(f"{base}/login", timeout=10) as response:
            assert "<form" in response.read().decode()
        token = (work / ".tailrace" / "api-token").read_text().strip()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        form = urllib.parse.urlencode({"token": token, "next": "/"}).encode()
        with opener.open(f"{base}/login", data=form, timeout=10) as response:
            page = response.read().decode()
        assert response.url == f"{base}/" and "<html" in page.lower()
        with opener.open(f"{base}/static/app.js", timeout=10) as response:
            assert response.status == 200 and response.read()
    finally:
        stop_process(server, 10)
