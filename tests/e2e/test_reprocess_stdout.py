"""`tailrace reprocess --sink stdout:` in a pipe: the workers' events reach the command's
own standard output, whole lines, each once, and nothing else does (the summary, the
progress and the workers' logs go to standard error or their log files)."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

from tailrace.pipeline.samples import write_samples

from .reprocess_support import expected_events, run_cli
from .support import REPO_ROOT


def test_stdout_sink_writes_only_whole_events_to_the_commands_stdout(tmp_path: Path) -> None:
    # 12 files of ~0.75 MiB: enough for two workers (one per 10 files, one per 4 MiB)
    written = write_samples(tmp_path / "logs", 12, 2_500, seed=11, bad_rate=0.01)
    paths = [f.path for f in written]
    url = f"sqlite:///{tmp_path}/t.db"
    args = ["reprocess", str(tmp_path / "logs"), "--sink", "stdout:", "--workers", "2", "--json"]
    # the tree under test in the workers too, which the command starts with this environment
    pythonpath = os.pathsep.join(
        p for p in (str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH")) if p
    )

    result = run_cli(args, url, tmp_path, PYTHONPATH=pythonpath)

    assert result.returncode == 0, result.stderr
    want = expected_events(paths)
    got = Counter(result.stdout.encode().split(b"\n"))
    assert got.pop(b"") == 1  # the newline that ends the last event, nothing after it
    assert got == want  # every event once, whole: no summary, no log line, no cut line
    report = json.loads(result.stderr[result.stderr.index("{\n") :])
    assert report["status"] == "completed"
    assert report["workers"] == 2
    assert report["sent"] == sum(want.values())
    deadletters = (tmp_path / "tailrace-deadletter.ndjson").read_bytes().splitlines()
    assert report["deadlettered"] == len(deadletters) > 0
