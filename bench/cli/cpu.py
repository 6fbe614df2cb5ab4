"""CPU time (user + system) of CLI start-ups, min and median of N runs: on a machine loaded by
other processes wall time says little, CPU time much more.

    python bench/cli/cpu.py [--rounds 12] [--before /work/main/src]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def cpu_s(cmd: list[str], env: dict[str, str], rounds: int) -> tuple[float, float]:
    times = []
    for _ in range(rounds):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        times.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    times.sort()
    return times[0], times[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--before", help="another src/ to compare with (e.g. main's)")
    args = parser.parse_args()
    py = sys.executable
    cases: list[tuple[str, str | None, list[str]]] = [
        ("python -c pass", None, [py, "-c", "pass"]),
        ("python -c 'import pydantic_settings'", None, [py, "-c", "import pydantic_settings"]),
    ]
    for label, src in (("now", str(SRC)), ("before", args.before)):
        if src is None:
            continue
        for argv in (["--help"], ["worker", "--help"], ["config"]):
            cases.append(
                (f"tailrace {' '.join(argv)} ({label})", src, [py, "-m", "tailrace", *argv])
            )
    print(f"load average at start {os.getloadavg()}")
    for label, src, cmd in cases:
        env = dict(os.environ)
        if src:
            env["PYTHONPATH"] = src
        low, median = cpu_s(cmd, env, args.rounds)
        print(f"| {label} | {low * 1000:.0f} | {median * 1000:.0f} |")
    print(f"load average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
