"""`tailrace --help` is fast because it imports no command: the listing comes from
`tailrace.cli.COMMANDS`, whose lines must match the commands' own help."""

from __future__ import annotations

import json
import subprocess
import sys

import click

from tailrace.cli import COMMANDS, cli

HEAVY = (
    "psycopg",
    "boto3",
    "botocore",
    "confluent_kafka",
    "kubernetes",
    "fastapi",
    "uvicorn",
    "opentelemetry",
    "redis",
    "rich",
    "tailrace.engine",
    "tailrace.pipeline",
)

PROBE = """
import json, sys
from tailrace.cli import main
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def _modules_after(*args: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60
    )
    loaded: list[str] = json.loads(result.stderr.strip().splitlines()[-1])
    return set(loaded)


def test_help_imports_no_heavy_module() -> None:
    loaded = _modules_after("--help")
    heavy = sorted(m for m in loaded if m.startswith(HEAVY))
    assert heavy == [], f"`tailrace --help` imported {heavy[:10]}"


def test_a_command_s_help_imports_only_that_command() -> None:
    loaded = _modules_after("sample-logs", "--help")
    assert "tailrace.cli.samples" in loaded
    assert not {"tailrace.cli.serve", "tailrace.cli.worker", "fastapi"} & loaded


def test_the_listing_matches_every_command_s_own_help() -> None:
    ctx = click.Context(cli)
    assert cli.list_commands(ctx) == sorted(COMMANDS)
    for name, (_module, _attr, line) in COMMANDS.items():
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name, name
        assert command.get_short_help_str(limit=1_000) == line, name
    assert cli.get_command(ctx, "nosuch") is None


def test_import_tailrace_is_lazy_and_complete() -> None:
    loaded = _modules_after("--version")
    assert "tailrace.engine.worker" not in loaded
    import tailrace

    assert tailrace.App.__module__ == "tailrace.engine.app"
    assert set(tailrace.__all__) <= set(dir(tailrace))
