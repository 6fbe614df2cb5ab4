"""Reprocessing into PostgreSQL: reference-003 log files (gzip'd JSON arrays) through real
worker processes; a worker killed mid-file leaves every event in the table exactly once."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import psycopg
import pytest

from .reprocess_support import run_killing_a_worker, summary


def write_api_logs(directory: Path, files: int, per_file: int) -> int:
    """Pino request logs as in reference 003; `req.id` numbers every event uniquely."""
    directory.mkdir(parents=True)
    for index in range(files):
        events = [
            {
                "level": 30 if n % 7 else 50,
                "time": 1_743_532_441_581 + n,
                "timestamp": "2025-04-01T18:34:01.581Z",
                "pid": 46,
                "hostname": f"server-{index}",
                "req": {
                    "id": index * per_file + n,
                    "method": "GET",
                    "url": f"/api/items/{n}",
                    "query": {"page": n % 5},
                    "headers": {"host": "api.example.com", "user-agent": "Mozilla/5.0"},
                    "remoteAddress": "::ffff:10.0.236.240",
                    "remotePort": 19250,
                },
                "context": "ApiController",
                "message": "Processing GET request",
                "authUserId": 1102,
                "processingTimeMs": 100,
                "cacheHit": n % 2 == 0,
                "documentCount": 2,
                "lastUpdated": "2025-04-01T00:00:00.000Z",
            }
            for n in range(per_file)
        ]
        (directory / f"api-{index}.json.gz").write_bytes(gzip.compress(orjson.dumps(events), 1))
    return files * per_file


def _count(url: str) -> tuple[int, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*), count(DISTINCT id) FROM logs").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


@pytest.mark.slow
def test_sigkill_mid_file_leaves_each_event_exactly_once(pg_url: str, tmp_path: Path) -> None:
    total = write_api_logs(tmp_path / "logs", files=2, per_file=120_000)
    sink = f"{pg_url}&table=logs"
    # checkpoints several times per file, so that one surely lands while a file is read
    args = ["reprocess", str(tmp_path / "logs"), "--sink", sink, "--json"]
    result = run_killing_a_worker([*args, "--checkpoint-every", "0.1"], pg_url, tmp_path)
    assert result.returncode == 0, result.stderr
    report = summary(result.stdout)
    assert report["status"] == "completed"
    assert report["sent"] == total and report["balanced"] is True
    assert _count(pg_url) == (total, total)  # no event twice, none missing
    with psycopg.connect(pg_url) as conn:
        row = conn.execute(
            "SELECT level, method, remote_port, cache_hit, raw_data->'req'->>'url' "
            "FROM logs WHERE id = '8'"
        ).fetchone()
    assert row == ("info", "GET", 19250, True, "/api/items/8")
