"""tailrace.toml reaches what the CLI configures before any command runs (the `service` of
the log lines, ``service_name``, used to be read from the environment only), and an error
about a value names the place it came from."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

from .support import CLI, REPO_ROOT


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TAILRACE_SERVICE_NAME", "OTEL_SERVICE_NAME", "TAILRACE_CONFIG")
        and "DATABASE_URL" not in k
    }
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(REPO_ROOT / "src")])
    return subprocess.run(
        [*CLI, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )


def test_service_name_from_the_settings_file(tmp_path: Path) -> None:
    (tmp_path / "tailrace.toml").write_text(
        f'service_name = "shop-worker"\ndatabase_url = "sqlite:///{tmp_path}/t.db"\n'
    )
    (tmp_path / "nutasks.py").write_text(
        "from tailrace import App\napp = App()\n\n@app.task\ndef noop() -> None: ...\n"
    )
    done = _run(tmp_path, "--log-format", "json", "--app", "nutasks:app", "worker", "--burst")
    assert done.returncode == 0, done.stderr
    services = {json.loads(line)["service"] for line in done.stderr.splitlines() if line}
    assert services == {"shop-worker"}, done.stderr


def test_an_unreachable_database_from_the_file_names_the_file(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    url = f"postgresql://a@127.0.0.1:{port}/x"
    (tmp_path / "tailrace.toml").write_text(f'database_url = "{url}"\n')
    from_file = _run(tmp_path, "jobs", "list")
    assert from_file.returncode == 2, from_file.stdout + from_file.stderr
    assert from_file.stderr.strip().endswith(
        "(is the server up, and is database_url in tailrace.toml right?)"
    ), from_file.stderr
    by_option = _run(tmp_path, "--database-url", url, "jobs", "list")
    assert by_option.stderr.strip().endswith("is --database-url right?)"), by_option.stderr
