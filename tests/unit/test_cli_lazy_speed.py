"""`tailrace --help` answers in under 0.25 s: it imports no command (test_cli_lazy.py says
which modules); this measures it, the best of a few runs (the machine running the suite is
busy with the other tests)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
LIMIT_S = 0.25


def _best_of(runs: int, *args: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "tailrace", *args], capture_output=True, env=env, timeout=60
        )
        best = min(best, time.perf_counter() - started)
        assert result.returncode == 0, result.stderr
    return best


def test_help_answers_in_a_quarter_of_a_second() -> None:
    took = _best_of(5, "--help")
    assert took < LIMIT_S, f"tailrace --help took {took:.3f} s at best"
