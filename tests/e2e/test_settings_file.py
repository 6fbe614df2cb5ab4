"""tailrace.toml reaches what the CLI configures before any command runs: here the `service`
of the log lines (``service_name``), which used to be read from the environment only."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from .support import CLI, REPO_ROOT


def test_service_name_from_the_settings_file(tmp_path: Path) -> None:
    (tmp_path / "tailrace.toml").write_text(
        f'service_name = "shop-worker"\ndatabase_url = "sqlite:///{tmp_path}/t.db"\n'
    )
    (tmp_path / "nutasks.py").write_text(
        "from tailrace import App\napp = App()\n\n@app.task\ndef noop() -> None: ...\n"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TAILRACE_SERVICE_NAME", "OTEL_SERVICE_NAME", "TAILRACE_CONFIG")
        and "DATABASE_URL" not in k
    }
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(REPO_ROOT / "src")])
    done = subprocess.run(
        [*CLI, "--log-format", "json", "--app", "nutasks:app", "worker", "--burst"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    services = {json.loads(line)["service"] for line in done.stderr.splitlines() if line}
    assert services == {"shop-worker"}, done.stderr
