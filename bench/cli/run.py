"""How long `tailrace --help` takes, against the bare interpreter in the same run.

Each round runs, interleaved so that load swings hit all alike: `python -c pass` (the floor
no CLI can beat), `python -c "import click"` (the floor of a click CLI), and
`tailrace --help` (through `python -c`, with this tree's `src/` first on the path). Reports
the median of each over the rounds, and the ratios; `uptime` at start and end. With
`--before OTHER/src`, the same command from another tree too (the code before a change).

    python bench/cli/run.py [--rounds 15] [--before /path/to/main/src]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
CASES = {
    "python -c pass": "pass",
    "import click": "import click",
    "tailrace --help": "from tailrace.cli import main; main()",
}


def _once(code: str, src: Path = SRC) -> float:
    env = {**os.environ, "PYTHONPATH": str(src)}
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", code, "--help"], env=env, check=True, stdout=subprocess.DEVNULL
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument(
        "--before", type=Path, help="another tree's src/ to time too (e.g. the main branch's)"
    )
    options = parser.parse_args()
    rounds = options.rounds
    print("uptime at start:", subprocess.run(["uptime"], capture_output=True, text=True).stdout)
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(rounds):
        for name, code in CASES.items():
            times[name].append(_once(code))
        if options.before:
            times.setdefault("--help (before)", []).append(
                _once(CASES["tailrace --help"], options.before)
            )
    medians = {name: statistics.median(values) for name, values in times.items()}
    floor = medians["python -c pass"]
    for name, value in medians.items():
        print(f"{name:18} median {value * 1000:7.0f} ms  x{value / floor:.2f} of bare python")
    print(
        f"tailrace --help over bare python: +{(medians['tailrace --help'] - floor) * 1000:.0f} ms"
    )
    print("uptime at end:", subprocess.run(["uptime"], capture_output=True, text=True).stdout)


if __name__ == "__main__":
    main()
