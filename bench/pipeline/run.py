"""The pipeline benchmark: tailrace against raw limits measured in the same run, on the same
files. Writes RESULTS.md and results.json beside this script.

    python bench/pipeline/run.py [--events 1600000] [--only read,workers,kafka,postgres,memory]

Sections (targets from issue 3):
- read: one process, gzip NDJSON of ~1 KB events, a filter keeping ~20% (10 of 50 streams and
  a date range), null sink; against isal line iteration of the same files (>= 250k events/s
  and >= 40% of isal).
- workers: `tailrace reprocess --workers 2` against `--workers 1` (>= 1.7x).
- kafka: `tailrace reprocess` into Tansu, no filter, broker-acknowledged events only, against
  a bare confluent-kafka produce loop of the same decompressed lines (>= 80%).
- postgres: `tailrace reprocess` into PostgreSQL with the reference-003 log mapping (each
  record once: a primary key on the record id), against a raw psycopg COPY of the same rows
  into a table of the same shape (>= 90%). The load average is recorded with it.
- memory: the worker's peak RSS on a 2 GiB file (< 200 MB).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))  # the Tansu launcher lives with the tests

SECTIONS = ("read", "workers", "kafka", "postgres", "memory")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- data -------------------------------------------------------------------------------------


def make_samples(directory: Path, events: int, files: int) -> tuple[list[Path], dict[str, Any]]:
    from tailrace.pipeline.samples import default_range, write_samples

    written = write_samples(directory, files, events // files, seed=11, streams=50, gzip_share=1)
    start, end = default_range(11)
    info = {
        "files": len(written),
        "events": sum(f.lines for f in written),
        "stored_bytes": sum(f.size for f in written),
        "range": (start, end),
    }
    return [f.path for f in written], info


def filter_keeping_a_fifth(paths: list[Path], info: dict[str, Any]) -> dict[str, Any]:
    """10 of the 50 streams and the middle of the date range."""
    import isal.igzip
    import orjson

    streams: set[str] = set()
    with isal.igzip.open(paths[0], "rb") as f:
        for line in f:
            origin = orjson.loads(line)["origin"]
            streams.add(origin.get("sourceId") or origin.get("source_id") or origin["slug"])
            if len(streams) >= 50:
                break
    start, end = info["range"]
    span = end - start
    return {
        "stream_ids": sorted(streams)[:10],
        "date_from": start + span * 0.0,
        "date_to": start + span * 0.999,
    }


# -- read: one process ------------------------------------------------------------------------


def isal_lines_per_s(paths: list[Path]) -> float:
    import isal.igzip

    started, lines = time.process_time(), 0
    for path in paths:
        with isal.igzip.open(path, "rb") as f:
            for _ in f:
                lines += 1
    return lines / (time.process_time() - started)


def tailrace_read(paths: list[Path], spec: dict[str, Any]) -> dict[str, float]:
    from tailrace.pipeline.filters import EventFilter
    from tailrace.pipeline.run import FileRun, FileState
    from tailrace.pipeline.sinks import DeadLetterWriter, NullSink
    from tailrace.pipeline.sources import open_source

    event_filter = EventFilter(
        stream_ids=spec["stream_ids"], date_from=spec["date_from"], date_to=spec["date_to"]
    )
    sink = NullSink()
    run = FileRun(
        sink=sink,
        deadletters=DeadLetterWriter(NullSink, location="null:"),
        event_filter=event_filter,
    )
    source = open_source(str(paths[0].parent))
    started = time.process_time()
    lines = sent = 0
    for file in source.list_files():
        result = run.run(source, file, FileState(file.url))
        lines += result.state.counters.lines
        sent += result.state.counters.sent
    seconds = time.process_time() - started
    return {"events_per_s": lines / seconds, "kept_share": sent / lines, "events": lines}


# -- the CLI, as a user runs it ---------------------------------------------------------------


def reprocess(args: list[str], workdir: Path) -> dict[str, Any]:
    db = workdir / f"bench-{time.monotonic_ns()}.db"
    env = {**os.environ, "TAILRACE_DATABASE_URL": f"sqlite:///{db}"}
    command = [sys.executable, "-m", "tailrace", "reprocess", *args, "--json"]
    done = subprocess.run(command, env=env, cwd=workdir, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr[-2000:]}")
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def workers_section(directory: Path, workdir: Path) -> dict[str, Any]:
    one = reprocess([str(directory), "--sink", "null:", "--workers", "1"], workdir)
    two = reprocess([str(directory), "--sink", "null:", "--workers", "2"], workdir)
    rate1, rate2 = one["work_events_per_second"], two["work_events_per_second"]
    return {
        "one_worker_events_per_s": rate1,
        "two_workers_events_per_s": rate2,
        "speedup": rate2 / rate1,
        "target_speedup": 1.7,
    }


_PEAK_RSS = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stderr.write(done.stderr[-2000:])
print(done.stdout)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def memory_section(workdir: Path) -> dict[str, Any]:
    """A plain 2 GiB NDJSON file through one worker. The run goes through a wrapper process
    of its own, whose waited-for descendants are only the CLI and its worker: their peak RSS
    (`ru_maxrss`) is an upper bound for the worker's."""
    from tailrace.pipeline.samples import write_samples

    big_dir = workdir / "big"
    written = write_samples(big_dir, 1, 1_800_000, seed=5, gzip_share=0)
    size = written[0].size
    env = {**os.environ, "TAILRACE_DATABASE_URL": f"sqlite:///{workdir}/memory.db"}
    command = [sys.executable, "-m", "tailrace", "reprocess", str(big_dir)]
    command += ["--sink", "null:", "--workers", "1", "--json"]
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, *command],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        check=True,
    )
    *summary_lines, peak = done.stdout.strip().splitlines()
    summary = json.loads("\n".join(summary_lines))
    shutil.rmtree(big_dir)
    return {
        "file_bytes": size,
        "events": summary["lines"],
        "events_per_s": summary["work_events_per_second"],
        "peak_rss_mib": int(peak) / 1024,
        "target_mib": 200,
    }


# -- kafka --------------------------------------------------------------------------------------


def decompressed_lines(paths: list[Path]) -> list[bytes]:
    import isal.igzip

    lines: list[bytes] = []
    for path in paths:
        with isal.igzip.open(path, "rb") as f:
            lines.extend(line.rstrip(b"\n") for line in f)
    return lines


def bare_produce_per_s(bootstrap: str, topic: str, lines: list[bytes]) -> float:
    """confluent-kafka at its simplest: produce every line, count acknowledgements."""
    from confluent_kafka import Producer

    from tailrace.kafka_client import DEFAULT_CONFIG

    producer = Producer({**DEFAULT_CONFIG, "bootstrap.servers": bootstrap})
    acked = 0

    def delivered(err: Any, msg: Any) -> None:
        nonlocal acked
        if err is None:
            acked += 1

    started = time.perf_counter()
    for line in lines:
        while True:
            try:
                producer.produce(topic, line, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(120)
    seconds = time.perf_counter() - started
    if acked != len(lines):
        raise RuntimeError(f"bare loop: {acked} of {len(lines)} acknowledged")
    return acked / seconds


def kafka_section(workdir: Path, events: int) -> dict[str, Any]:
    """Its own files: the bare loop holds every decompressed line in memory."""
    from tests.kafka_broker import TansuBroker

    directory = workdir / "kafka-logs"
    paths, _ = make_samples(directory, events, 4)
    lines = decompressed_lines(paths)
    with TansuBroker(workdir) as broker:
        broker.create_topic("bare")
        broker.create_topic("tailrace")
        bare = bare_produce_per_s(broker.bootstrap, "bare", lines)
        summary = reprocess(
            [str(directory), "--sink", f"kafka://{broker.bootstrap}/tailrace", "--workers", "1"],
            workdir,
        )
    if summary["sent"] != len(lines):
        raise RuntimeError(f"tailrace sent {summary['sent']} of {len(lines)}")
    ours = summary["work_events_per_second"]
    return {
        "events": len(lines),
        "bare_produce_per_s": bare,
        "tailrace_events_per_s": ours,
        "ratio": ours / bare,
        "target_ratio": 0.8,
    }


# -- postgresql ---------------------------------------------------------------------------------


def make_pino_logs(directory: Path, files: int, per_file: int) -> list[Path]:
    """Reference-003 log files: gzip'd JSON arrays of pino request logs (~700 bytes each)."""
    import gzip
    import random

    import orjson

    rng = random.Random(3)
    directory.mkdir(parents=True, exist_ok=True)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    paths = []
    for index in range(files):
        events = []
        for n in range(per_file):
            moment = start + timedelta(milliseconds=(index * per_file + n) * 37)
            events.append(
                {
                    "level": rng.choice((30, 30, 30, 40, 50)),
                    "time": int(moment.timestamp() * 1000),
                    "timestamp": moment.isoformat().replace("+00:00", "Z"),
                    "pid": 46 + index,
                    "hostname": f"api-{index % 4}",
                    "req": {
                        "id": index * per_file + n,
                        "method": rng.choice(("GET", "GET", "POST", "PUT")),
                        "url": f"/api/items/{rng.randrange(10_000)}?page={rng.randrange(9)}",
                        "query": {"page": str(rng.randrange(9))},
                        "headers": {
                            "x-forwarded-for": f"184.182.{rng.randrange(256)}.{rng.randrange(256)}",
                            "x-forwarded-proto": "https",
                            "host": "api.example.com",
                            "user-agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0",
                        },
                        "remoteAddress": f"::ffff:10.0.{rng.randrange(256)}.{rng.randrange(256)}",
                        "remotePort": rng.randrange(1024, 65535),
                    },
                    "context": rng.choice(("ApiController", "ItemsService", "AuthGuard")),
                    "message": "Processing request",
                    "authUserId": rng.randrange(1, 5000),
                    "processingTimeMs": round(rng.random() * 250, 2),
                    "cacheHit": rng.random() < 0.4,
                    "documentCount": rng.randrange(50),
                    "lastUpdated": moment.isoformat(),
                }
            )
        path = directory / f"api-logs-{index:03d}.json.gz"
        path.write_bytes(gzip.compress(orjson.dumps(events), compresslevel=6))
        paths.append(path)
    return paths


def raw_copy_per_s(dsn: str, table: str, raws: list[bytes]) -> float:
    """COPY of the same rows, built beforehand: what the server takes at most."""
    import psycopg

    from tailrace.pipeline.sinks.postgres import sink as pg

    rows = pg._copy_text([pg._log_row(raw, None) for raw in raws])
    with psycopg.connect(dsn) as conn:
        columns = [f'"{name}"' for name in pg._LOG.copied]
        started = time.perf_counter()
        with conn.cursor() as cur:
            copy_sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
            with cur.copy(copy_sql) as copy:
                for start in range(0, len(rows), 1 << 20):
                    copy.write(rows[start : start + (1 << 20)])
        conn.commit()
        return len(raws) / (time.perf_counter() - started)


def postgres_section(workdir: Path) -> dict[str, Any]:
    import isal.igzip
    import orjson
    import psycopg

    from tailrace.pipeline.sinks.postgres.sink import PostgresSink

    dsn = os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
    directory = workdir / "pino"
    paths = make_pino_logs(directory, 4, 50_000)
    raws: list[bytes] = []
    for path in paths:
        with isal.igzip.open(path, "rb") as f:
            raws.extend(orjson.dumps(event) for event in orjson.loads(f.read()))
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in ("bench_raw_copy", "bench_tailrace"):
            conn.execute(f"DROP TABLE IF EXISTS {table}")
    PostgresSink(dsn, "bench_raw_copy").close()  # creates the table, as the sink makes it
    load_before = os.getloadavg()
    raw = raw_copy_per_s(dsn, "bench_raw_copy", raws)
    summary = reprocess(
        [str(directory), "--sink", f"{dsn}?table=bench_tailrace", "--workers", "1"], workdir
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        stored = conn.execute("SELECT count(*) FROM bench_tailrace").fetchone()
        for table in ("bench_raw_copy", "bench_tailrace"):
            conn.execute(f"DROP TABLE IF EXISTS {table}")
    if stored is None or stored[0] != len(raws):
        raise RuntimeError(f"tailrace stored {stored} rows of {len(raws)}")
    ours = summary["work_events_per_second"]
    return {
        "events": len(raws),
        "raw_copy_rows_per_s": raw,
        "tailrace_events_per_s": ours,
        "ratio": ours / raw,
        "target_ratio": 0.9,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }


# -- report -------------------------------------------------------------------------------------


def report(results: dict[str, Any]) -> str:
    lines = [
        "# Pipeline benchmark",
        "",
        f"Measured {results['measured_at']} on {results['machine']} with `{results['command']}`.",
        f"Data: {results['data']}.",
        "",
        "Load of the machine (`uptime`; 2 cores), which every figure here depends on:",
        f"- at the start: `{results.get('load_at_start', 'not recorded')}`",
        f"- at the end: `{results.get('load_at_end', 'not recorded')}`",
        "",
        "| measure | tailrace | raw limit (same run) | ratio | target |",
        "|---|---|---|---|---|",
    ]
    if "read" in results:
        r = results["read"]
        lines.append(
            f"| one process, filter keeping {r['kept_share']:.0%}, null sink (events/s) "
            f"| {r['events_per_s']:,.0f} | isal line iteration {r['isal_lines_per_s']:,.0f} "
            f"| {r['ratio']:.2f} | >= 250,000 and >= 0.40 |"
        )
    if "workers" in results:
        w = results["workers"]
        lines.append(
            "| 2 worker processes vs 1, null sink (events/s) "
            f"| {w['two_workers_events_per_s']:,.0f} "
            f"| 1 worker {w['one_worker_events_per_s']:,.0f} | {w['speedup']:.2f}x | >= 1.7x |"
        )
    if "kafka" in results:
        k = results["kafka"]
        lines.append(
            f"| into Kafka (Tansu), acknowledged events/s | {k['tailrace_events_per_s']:,.0f} "
            f"| bare confluent-kafka loop {k['bare_produce_per_s']:,.0f} | {k['ratio']:.2f} "
            f"| >= 0.80 |"
        )
    if "postgres" in results:
        p = results["postgres"]
        lines.append(
            "| into PostgreSQL, reference-003 mapping (rows/s) "
            f"| {p['tailrace_events_per_s']:,.0f} "
            f"| raw psycopg COPY {p['raw_copy_rows_per_s']:,.0f} | {p['ratio']:.2f} | >= 0.90 |"
        )
    if "postgres" in results and "load_average_before" in results["postgres"]:
        p = results["postgres"]
        note = (
            "PostgreSQL row: 1-minute load average {:.1f} before, {:.1f} after (2 cores,"
            " shared with other sessions)".format(
                p["load_average_before"][0], p["load_average_after"][0]
            )
        )
    else:
        note = ""
    if "memory" in results:
        m = results["memory"]
        lines.append(
            f"| peak RSS, one worker on a {m['file_bytes'] / 2**30:.1f} GiB file (MiB) "
            f"| {m['peak_rss_mib']:,.0f} | - | - | < 200 |"
        )
    lines += [
        "",
        "tailrace rates come from the job itself (first worker start to last file end) as",
        "`tailrace reprocess --json` reports them. The read row runs `FileRun` and isal in",
        "this process, taking turns, on CPU time, best of `--runs` each.",
        "Raw limits run on the same files in the same run. See README.md for what each does.",
    ]
    if note:
        lines += ["", note + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_600_000)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--only", default=",".join(SECTIONS))
    parser.add_argument("--runs", type=int, default=5, help="best of N for in-process rates")
    args = parser.parse_args()
    only = [s for s in args.only.split(",") if s]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    results: dict[str, Any] = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
        "command": "python bench/pipeline/run.py " + " ".join(sys.argv[1:]),
        "load_at_start": uptime(),
    }
    with tempfile.TemporaryDirectory(prefix="tailrace-bench-") as tmp:
        workdir = Path(tmp)
        directory = workdir / "logs"
        paths: list[Path] = []
        if {"read", "workers"} & set(only):
            log(f"writing {args.events:,} events into {args.files} gzip files…")
            paths, info = make_samples(directory, args.events, args.files)
            results["data"] = (
                f"{info['events']:,} Jitsu-style events in {info['files']} gzip NDJSON files, "
                f"{info['stored_bytes'] / 2**20:,.0f} MiB stored"
            )
        else:
            results["data"] = "see each section"
        if "read" in only:
            log("read…")
            spec = filter_keeping_a_fifth(paths, info)
            # Both in this process, taking turns, on CPU time: other work on the machine
            # then moves neither, and the best of each is compared.
            isal_rates, ours_runs = [], []
            for _ in range(args.runs):
                isal_rates.append(isal_lines_per_s(paths))
                ours_runs.append(tailrace_read(paths, spec))
            isal_rate = max(isal_rates)
            ours = max(ours_runs, key=lambda r: r["events_per_s"])
            results["read"] = {
                **ours,
                "isal_lines_per_s": isal_rate,
                "ratio": ours["events_per_s"] / isal_rate,
            }
            log(json.dumps(results["read"]))
        if "workers" in only:
            log("workers…")
            results["workers"] = workers_section(directory, workdir)
            log(json.dumps(results["workers"]))
        if "kafka" in only:
            log("kafka…")
            results["kafka"] = kafka_section(workdir, min(args.events, 1_000_000))
            log(json.dumps(results["kafka"]))
        if "postgres" in only:
            log("postgres…")
            results["postgres"] = postgres_section(workdir)
            log(json.dumps(results["postgres"]))
        if "memory" in only:
            log("memory (a 2 GiB file)…")
            results["memory"] = memory_section(workdir)
    results["load_at_end"] = uptime()
    save(results)
    print(report(results))


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def save(results: dict[str, Any]) -> None:
    (HERE / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (HERE / "RESULTS.md").write_text(report(results))


if __name__ == "__main__":
    main()
