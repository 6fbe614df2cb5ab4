"""Run the engine benchmark and the peers' in one go; write RESULTS.md and results.json.

    python bench/engine/run.py [--million] [--skip-peers]

tailrace runs from this interpreter; the peers from /work/bench-venv (see
requirements-peers.txt; $BENCH_PEERS_PYTHON overrides). Targets come from issue 2.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PEERS_PY = os.environ.get("BENCH_PEERS_PYTHON", "/work/bench-venv/bin/python")


def run_json(cmd: list[str]) -> Any:
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=HERE.parent.parent)
    return json.loads(out.stdout)


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}{unit}" if value >= 100 else f"{value:.2f}{unit}"


def report(
    ours: dict[str, Any], peers: list[dict[str, Any]], command: str, measured_at: str
) -> str:
    lat = ours["pickup_latency"]
    rows = [(
        "**tailrace** (PG)", ours["throughput"]["jobs_per_s"], ours["throughput"]["jobs"],
        ours["bulk_enqueue"]["jobs_per_s"], ours["single_enqueue"]["jobs_per_s"],
        lat["p50_ms"], lat["p90_ms"], lat["p99_ms"],
    )]
    for p in peers:
        rows.append((
            f"{p['peer']} ({p['store']})", p.get("throughput_jobs_s"), p.get("jobs"),
            p.get("bulk_enqueue_jobs_s"), p.get("single_enqueue_jobs_s"),
            p.get("pickup_p50_ms"), p.get("pickup_p90_ms"), p.get("pickup_p99_ms"),
        ))
    lines = [
        "# Engine benchmark: latest result",
        "",
        f"Measured {measured_at} UTC on {platform.node()} "
        f"({os.cpu_count()} cores), all in one run of `{command}`.",
        "No-op jobs, 2 worker processes; PostgreSQL 127.0.0.1:5432 and Redis 127.0.0.1:6379 on "
        "this machine, durable commits (no `synchronous_commit=off` for enqueue or completion).",
        "",
        "| system | worked jobs/s (jobs) | bulk enqueue jobs/s | single enqueue jobs/s "
        "| pickup p50 / p90 / p99 ms |",
        "|---|---|---|---|---|",
    ]
    for name, tp, n, bulk, single, p50, p90, p99 in rows:
        lines.append(
            f"| {name} | {fmt(tp)} ({fmt(n)}) | {fmt(bulk)} | {fmt(single)} "
            f"| {fmt(p50)} / {fmt(p90)} / {fmt(p99)} |"
        )
    best_tp = max((p.get("throughput_jobs_s") or 0) for p in peers) if peers else 0
    best_p99 = min((p["pickup_p99_ms"] for p in peers if p.get("pickup_p99_ms")), default=None)
    tp = ours["throughput"]["jobs_per_s"]
    lines += [
        "",
        "## Against the targets of issue 2",
        "",
        f"- worked throughput: {tp:,} jobs/s (target ≥ 15,000"
        + (f"; {tp / best_tp:.1f}x the best peer, {best_tp:,.0f}" if best_tp else "") + ")",
        f"- with a sync no-op task: {ours['throughput_sync_task']['jobs_per_s']:,} jobs/s",
        f"- bulk enqueue: {ours['bulk_enqueue']['jobs_per_s']:,} jobs/s (target ≥ 100,000)",
        f"- pickup latency p99: {lat['p99_ms']} ms (target < 5 ms"
        + (f" and below the best peer's {best_p99} ms" if best_p99 else "") + ")",
        f"- single enqueue: {ours['single_enqueue']['jobs_per_s']:,} jobs/s",
    ]
    if "million" in ours:
        m = ours["million"]
        t = m["table"]
        after = t["after_prune_and_vacuum"]
        lines += [
            f"- 1,000,000 jobs worked at {m['jobs_per_s']:,} jobs/s; then the job table held "
            f"{t['total_mib']} MiB ({t['heap_mib']} MiB heap), {t['live_tuples']:,} live and "
            f"{t['dead_tuples']:,} dead tuples; after pruning the finished jobs and VACUUM: "
            f"{after['total_mib']} MiB ({after['heap_mib']} MiB heap)."
            + (f" ({m['source']})" if "source" in m else ""),
        ]
    if "steady" in ours:
        st = ours["steady"]
        sizes = ", ".join(f"{x['total_mib']:.0f}" for x in st["table_every_100k"])
        lines += [
            f"- steady state, jobs arriving while 2 workers work and prune them (retention 2 s): "
            f"{st['jobs']:,} jobs at {st['jobs_per_s']:,} jobs/s; the job table, in MiB after "
            f"each 100,000 jobs: {sizes}." + (f" ({st['source']})" if "source" in st else ""),
        ]
    lines += ["", "Peer settings and notes:", ""]
    for p in peers:
        lines.append(f"- {p['peer']}: {p.get('settings', '')} {p.get('notes') or ''}".rstrip())
    lines += ["", "Raw figures: `results.json`.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--million", action="store_true", help="add the 1M-job bloat run")
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite RESULTS.md from results.json without measuring")
    args = parser.parse_args()
    if args.report_only:
        saved = json.loads((HERE / "results.json").read_text())
        command = "python bench/engine/run.py --million"
        (HERE / "RESULTS.md").write_text(
            report(saved["tailrace"], saved["peers"], command, saved["measured_at"])
        )
        return
    command = "python bench/engine/run.py" + (" --million" if args.million else "")
    ours = run_json([sys.executable, str(HERE / "tailrace_bench.py")]
                    + (["--million"] if args.million else []))
    peers = [] if args.skip_peers else run_json([PEERS_PY, str(HERE / "peers" / "run_all.py")])
    measured_at = f"{datetime.now(UTC):%Y-%m-%d %H:%M}"
    saved = {"measured_at": measured_at, "tailrace": ours, "peers": peers}
    (HERE / "results.json").write_text(json.dumps(saved, indent=2))
    (HERE / "RESULTS.md").write_text(report(ours, peers, command, measured_at))
    print((HERE / "RESULTS.md").read_text())


if __name__ == "__main__":
    main()
