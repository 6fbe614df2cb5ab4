"""Shell completion, as docs/guides/shell-completion.md tells users to enable it: click's,
through the lazily loaded commands (a subcommand's options complete too)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"


def _complete(shell: str, words: str, cword: int | None = None) -> str:
    env = {**os.environ, "PYTHONPATH": str(SRC), "_TAILRACE_COMPLETE": shell}
    if cword is not None:
        env.update(COMP_WORDS=words, COMP_CWORD=str(cword))
    result = subprocess.run(
        [sys.executable, "-m", "tailrace"], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_each_shell_gets_a_script(shell: str) -> None:
    script = _complete(f"{shell}_source", "")
    assert "_TAILRACE_COMPLETE" in script and "tailrace" in script


def test_commands_subcommands_and_options_complete() -> None:
    assert _complete("bash_complete", "tailrace rep", 1).split() == [
        "plain,reprocess",
        "plain,reprocessing",
    ]
    assert "plain,resume" in _complete("bash_complete", "tailrace reprocessing ", 2).split()
    assert _complete("bash_complete", "tailrace reprocess logs --si", 3).split() == ["plain,--sink"]
