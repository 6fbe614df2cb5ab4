"""`tailrace ingest` over many small files: the cost of claiming one file at a time.

Compares, in the same run and on the same files (each round on a fresh record and output):
`tailrace ingest` (one claim loop, files read in its own process), `tailrace ingest
--workers 2`, and the batch peer `tailrace reprocess` (one job, worker processes). Medians of
`--rounds`; the 1-minute load average at start and end. Writes RESULTS.md beside this file.

    python bench/ingest/run.py [--files 200] [--lines 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def timed(args: list[str], cwd: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    for name in ("TAILRACE_DATABASE_URL", "DATABASE_URL", "DB_HOST"):
        env.pop(name, None)
    shutil.rmtree(cwd / ".tailrace", ignore_errors=True)
    (cwd / "out.ndjson").unlink(missing_ok=True)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "tailrace", *args],
        cwd=cwd,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--lines", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from tailrace.pipeline.samples import write_samples

    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        write_samples(cwd / "logs", opts.files, opts.lines, seed=1)
        sink = ["--sink", f"file://{cwd}/out.ndjson", "--json"]
        runs = {
            "ingest (1 claim loop)": ["ingest", "logs", *sink],
            "ingest --workers 2": ["ingest", "logs", *sink, "--workers", "2"],
            "reprocess (batch peer)": ["reprocess", "logs", *sink],
        }
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(opts.rounds):  # taking turns, so that load changes hit each alike
            for name, args in runs.items():
                times[name].append(timed(args, cwd))
    load_end = os.getloadavg()[0]
    peer = statistics.median(times["reprocess (batch peer)"])
    lines = [
        "# Ingest benchmark",
        "",
        f"Measured {datetime.now(UTC).isoformat(timespec='seconds')} with"
        f" `python bench/ingest/run.py --files {opts.files} --lines {opts.lines}"
        f" --rounds {opts.rounds}`: {opts.files} sample files of {opts.lines} lines, file sink,"
        f" SQLite record. 1-minute load {load_start:.2f} at start, {load_end:.2f} at end"
        f" ({os.cpu_count()} cores, shared with other sessions: compare the ratios).",
        "",
        "| run | median s | rounds | ratio to the batch peer |",
        "|---|---|---|---|",
    ]
    for name, values in times.items():
        median = statistics.median(values)
        rounds = ", ".join(f"{v:.1f}" for v in values)
        lines.append(f"| {name} | {median:.1f} | {rounds} | {median / peer:.2f} |")
    (HERE / "RESULTS.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
