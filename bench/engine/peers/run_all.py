"""Run every peer benchmark in this folder in turn and print their results as one JSON list.

Each peer script runs as its own subprocess (one at a time, so they do not load
the 2 cores together) and prints one JSON object; a script that fails or runs
too long yields an object with null figures and the reason in "notes". Oban
needs Python >= 3.12 and runs from the interpreter in $BENCH_PY312 (bench/engine/run.py
sets it to the venv it made, or leaves it empty when there is no Python 3.12: then Oban is
skipped with a note); the rest use this interpreter.

    bench/.venvs/peers/bin/python bench/engine/peers/run_all.py [--only celery rq ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import _common as c

PY312 = os.environ.get("BENCH_PY312", "")
PEERS: dict[str, tuple[str, str, str]] = {
    # name: (script, interpreter, store)
    "procrastinate": ("procrastinate_pg.py", sys.executable, "postgresql"),
    "celery": ("celery_redis.py", sys.executable, "redis"),
    "dramatiq": ("dramatiq_redis.py", sys.executable, "redis"),
    "rq": ("rq_redis.py", sys.executable, "redis"),
    "oban": ("oban_pg.py", PY312, "postgresql"),
}
TIMEOUT_S = 240


def run_one(name: str) -> dict[str, object]:
    script, python, store = PEERS[name]
    if not python:
        return c.result(name, store, "", notes="skipped: no Python 3.12 on this machine")
    if not Path(python).exists():
        return c.result(name, store, "", notes=f"not run: interpreter {python} not found")
    c.log(f"run_all: {name}")
    try:
        proc = subprocess.run(
            [python, str(c.PEERS_DIR / script)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return c.result(name, store, "", notes=f"failed: no result within {TIMEOUT_S} s")
    sys.stderr.write(proc.stderr)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        return c.result(name, store, "", notes=f"failed (exit {proc.returncode}): {tail[0]}")
    found: dict[str, object] = json.loads(lines[-1])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", choices=sorted(PEERS), default=list(PEERS))
    names = parser.parse_args().only
    print(json.dumps([run_one(name) for name in names], indent=1))


if __name__ == "__main__":
    main()
