"""The core installs without the extras and says, in one line, which extra a feature needs.

Each case runs in a subprocess whose import system refuses the extra's packages, as an
installation without them would (a meta-path finder ahead of the real ones)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tailrace.extras import EXTRAS

REPO_ROOT = Path(__file__).resolve().parents[2]
SRC = REPO_ROOT / "src"

# the top-level modules each extra brings
EXTRA_MODULES = {
    "server": ("fastapi", "starlette", "uvicorn", "python_multipart", "multipart"),
    "kubernetes": ("kubernetes",),
    "redis": ("redis",),
    "otel": ("opentelemetry.sdk", "opentelemetry.exporter"),
}
ALL_EXTRAS = [module for modules in EXTRA_MODULES.values() for module in modules]

# installed as sitecustomize (Python imports it at start), so the worker processes a command
# starts refuse the same modules
BLOCKER = """
import os
import sys
from importlib.abc import MetaPathFinder

BLOCKED = tuple(filter(None, os.environ.get("TAILRACE_TEST_BLOCKED", "").split(",")))


class Blocker(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, Blocker())
"""


def _run(
    blocked: tuple[str, ...] | list[str], code: str, *args: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    site = cwd / "blocker"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), str(SRC)]),
        "TAILRACE_TEST_BLOCKED": ",".join(blocked),
    }
    env.pop("OTEL_TRACES_EXPORTER", None)
    return subprocess.run(
        [sys.executable, "-c", "import sys\n" + code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
    )


CLI = "from tailrace.cli import main\nsys.argv[0] = 'tailrace'\nmain()\n"


def test_the_extras_are_declared_and_the_test_extra_pulls_every_one() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert set(EXTRAS) <= set(extras)
    assert extras["all"] == [f"tailrace[{','.join(EXTRAS)}]"]
    assert "tailrace[all]" in extras["test"]
    # the README's two commands: the core for the quick start, the test extra for the suite
    readme = (REPO_ROOT / "README.md").read_text()
    block = readme.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    first, second = [line for line in block.splitlines() if line and not line.startswith("#")]
    assert "pip install -e . " in first and "tailrace serve" not in first
    assert "pip install -e '.[test]'" in second
    core = " ".join(project["dependencies"])
    for heavy in ("fastapi", "uvicorn", "kubernetes", "redis", "opentelemetry-sdk"):
        assert heavy not in core, heavy


def test_serve_without_the_server_extra_says_which_extra(tmp_path: Path) -> None:
    result = _run(EXTRA_MODULES["server"], CLI, "serve", "--port", "1", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: the admin service (tailrace serve) needs the 'server' extra (no module "
        "'fastapi'): pip install 'tailrace[server]'"
    ]


def test_serve_with_the_kubernetes_executor_without_its_extra_says_which_extra(
    tmp_path: Path,
) -> None:
    code = "import os\nos.environ['TAILRACE_EXECUTOR'] = 'kubernetes'\n" + CLI
    db = f"sqlite:///{tmp_path}/t.db"
    result = _run(EXTRA_MODULES["kubernetes"], code, "--database-url", db, "serve", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()[-1:]
    assert line.endswith("pip install 'tailrace[kubernetes]'"), result.stderr


def test_tracing_without_the_otel_extra_says_which_extra(tmp_path: Path) -> None:
    code = "import os\nos.environ['OTEL_TRACES_EXPORTER'] = 'console'\n" + CLI
    result = _run(EXTRA_MODULES["otel"], code, "queues", "stats", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "pip install 'tailrace[otel]'" in line


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        (
            "redis",
            "from tailrace.streams.spool.redis import RedisSpool\nRedisSpool('redis://x', 'n')",
        ),
        (
            "redis",
            "from tailrace.streams.dedup import RedisDedup\nRedisDedup('redis://x', 'g', 60)",
        ),
        (
            "kubernetes",
            "from tailrace.executors.kubernetes import KubernetesExecutor, KubernetesSettings\n"
            "KubernetesExecutor('sqlite:///x.db', KubernetesSettings(image='i'))",
        ),
    ],
)
def test_a_feature_without_its_extra_names_it(extra: str, code: str, tmp_path: Path) -> None:
    wrapped = (
        "from tailrace.extras import MissingExtraError\n"
        f"try:\n    exec({code!r})\n"
        "except MissingExtraError as exc:\n    print(exc.extra, '|', exc)\n"
    )
    result = _run(EXTRA_MODULES[extra], wrapped, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    name, _, message = result.stdout.strip().partition(" | ")
    assert name == extra
    assert message.endswith(f"pip install 'tailrace[{extra}]'")


@pytest.mark.slow
def test_the_quick_start_runs_on_the_core_alone(tmp_path: Path) -> None:
    """The README's first command installs the core only: what it runs needs no extra."""
    code = CLI
    made = _run(
        ALL_EXTRAS, code, "sample-logs", "logs", "--files", "2", "--lines", "200", cwd=tmp_path
    )
    assert made.returncode == 0, made.stderr
    replayed = _run(
        ALL_EXTRAS,
        code,
        "reprocess",
        "logs",
        "--sink",
        "file:out.ndjson",
        "--workers",
        "1",
        cwd=tmp_path,
    )
    assert replayed.returncode == 0, replayed.stderr
    assert len((tmp_path / "out.ndjson").read_bytes().splitlines()) == 400
