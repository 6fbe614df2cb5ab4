"""The kustomizations use kustomize's current fields: `kubectl apply -k` of the guides prints
no deprecation warning (``bases``, ``patchesStrategicMerge``, ``patchesJson6902`` and
``commonLabels`` each printed one, four lines before a new user's first apply)."""

from __future__ import annotations

import subprocess

import pytest

from .rendering import KUBERNETES, ROOT, kubectl

DIRECTORIES = [
    KUBERNETES / "base",
    KUBERNETES / "monitoring",
    KUBERNETES / "overlays" / "dev",
    KUBERNETES / "overlays" / "prod",
    ROOT / "examples" / "kubernetes",
]


@pytest.mark.parametrize("directory", DIRECTORIES, ids=lambda d: str(d.relative_to(ROOT)))
def test_renders_without_warnings(directory: object) -> None:
    done = subprocess.run(
        [kubectl(), "kustomize", str(directory)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr
