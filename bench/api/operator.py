"""The operator's reads with 1,000,000 engine jobs kept: a page of the engine jobs list and a
`/metrics` scrape, through `tailrace serve` on PostgreSQL. Writes OPERATOR.md and
operator.json here.

    python bench/api/operator.py [--jobs 1000000] [--requests 200] [--rounds 3]

Targets: the jobs list answers p99 < 100 ms, a scrape costs < 50 ms. Peers in the same run:
the same page by OFFSET (what the list did before), the old scrape's query (every job grouped
by queue, priority and state), `/healthz` (the HTTP stack alone) and `/readyz` (one database
round trip through the service: on a loaded machine, most of a scrape's time is this wait).

A scrape reads the reprocessing gauges fresh, in one query over the unfinished jobs, and the
queue gauges from a copy at most 5 s old (read again in the background).

The jobs are written straight by SQL, as a long-running installation would hold them: 98 %
succeeded (kept a day for inspection), the rest dead, running, due and scheduled, over 20
queues and the 5 priorities, finished over the last 24 hours.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg

HERE = Path(__file__).resolve().parent
PG = os.environ.get("TAILRACE_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")

FILL = """
INSERT INTO tailrace_jobs (queue, task, args, priority, state, attempts, max_attempts, run_at,
                           sort_at, created_at, started_at, finished_at, worker_id, errors)
SELECT 'queue-' || (n %% 20), 'bench.task_' || (n %% 7), jsonb_build_object('n', n), n %% 5,
       s.state, 1, 3, t, t, t, t + interval '20 ms',
       CASE WHEN s.state IN ('succeeded', 'dead') THEN t + interval '50 ms' END,
       CASE WHEN s.state = 'running' THEN 'bench-worker' END,
       CASE WHEN s.state = 'dead' THEN '[{"attempt": 1, "error": "ValueError: x"}]'::jsonb
            ELSE '[]'::jsonb END
FROM generate_series(1, %(n)s) AS n,
LATERAL (SELECT now() - make_interval(secs => (%(n)s - n) * 86400.0 / %(n)s) AS t) AS tt,
LATERAL (SELECT CASE WHEN n %% 100 = 1 THEN 'dead'
                     WHEN n %% 100 = 2 AND n > %(n)s - 20000 THEN 'running'
                     WHEN n > %(n)s - 5000 THEN 'pending'
                     ELSE 'succeeded' END AS state) AS s
"""
SCHEDULED = """
INSERT INTO tailrace_jobs (queue, task, priority, state, run_at, sort_at)
SELECT 'queue-' || (n % 20), 'bench.later', n % 5, 'pending',
       now() + interval '2 hours', now() + interval '2 hours'
FROM generate_series(1, 2000) AS n
"""
# reprocessing jobs kept too: 1,000 finished ones of 20 files each, and 5 running ones of 20
# files and 20 workers each (what the scrape's reprocessing gauges read)
REPROCESSING = [
    """
INSERT INTO reprocessing_jobs (id, config, status, created_at, total_files, total_workers,
                               total_bytes)
SELECT 'job' || n, '{}', CASE WHEN n <= 5 THEN 'running' ELSE 'completed' END,
       now() - make_interval(secs => n * 60), 20, 20, 20 * 1000000
FROM generate_series(1, 1000) AS n
""",
    """
INSERT INTO reprocessing_files (job_id, file_index, url, size, status, updated_at, lines, sent,
                                processed_bytes)
SELECT 'job' || n, i, 's3://bench/' || n || '/' || i, 1000000,
       CASE WHEN n <= 5 THEN 'running' ELSE 'completed' END, now(), 5000, 5000, 500000
FROM generate_series(1, 1000) AS n, generate_series(0, 19) AS i
""",
    """
INSERT INTO reprocessing_workers (job_id, worker_index, status, started_at, updated_at,
                                  total_lines, success_count, processed_bytes, total_bytes)
SELECT 'job' || n, i, 'running', now(), now(), 6000, 6000, 600000, 1000000
FROM generate_series(1, 5) AS n, generate_series(0, 19) AS i
""",
]
OLD_SCRAPE = (
    "SELECT queue, priority, state, count(*) FROM tailrace_jobs "
    "GROUP BY queue, priority, state ORDER BY queue, priority, state"
)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def fill(url: str, n: int) -> dict[str, int]:
    from tailrace.engine.app import App

    with App(url) as app:
        app.store.migrate()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(FILL, {"n": n})
        conn.execute(SCHEDULED)
        for statement in REPROCESSING:
            conn.execute(statement)
        conn.execute("VACUUM (ANALYZE)")
        rows = conn.execute("SELECT state, count(*) FROM tailrace_jobs GROUP BY state").fetchall()
    return {state: count for state, count in rows}


FAILED: dict[str, int] = {}


def timed(http: httpx.Client, path: str, requests: int) -> list[float]:
    """Latencies in ms; an answer that is not 2xx is counted in FAILED (OFFSET deep down
    runs past the service's 1.5 s database deadline and gets a 503)."""
    latencies = []
    for _ in range(requests):
        began = time.perf_counter()
        response = http.get(path, timeout=30)
        latencies.append((time.perf_counter() - began) * 1000)
        if not response.is_success:
            FAILED[path] = FAILED.get(path, 0) + 1
    return latencies


def summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 2)

    return {"p50_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": round(ordered[-1], 2)}


def depth_read(url: str, requests: int) -> list[float]:
    """The read behind the scrape (at most one per 5 s per service), through the store."""
    from tailrace.engine.app import App

    latencies = []
    with App(url, auto_migrate=False) as app:
        for _ in range(requests):
            began = time.perf_counter()
            app.store.queue_depths()
            app.store.queues_list()
            latencies.append((time.perf_counter() - began) * 1000)
    return latencies


def old_scrape(url: str, requests: int) -> list[float]:
    latencies = []
    with psycopg.connect(url) as conn:
        for _ in range(requests):
            began = time.perf_counter()
            conn.execute(OLD_SCRAPE).fetchall()
            latencies.append((time.perf_counter() - began) * 1000)
    return latencies


def serve(url: str, token: str, work: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = 40000 + secrets.randbelow(2000)
    env = {**os.environ, "TAILRACE_DATABASE_URL": url, "TAILRACE_API_TOKENS": token}
    cmd = [sys.executable, "-m", "tailrace", "--log-level", "WARNING", "serve"]
    server = subprocess.Popen([*cmd, "--port", str(port), "--no-access-log"], env=env, cwd=work)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return server, base
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.kill()
            sys.exit("the server did not start")
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = f"{PG}?options={quote(f'-csearch_path={schema}')}"
    token = secrets.token_hex(16)
    work = Path(tempfile.mkdtemp(prefix="bench-operator-"))
    load_at_start = uptime()
    server = None
    try:
        log(f"writing {args.jobs:,} jobs")
        began = time.monotonic()
        states = fill(url, args.jobs)
        log(f"written in {time.monotonic() - began:.0f} s: {states}")
        server, base = serve(url, token, work)
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http:
            first = http.get("/api/admin/jobs", params={"limit": 50}).json()
            newest = first["jobs"][0]["id"]
            deep_after = newest // 2
            paths = {
                "list: newest page": "/api/admin/jobs?limit=50",
                "list: state=dead": "/api/admin/jobs?state=dead&limit=50",
                "list: state=succeeded, queue=queue-3": (
                    "/api/admin/jobs?state=succeeded&queue=queue-3&limit=50"
                ),
                "list: keyset page half-way down": f"/api/admin/jobs?limit=50&after={deep_after}",
                "list: state=dead, half-way down": (
                    f"/api/admin/jobs?state=dead&limit=50&after={deep_after}"
                ),
                "list: search by task name": "/api/admin/jobs?q=task_3&limit=50",
                "scrape: GET /metrics": "/metrics",
                "peer: GET /healthz": "/healthz",
                # one database round trip through the service: the floor of a fresh read
                "peer: GET /readyz": "/readyz",
            }
            offset_path = f"/api/admin/jobs?limit=50&offset={args.jobs // 2}"
            rounds: dict[str, list[dict[str, float]]] = {name: [] for name in paths}
            rounds["peer: same page by OFFSET (half-way down)"] = []
            rounds["scrape's read of live and dead jobs (every 5 s at most)"] = []
            rounds["peer: the old scrape query (every job grouped)"] = []
            for r in range(args.rounds):
                log(f"round {r + 1}")
                for name, path in paths.items():
                    timed(http, path, 5)  # warm: plans cached, pages in memory
                    rounds[name].append(summary(timed(http, path, args.requests)))
                few = max(10, args.requests // 20)
                rounds["peer: same page by OFFSET (half-way down)"].append(
                    summary(timed(http, offset_path, few))
                )
                rounds["scrape's read of live and dead jobs (every 5 s at most)"].append(
                    summary(depth_read(url, few))
                )
                rounds["peer: the old scrape query (every job grouped)"].append(
                    summary(old_scrape(url, few))
                )
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
    load_at_end = uptime()
    median = {
        name: {
            key: statistics.median(run[key] for run in runs)
            for key in ("p50_ms", "p99_ms", "max_ms")
        }
        for name, runs in rounds.items()
    }
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/api/operator.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "jobs": states,
        "load_at_start": load_at_start,
        "load_at_end": load_at_end,
        "median_of_rounds": median,
        "non_2xx": FAILED,
        "rounds": rounds,
    }
    (HERE / "operator.json").write_text(json.dumps(result, indent=2) + "\n")
    (HERE / "OPERATOR.md").write_text(report(result, args))
    print(json.dumps(median, indent=2))


def report(result: dict[str, Any], args: argparse.Namespace) -> str:
    median = result["median_of_rounds"]
    lines = [
        f"# The operator's reads with {sum(result['jobs'].values()):,} jobs kept — "
        f"{result['when']}",
        "",
        f"`{result['command']}` on {result['machine']}, PostgreSQL on 127.0.0.1. Jobs by state: "
        + ", ".join(f"{state} {n:,}" for state, n in sorted(result["jobs"].items()))
        + ". Reprocessing jobs kept: 1,000 (995 completed; 5 running, each with 20 files and "
        "20 workers).",
        "",
        "Load of the machine (`uptime`; other sessions shared it, so compare the ratios):",
        "",
        f"- at the start: `{result['load_at_start']}`",
        f"- at the end: `{result['load_at_end']}`",
        "",
        f"One client, requests one after another through `tailrace serve`; {args.requests} "
        f"requests a case per round (the peers fewer), median of {args.rounds} rounds.",
        "",
        "| | p50 | p99 | max |",
        "|---|---:|---:|---:|",
    ]
    for name, m in median.items():
        lines.append(f"| {name} | {m['p50_ms']} ms | {m['p99_ms']} ms | {m['max_ms']} ms |")
    for path, n in result["non_2xx"].items():
        lines.append(f"\n{n} answers to `{path}` were not 2xx (503: past the 1.5 s deadline).")
    lists = [m["p99_ms"] for name, m in median.items() if name.startswith("list:")]
    scrape = median["scrape: GET /metrics"]["p99_ms"]
    lines += [
        "",
        f"Targets: list p99 < 100 ms (worst case here {max(lists)} ms), scrape < 50 ms "
        f"(p99 {scrape} ms) — "
        + ("**met**" if max(lists) < 100 and scrape < 50 else "**not met**")
        + " in this run.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
