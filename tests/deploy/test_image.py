"""The Dockerfile and its build context, read as text: no Docker engine runs here, so the
image is never built by the tests; what can be checked without one is."""

from __future__ import annotations

import fnmatch
import json
import re

import pytest

from .rendering import ROOT, containers, render

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for word, rest in instructions():
        if word == "FROM":
            found.append([])
        if found:
            found[-1].append((word, rest))
    return found


def ignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` out of the build context (last match wins)."""
    verdict = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/").removeprefix("**/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(p, pattern) for p in prefixes) or any(
            fnmatch.fnmatchcase(part, pattern) for part in parts
        ):
            verdict = not negate
    return verdict


def test_a_slim_runtime_built_from_a_wheel() -> None:
    args = dict(rest.split("=", 1) for word, rest in instructions() if word == "ARG")
    builder, runtime = stages()
    assert builder[0][1] == "${PYTHON_IMAGE} AS builder"
    assert runtime[0][1] == "${PYTHON_IMAGE} AS runtime"
    assert args["PYTHON_IMAGE"] == "python:3.11-slim"
    assert any(w == "RUN" and "pip wheel" in r for w, r in builder)
    install = [r for w, r in runtime if w == "RUN" and "pip install" in r]
    assert install and "--no-index" in install[0] and "from=builder" in install[0]
    assert not any(w == "COPY" for w, _ in runtime), "the runtime copies nothing from the context"


def test_runs_as_the_user_the_manifests_expect() -> None:
    [user] = [r for w, r in stages()[-1] if w == "USER"]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0  # numeric, so runAsNonRoot can check it
    for overlay in ("dev", "prod"):
        for where, spec, container in containers(render(overlay)):
            pod = spec["securityContext"]
            assert container.get("securityContext", {}).get("runAsUser", pod["runAsUser"]) == int(
                uid
            ), where
            assert pod["runAsGroup"] == int(gid), where


def test_serves_the_admin_api_by_default_with_a_health_check() -> None:
    final = dict(stages()[-1])
    assert json.loads(final["ENTRYPOINT"]) == ["tailrace"]
    assert json.loads(final["CMD"]) == ["serve", "--host", "0.0.0.0"]
    assert final["EXPOSE"] == "3049"
    check = final["HEALTHCHECK"]
    assert "/healthz" in check and '"python"' in check and "curl" not in check
    exec_form = json.loads(check.split("CMD", 1)[1])
    assert exec_form[:2] == ["python", "-c"]
    compile(exec_form[2], "HEALTHCHECK", "exec")


@pytest.mark.parametrize("path", ["pyproject.toml", "README.md", "src/tailrace/cli/serve.py"])
def test_the_build_context_holds_what_the_wheel_needs(path: str) -> None:
    assert (ROOT / path).exists()
    assert not ignored(path)


@pytest.mark.parametrize(
    "path",
    [
        ".git/config",
        "tests/conftest.py",
        "bench/api/run.py",
        ".tailrace/tailrace.db",
        "src/tailrace/__pycache__/cli.cpython-311.pyc",
        "deploy/kubernetes/rbac-rules.json",
    ],
)
def test_the_build_context_leaves_out_the_rest(path: str) -> None:
    assert ignored(path)


def test_every_copy_source_is_in_the_build_context() -> None:
    for word, rest in instructions():
        if word == "COPY" and "--from" not in rest:
            *sources, _ = rest.split()
            for source in sources:
                assert not ignored(source.rstrip("/")), source
