"""The deployment files as the tests see them: overlays rendered by `kubectl kustomize`,
objects picked by kind, pod templates, and the metric names tailrace really exports."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from tests.services import missing

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("dev", "prod")
Obj = dict[str, Any]


def kubectl() -> str:
    """`TAILRACE_TEST_KUBECTL` (to try another kubectl's kustomize), else kubectl on PATH."""
    found = os.environ.get("TAILRACE_TEST_KUBECTL") or shutil.which("kubectl")
    if not found:
        missing("kubectl", "not on PATH; install Debian's kubernetes-client")
    return str(found)


@cache
def _render(binary: str, overlay: str) -> tuple[Obj, ...]:
    done = subprocess.run(
        [binary, "kustomize", str(KUBERNETES / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise AssertionError(f"kubectl kustomize overlays/{overlay} failed:\n{done.stderr}")
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def render(overlay: str) -> list[Obj]:
    return list(_render(kubectl(), overlay))


def of_kind(objects: list[Obj], kind: str) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def one(objects: list[Obj], kind: str, name: str) -> Obj:
    found = of_kind(objects, kind)
    assert name in found, f"no {kind} {name} rendered (have: {sorted(found)})"
    return found[name]


def pod_templates(objects: list[Obj]) -> Iterator[tuple[str, Obj]]:
    """(kind/name, pod template) of every workload."""
    for o in objects:
        if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]
        elif o["kind"] == "CronJob":
            yield f"CronJob/{o['metadata']['name']}", o["spec"]["jobTemplate"]["spec"]["template"]


def containers(objects: list[Obj]) -> Iterator[tuple[str, Obj, Obj]]:
    """(where, pod spec, container) of every container, init containers included."""
    for where, template in pod_templates(objects):
        spec = template["spec"]
        for c in [*spec.get("initContainers", []), *spec["containers"]]:
            yield f"{where} container {c['name']}", spec, c


def env_value(container: Obj, name: str) -> Obj:
    for entry in container.get("env", []):
        if entry["name"] == name:
            return dict(entry)
    raise AssertionError(f"container {container['name']} sets no {name}")


def env_map(container: Obj, objects: list[Obj]) -> dict[str, str]:
    """The container's `env` with plain values and ConfigMap keys resolved (what Kubernetes
    substitutes for $(NAME) in args); Secret and field references stay symbolic."""
    maps = of_kind(objects, "ConfigMap")
    found: dict[str, str] = {}
    for entry in container.get("env", []):
        if "value" in entry:
            found[entry["name"]] = str(entry["value"])
            continue
        source = entry["valueFrom"]
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            found[entry["name"]] = maps[ref["name"]]["data"][ref["key"]]
        else:
            found[entry["name"]] = f"<{next(iter(source))}>"
    return found


def selects(selector: Obj, labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels and matchExpressions) selects these labels."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        value, op = labels.get(e["key"]), e["operator"]
        if op == "In" and value not in e["values"]:
            return False
        if op == "NotIn" and value in e["values"]:
            return False
        if op == "Exists" and value is None:
            return False
        if op == "DoesNotExist" and value is not None:
            return False
    return True


# -- metric names ------------------------------------------------------------------------


def _exposed(registry: CollectorRegistry) -> dict[str, set[str]]:
    """Series name -> label names, as Prometheus sees them after a scrape (a Counter `x`
    is `x_total`, a Histogram `x` is `x_bucket`, `x_sum` and `x_count`)."""
    names: dict[str, set[str]] = {}
    for family in registry.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
        for suffix in suffixes.get(family.type, [""]):
            names.setdefault(family.name + suffix, set())
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    # labelled metrics that have no child yet (a consumer's lag before its first partition):
    # their label names, from the client's own objects
    for name, collector in getattr(registry, "_names_to_collectors", {}).items():
        labels = set(getattr(collector, "_labelnames", ()))
        if labels and name in names:
            names[name].update(labels)
    return names


def exported_metrics(tmp: Path) -> dict[str, set[str]]:
    """Every series a tailrace process exports: the worker's counters and histogram, and the
    admin service's gauges (collected for real, from a SQLite store)."""
    from tailrace.api.metrics import registry as api_registry
    from tailrace.api.services import Handle
    from tailrace.engine.app import App
    from tailrace.engine.metrics import REGISTRY
    from tailrace.pipeline.jobs import ReprocessingStore

    url = f"sqlite:///{tmp}/metrics.db"
    with App(url) as app:
        app.store.migrate()
        app.enqueue("deploy_check", {})  # so that the queue gauge has a series, with labels

    @contextmanager
    def db() -> Iterator[Handle]:
        handle = Handle(App(url), ReprocessingStore(url))
        try:
            yield handle
        finally:
            handle.close()

    opener: Callable[[], AbstractContextManager[Handle]] = db
    names = _exposed(REGISTRY)
    for registry in (api_registry(opener), *_stream_registries()):
        for family, labels in _exposed(registry).items():
            names.setdefault(family, set()).update(labels)
    return names


class _Counts:
    """The outbox's counts as the relay's collector reads them (the outbox needs PostgreSQL,
    which these tests do not: only the names and labels are wanted here)."""

    def run(self, op: object) -> dict[object, int]:
        from tailrace.streams.outbox import OutboxStatus

        return dict.fromkeys(OutboxStatus, 0)


def _stream_registries() -> list[CollectorRegistry]:
    """What `consume` and `outbox relay` serve, and the object jobs' counters the worker
    serves beside its own."""
    from tailrace.objects import metrics as objects_metrics
    from tailrace.streams import producer_metrics
    from tailrace.streams.consumer import metrics as consumer_metrics
    from tailrace.streams.outbox import metrics as relay_metrics

    outbox = CollectorRegistry(auto_describe=False)
    outbox.register(relay_metrics.OutboxCollector(_Counts()))  # type: ignore[arg-type]
    return [
        consumer_metrics.REGISTRY,
        producer_metrics.REGISTRY,
        relay_metrics.REGISTRY,
        outbox,
        objects_metrics.REGISTRY,
    ]
