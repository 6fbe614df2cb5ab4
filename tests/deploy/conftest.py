from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.services import missing

from .rendering import Obj, exported_metrics, render

# the Kubernetes release whose OpenAPI schemas every rendered object must satisfy
KUBERNETES_VERSION = "1.30"


@pytest.fixture(params=["dev", "prod"])
def overlay(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def objects(overlay: str) -> list[Obj]:
    return render(overlay)


@pytest.fixture(scope="session")
def metrics(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    return exported_metrics(tmp_path_factory.mktemp("metrics"))


@pytest.fixture(scope="session")
def validate() -> Callable[[Obj], Any]:
    """kubernetes-validate's strict check (unknown fields are errors) at KUBERNETES_VERSION."""
    try:
        import kubernetes_validate
    except ImportError:
        missing("kubernetes-validate", "not installed; pip install -e '.[test]'")

    def check(obj: Obj) -> Any:
        return kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)

    return check


@pytest.fixture(scope="session")
def deploy_doc() -> str:
    return (Path(__file__).resolve().parents[2] / "docs" / "deploy.md").read_text()
