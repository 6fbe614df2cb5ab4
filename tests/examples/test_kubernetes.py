"""examples/kubernetes (docs/guides/kubernetes.md): its kustomization renders valid objects
with every secret the pods refer to; its script runs a reprocessing job as an Indexed Job
(on the test API server, whose kubelet runs real worker processes)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tailrace.pipeline.samples import write_samples
from tests.deploy.rendering import kubectl
from tests.kube_apiserver import FakeKubernetes
from tests.services import free_port

from .conftest import EXAMPLES, Example

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_the_kustomization_renders_valid_objects_with_their_secrets() -> None:
    import kubernetes_validate

    rendered = subprocess.run(
        [kubectl(), "kustomize", str(EXAMPLES / "kubernetes")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    objects = [o for o in yaml.safe_load_all(rendered) if o]
    secrets = {o["metadata"]["name"] for o in objects if o["kind"] == "Secret"}
    assert secrets == {"tailrace-admin", "tailrace-ingest"}
    referred = set()
    for obj in objects:
        kubernetes_validate.validate(obj, "1.30", strict=True)
        referred |= set(_secret_refs(obj))
        assert obj["metadata"].get("namespace", "tailrace-dev") == "tailrace-dev"
    assert referred and referred <= secrets


def _secret_refs(node: Any) -> list[str]:
    """The names of the Secrets an object refers to (envFrom, env valueFrom)."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("secretRef", "secretKeyRef"):
                found.append(value["name"])
            else:
                found += _secret_refs(value)
    elif isinstance(node, list):
        for value in node:
            found += _secret_refs(value)
    return found


def test_a_job_runs_as_an_indexed_job(tmp_path: Path, pg_url: str) -> None:
    example = Example("kubernetes", tmp_path)
    # the service reads sources under its working directory (TAILRACE_API_SOURCE_ROOTS)
    samples = write_samples(example.work / "logs", files=4, lines=300, seed=3)
    out = example.work / "out.ndjson"
    with FakeKubernetes(grace_s=5) as cluster:
        output = example.run(
            timeout=180,
            KUBECONFIG=str(cluster.kubeconfig(tmp_path / "kubeconfig")),
            DATABASE_URL=pg_url,
            SOURCE=str(example.work / "logs"),
            SINK=out.as_uri(),
            PORT=str(free_port()),
            TAILRACE_DATA_DIR=str(tmp_path / ".tailrace"),
        ).stdout
        jobs = [key for key in cluster.objects if key[0] == "jobs"]
    assert len(jobs) == 1 and jobs[0][1] == "tailrace-dev", jobs
    assert "completed" in output, output
    lines = sum(s.lines for s in samples)
    assert len(out.read_bytes().splitlines()) == lines
    assert f"{lines} events sent" in output
