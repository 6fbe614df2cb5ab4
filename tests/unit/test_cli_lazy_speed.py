"""`tailrace --help` answers in under 0.25 s: it imports no command (test_cli_lazy.py says
which modules); this measures it.

Measured as the CPU time the process used (user + system), the best of a few runs: on an idle
machine that is its wall time, and unlike wall time it does not grow when the machine running
the suite is busy with other tests (on 2 cores at a load of 11,
wall time was 5 times the CPU time)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
LIMIT_S = 0.25


def _cpu_seconds(*args: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(
        [sys.executable, "-m", "tailrace", *args], capture_output=True, env=env, timeout=60
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert result.returncode == 0, result.stderr
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def test_help_answers_in_a_quarter_of_a_second() -> None:
    took = min(_cpu_seconds("--help") for _ in range(5))
    assert took < LIMIT_S, f"tailrace --help took {took:.3f} s of CPU at best"


def test_the_measure_would_see_a_slow_help() -> None:
    # the same measure, of a process that imports what --help must not: above the limit
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        [sys.executable, "-c", "import tailrace.api.app, tailrace.engine.worker, boto3"],
        env=env,
        check=True,
        timeout=60,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime) > LIMIT_S
