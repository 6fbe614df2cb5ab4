"""examples/scheduled-s3-ingest (docs/guides/scheduled-s3-ingest.md): runs load only what is
new; its crontab line and CronJob are valid and run the same command."""

from __future__ import annotations

import json
import shlex
from datetime import datetime
from pathlib import Path

import psycopg
import pytest
import yaml
from cronsim import CronSim

from tailrace.cli.ingest import ingest

from .conftest import EXAMPLES, Example

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_each_run_loads_only_the_files_that_arrived_since_the_last(
    tmp_path: Path, s3_env: dict[str, str], pg_url: str
) -> None:
    example = Example("scheduled-s3-ingest", tmp_path)
    listed = example.run(DATABASE_URL=pg_url, environ=s3_env).stdout
    runs = [json.loads((example.work / f"run{i}.json").read_text()) for i in (1, 2, 3)]
    assert [run["files"]["total"] for run in runs] == [2, 1, 0]
    assert [run.get("sent") for run in runs] == [1000, 500, None]
    assert runs[2]["status"] == "nothing to do"
    with psycopg.connect(pg_url) as conn:
        found = conn.execute("SELECT count(*) FROM logs").fetchone()
    assert found == (1500,)  # each event once, though three runs saw the first files
    assert listed.count("COMPLETED") == 3


def test_the_crontab_and_the_cronjob_run_a_valid_ingest() -> None:
    import kubernetes_validate

    where = EXAMPLES / "scheduled-s3-ingest"
    (line,) = [raw for raw in (where / "crontab").read_text().splitlines() if raw and raw[0] != "#"]
    fields = line.split(None, 5)
    next(CronSim(" ".join(fields[:5]), datetime(2026, 1, 1)))
    command = shlex.split(fields[5].split("tailrace ", 1)[1].split(">>")[0])

    cronjob = yaml.safe_load((where / "cronjob.yaml").read_text())
    kubernetes_validate.validate(cronjob, "1.30", strict=True)
    assert cronjob["spec"]["schedule"] == " ".join(fields[:5])
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    for args in (command, container["args"]):
        assert args[0] == "ingest"
        ingest.make_context("ingest", list(args[1:]))  # click accepts them
    assert [a for a in container["args"] if not a.startswith(("s3:", "postgresql:", "$("))] == [
        a for a in command if not a.startswith(("s3:", "postgresql:", "$("))
    ]
