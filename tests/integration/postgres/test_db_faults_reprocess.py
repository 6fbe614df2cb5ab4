"""`tailrace reprocess` with its job store on PostgreSQL, through a restart of that server
mid-run (a cluster the test owns): the job completes, the CLI exits 0, and the file sink
holds every record exactly once (nothing was killed, so the duplicate bound is 0)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

import tailrace
from tailrace.pipeline.jobs import ReprocessingStatus, ReprocessingStore
from tailrace.pipeline.samples import write_samples
from tests.e2e.reprocess_support import (
    expected_events,
    output_lines,
    stop_cli,
    summary,
    wait_for_checkpoint,
)
from tests.e2e.support import CLI, REPO_ROOT
from tests.pg_cluster import Cluster, cluster_url, pg_cluster  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow


def start_cli(args: list[str], database_url: str, cwd: Path) -> subprocess.Popen[str]:
    """The CLI of the tailrace this test imports (the installed one may be another tree's)."""
    path = os.pathsep.join([str(Path(tailrace.__file__).parents[1]), str(REPO_ROOT)])
    env = {**os.environ, "TAILRACE_DATABASE_URL": database_url, "PYTHONPATH": path}
    return subprocess.Popen(
        [*CLI, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.parametrize("fault", ["restart", "stop 3 s"])
def test_reprocess_rides_out_a_database_fault_mid_run(
    cluster_url: str,  # noqa: F811
    pg_cluster: Cluster,  # noqa: F811
    tmp_path: Path,
    fault: str,
) -> None:
    paths = [f.path for f in write_samples(tmp_path / "logs", 4, 50_000, seed=11)]
    out = tmp_path / "out.ndjson"
    args = ["reprocess", str(tmp_path / "logs"), "--sink", f"file://{out}", "--json"]
    args += ["--workers", "2", "--checkpoint-every", "0.1"]
    cli = start_cli(args, cluster_url, tmp_path)
    try:
        with ReprocessingStore(cluster_url) as store:
            # a file is being read: the fault comes mid-run
            job_id = wait_for_checkpoint(store, running=True)
        if fault == "restart":
            pg_cluster.restart()
        else:
            pg_cluster.stop()
            time.sleep(3.0)  # the outage itself
            pg_cluster.start()
        stdout, stderr = cli.communicate(timeout=240)
    finally:
        stop_cli(cli)
    with ReprocessingStore(cluster_url) as store:
        final = store.job(job_id)
    assert cli.returncode == 0, stderr[-3000:]
    report = summary(stdout)
    assert report["status"] == "completed", report
    assert final.status is ReprocessingStatus.COMPLETED
    assert final.files_by_status == {"completed": 4}, final.files_by_status
    want = expected_events(paths)
    got = output_lines(out)
    assert sum(got.values()) == sum(want.values()), (sum(got.values()), sum(want.values()))
    assert got == want
    assert report["sent"] == sum(want.values())
    assert report["balanced"] is True
