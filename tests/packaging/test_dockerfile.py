"""What the Dockerfile refers to exists: the files it copies, the extras it installs, the
commands it runs. No Docker engine here: this is what keeps the image building between the
builds of a release."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from tailrace.cli import COMMANDS
from tailrace.extras import EXTRAS

ROOT = Path(__file__).resolve().parents[2]


def _instructions() -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def test_every_file_it_copies_exists() -> None:
    copies = [rest for word, rest in _instructions() if word == "COPY" and "--from" not in rest]
    assert copies
    for rest in copies:
        *sources, _target = [part for part in rest.split() if not part.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), source


def test_every_extra_it_installs_exists_and_the_image_has_them_all() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    runs = " ".join(rest for word, rest in _instructions() if word == "RUN" and "pip " in rest)
    named = re.findall(r"(?:\.|tailrace)\[([a-z0-9,\-]+)\]", runs)
    assert named, "the image installs tailrace with its extras"
    for group in named:
        for extra in group.split(","):
            assert extra in extras, extra
    assert all(group == "all" for group in named)  # serve (the default command) and the rest
    assert extras["all"] == [f"tailrace[{','.join(EXTRAS)}]"]


def test_the_commands_it_runs_exist() -> None:
    final = dict(_instructions())  # the last of each instruction: the runtime stage's
    assert final["ENTRYPOINT"] == '["tailrace"]'
    command = re.findall(r'"([^"]+)"', final["CMD"])[0]
    assert command in COMMANDS
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        # the usage examples in its comments
        found = re.search(r"docker run .*tailrace:\S+ (\S+)", line)
        if found and not found.group(1).startswith("-"):
            assert found.group(1) in COMMANDS, line
