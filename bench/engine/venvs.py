"""The peers' virtualenvs, made by the benchmark itself under bench/.venvs/ (git-ignored).

- ``peers``: this interpreter's Python with ``requirements-peers.txt`` (Celery, Dramatiq, RQ,
  Procrastinate).
- ``peers-312``: Oban for Python needs Python >= 3.12: made from the first 3.12 found
  ($BENCH_PYTHON312, ``python3.12`` on PATH, pyenv's versions), or skipped with a note.

A venv is rebuilt when its requirements file changed (a hash is kept beside it), so a rerun
costs nothing and a new pin is picked up.

    python bench/engine/venvs.py      # make them now; prints the interpreters as JSON
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENVS = HERE.parent / ".venvs"
REQUIREMENTS = HERE / "requirements-peers.txt"


@dataclass(frozen=True)
class Peers:
    python: str  # runs every peer but Oban
    python312: str | None  # runs Oban; None when no Python 3.12 is on this machine
    note: str = ""


def find_python312() -> str | None:
    candidates = [os.environ.get("BENCH_PYTHON312", ""), shutil.which("python3.12") or ""]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python")))
    for candidate in candidates:
        if candidate and Path(candidate).exists() and _is_312(candidate):
            return candidate
    return None


def _is_312(python: str) -> bool:
    """Whether ``python`` runs and is 3.12 (a pyenv shim may exist and fail to run)."""
    probe = [python, "-c", "import sys; print(sys.version_info[:2] == (3, 12))"]
    done = subprocess.run(probe, capture_output=True, text=True)
    return done.returncode == 0 and done.stdout.strip() == "True"


def ensure(name: str, base_python: str, requirements: Path = REQUIREMENTS) -> str:
    """The venv ``name`` made from ``base_python`` with ``requirements``; its interpreter."""
    venv = VENVS / name
    python = venv / "bin" / "python"
    stamp = venv / "requirements.sha256"
    wanted = hashlib.sha256(requirements.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return str(python)
    print(f"venvs: making {venv} from {base_python}", file=sys.stderr, flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-r", str(requirements)],
        check=True,
        stdout=sys.stderr,
    )
    stamp.write_text(wanted)
    return str(python)


def ensure_all() -> Peers:
    python = ensure("peers", sys.executable)
    base312 = find_python312()
    if base312 is None:
        note = "oban: skipped, no Python 3.12 on this machine (set BENCH_PYTHON312)"
        return Peers(python, None, note)
    return Peers(python, ensure("peers-312", base312))


if __name__ == "__main__":
    print(json.dumps(ensure_all().__dict__, indent=2))
