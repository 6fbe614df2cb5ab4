"""The alerts, scrape targets, dashboard and adapter rules: their structure (no schema
exists for the Prometheus Operator's kinds here) and that every query names series
tailrace really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from .rendering import ROOT, Obj, of_kind, one, render, selects

SERIES = re.compile(r"\btailrace_[a-z0-9_]+\b")
MATCHERS = re.compile(r"\b(tailrace_[a-z0-9_]+)\{([^}]*)\}")
DURATION = re.compile(r"^[0-9]+[smh]$")
DASHBOARD = ROOT / "deploy" / "grafana" / "tailrace.json"
ADAPTER = ROOT / "deploy" / "prometheus-adapter" / "values.yaml"
# labels Prometheus adds to every series it scrapes through the operator's monitors
TARGET_LABELS = {"namespace", "pod", "service", "endpoint", "container", "job", "instance"}


@pytest.fixture(scope="module")
def prod() -> list[Obj]:
    return render("prod")


# what the dashboard reads besides tailrace: the kubelet's cAdvisor (pod CPU and memory) and
# kube-state-metrics (the autoscalers), both standard in a Prometheus Operator install
CLUSTER_SERIES = {
    "container_cpu_usage_seconds_total": {"namespace", "pod", "container"},
    "container_memory_working_set_bytes": {"namespace", "pod", "container"},
    "kube_horizontalpodautoscaler_status_current_replicas": {
        "namespace",
        "horizontalpodautoscaler",
    },
    "kube_horizontalpodautoscaler_status_desired_replicas": {
        "namespace",
        "horizontalpodautoscaler",
    },
}
CLUSTER_MATCHERS = re.compile(r"\b(" + "|".join(CLUSTER_SERIES) + r")\{([^}]*)\}")


def check_cluster_query(expr: str, where: str) -> set[str]:
    """The cluster series a query reads, with labels they have."""
    found = CLUSTER_MATCHERS.findall(expr)
    assert found, f"{where}: {expr!r} reads neither tailrace's series nor the cluster's"
    for name, matchers in found:
        labels = {m.split("=")[0].rstrip("!~ ").strip() for m in matchers.split(",") if m.strip()}
        assert labels <= CLUSTER_SERIES[name], f"{where}: {name} has no {labels}"
    return {name for name, _ in found}


def check_query(expr: str, metrics: dict[str, set[str]], where: str) -> set[str]:
    """The series the query reads, each exported by tailrace, with labels it has."""
    names = set(SERIES.findall(expr))
    assert names, f"{where}: {expr!r} reads no tailrace series"
    unknown = names - set(metrics)
    assert not unknown, f"{where}: tailrace exports no {sorted(unknown)}"
    for name, matchers in MATCHERS.findall(expr):
        labels = {m.split("=")[0].rstrip("!~ ").strip() for m in matchers.split(",") if m.strip()}
        if metrics[name]:  # label names are known for series that have samples
            extra = labels - metrics[name] - TARGET_LABELS
            assert not extra, f"{where}: {name} has no label {sorted(extra)}"
    for opening, closing in ("()", "{}", "[]"):
        assert expr.count(opening) == expr.count(closing), f"{where}: unbalanced {opening}"
    return names


# -- alerts -----------------------------------------------------------------------------------


def test_the_alerts_of_reference_002(prod: list[Obj], metrics: dict[str, set[str]]) -> None:
    rule = one(prod, "PrometheusRule", "tailrace")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    groups = rule["spec"]["groups"]
    assert groups and all(g["name"] and g["rules"] for g in groups)
    alerts = {}
    for group in groups:
        for r in group["rules"]:
            assert set(r) <= {"alert", "expr", "for", "labels", "annotations"}, r
            assert DURATION.match(r["for"]), r["for"]
            assert r["labels"]["severity"] in ("critical", "warning")
            assert r["annotations"]["summary"] and r["annotations"]["description"]
            alerts[r["alert"]] = (check_query(r["expr"], metrics, r["alert"]), r)
    assert set(alerts) == {
        "TailraceCriticalBacklog",
        "TailraceDeadLettersGrowing",
        "TailraceJobFailureRateHigh",
        "TailraceOutboxEventsDead",
        "TailraceSpoolNotDraining",
    }
    assert alerts["TailraceOutboxEventsDead"][0] == {"tailrace_outbox_events"}
    assert alerts["TailraceSpoolNotDraining"][0] == {"tailrace_spool_depth"}
    series, backlog = alerts["TailraceCriticalBacklog"]
    assert series == {"tailrace_queue_depth"}
    assert 'priority="critical"' in backlog["expr"] and 'state="pending"' in backlog["expr"]
    assert backlog["expr"].endswith("> 100") and backlog["for"] == "2m"
    assert alerts["TailraceDeadLettersGrowing"][0] == {"tailrace_dead_letter_depth"}
    assert alerts["TailraceJobFailureRateHigh"][0] == {
        "tailrace_jobs_failed_total",
        "tailrace_jobs_started_total",
    }


# the Kafka workers' names and the tailrace series each is recorded from
KAFKA_WORKERS_NAMES = {
    "messages_processed_total": {"tailrace_stream_messages_handled_total"},
    "worker_processing_duration_seconds_bucket": {"tailrace_stream_handler_seconds_bucket"},
    "worker_processing_duration_seconds_sum": {"tailrace_stream_handler_seconds_sum"},
    "worker_processing_duration_seconds_count": {"tailrace_stream_handler_seconds_count"},
    "dlq_messages_total": {"tailrace_stream_messages_dead_lettered_total"},
    "outbox_pending_events": {"tailrace_outbox_events"},
    "redis_fallback_queue_length": {"tailrace_spool_depth"},
    "uploads_cleaned_total": {"tailrace_objects_retention_failed_uploads_total"},
}


def test_the_kafka_workers_metric_names_are_recorded(
    prod: list[Obj], metrics: dict[str, set[str]]
) -> None:
    rule = one(prod, "PrometheusRule", "tailrace-kafka-workers-names")
    recorded = {}
    for group in rule["spec"]["groups"]:
        for r in group["rules"]:
            assert set(r) == {"record", "expr"}, r
            recorded[r["record"]] = check_query(r["expr"], metrics, r["record"])
    assert recorded == KAFKA_WORKERS_NAMES


def test_the_scrape_targets_select_what_exports_metrics(prod: list[Obj]) -> None:
    service = one(prod, "Service", "tailrace-admin")
    monitor = one(prod, "ServiceMonitor", "tailrace-admin")
    assert selects(monitor["spec"]["selector"], service["metadata"]["labels"])
    service_ports = {p["name"] for p in service["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= service_ports
    admin = one(prod, "Deployment", "tailrace-admin")["spec"]["template"]
    env = {e["name"]: e.get("value") for e in admin["spec"]["containers"][0]["env"]}
    assert env["TAILRACE_METRICS_PUBLIC"] == "true"  # Prometheus holds no token

    pods = one(prod, "PodMonitor", "tailrace-worker")
    endpoint_ports = {e["port"] for e in pods["spec"]["podMetricsEndpoints"]}
    for name in (
        "tailrace-worker",
        "tailrace-worker-critical",
        "tailrace-consumer",
        "tailrace-outbox-relay",
    ):
        template = one(prod, "Deployment", name)["spec"]["template"]
        assert selects(pods["spec"]["selector"], template["metadata"]["labels"]), name
        ports = {p["name"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
        assert endpoint_ports <= ports, name
    assert not selects(pods["spec"]["selector"], admin["metadata"]["labels"])

    # the pods of reprocessing jobs, as the Kubernetes executor labels them
    from datetime import UTC, datetime

    from tailrace.executors.kubernetes import KubernetesSettings, build_objects
    from tailrace.pipeline.jobs import ReprocessingConfig, ReprocessingJob, ReprocessingStatus

    record = ReprocessingJob(
        id="a1b2c3d4e5f6",
        config=ReprocessingConfig(source="s3://bucket/logs/", sink="@kafka"),
        status=ReprocessingStatus.PENDING,
        created_at=datetime.now(UTC),
        started_at=None,
        completed_at=None,
        k8s_job_name=None,
        total_files=1,
        total_workers=1,
        total_bytes=0,
        error=None,
    )
    settings = KubernetesSettings(image="tailrace:1")
    _, _, job = build_objects(record, [("s3://bucket/logs/a.gz", 1)], settings, {})
    template = job["spec"]["template"]
    reprocessing = one(prod, "PodMonitor", "tailrace-reprocessing-worker")
    assert selects(reprocessing["spec"]["selector"], template["metadata"]["labels"])
    ports = {p["name"] for c in template["spec"]["containers"] for p in c["ports"]}
    assert {e["port"] for e in reprocessing["spec"]["podMetricsEndpoints"]} <= ports
    for name in ("tailrace-worker", "tailrace-admin", "tailrace-consumer"):
        labels = one(prod, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert not selects(reprocessing["spec"]["selector"], labels), name


def test_dev_needs_no_prometheus_operator() -> None:
    kinds = {o["kind"] for o in render("dev")}
    assert not kinds & {"PrometheusRule", "ServiceMonitor", "PodMonitor"}


# -- the dashboard ----------------------------------------------------------------------------


def test_the_grafana_dashboard(metrics: dict[str, set[str]]) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    titles = {p["title"]: p for p in panels if p["type"] != "row"}
    read = {}
    for title, panel in titles.items():
        assert panel["targets"], title
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), title
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), title
        read[title] = set().union(
            *(
                check_query(t["expr"], metrics, title)
                if SERIES.search(t["expr"])
                else check_cluster_query(t["expr"], title)
                for t in panel["targets"]
            )
        )
    assert read["Queue depth by priority"] == {"tailrace_queue_depth"}
    stacking = titles["Queue depth by priority"]["fieldConfig"]["defaults"]["custom"]["stacking"]
    assert stacking["mode"] == "normal"
    assert read["Dead-letter depth"] == {"tailrace_dead_letter_depth"}
    assert read["Job rate"] >= {"tailrace_jobs_started_total", "tailrace_jobs_failed_total"}
    assert read["Job duration"] == {"tailrace_job_duration_seconds_bucket"}
    assert read["Reprocessing progress"] == {"tailrace_reprocessing_progress_ratio"}
    assert read["Reprocessing events by outcome"] == {"tailrace_reprocessing_events"}
    # the stream workers
    assert read["Consumer lag"] == {"tailrace_stream_consumer_lag"}
    assert read["Messages handled"] >= {
        "tailrace_stream_messages_handled_total",
        "tailrace_stream_messages_dead_lettered_total",
    }
    assert read["Handler duration"] == {"tailrace_stream_handler_seconds_bucket"}
    assert read["Producer circuits and spools"] == {
        "tailrace_spool_depth",
        "tailrace_producer_circuit_state",
    }
    assert read["Outbox events"] == {"tailrace_outbox_events"}
    assert read["Outbox published"] >= {"tailrace_outbox_published_events_total"}
    assert read["Outbox batch latency"] == {"tailrace_outbox_batch_seconds_bucket"}
    # the pods and their autoscalers
    assert read["Pod CPU"] == {"container_cpu_usage_seconds_total"}
    assert read["Pod memory"] == {"container_memory_working_set_bytes"}
    assert read["HPA replicas"] == {
        "kube_horizontalpodautoscaler_status_current_replicas",
        "kube_horizontalpodautoscaler_status_desired_replicas",
    }
    assert read["HPA scaling events"] == {"kube_horizontalpodautoscaler_status_desired_replicas"}
    # panels do not overlap
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        g = panel["gridPos"]
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    for panel in titles.values():
        for used in re.findall(r"\$([a-z_]+)", json.dumps(panel["targets"])):
            assert used in variables or used.startswith("__"), used


def test_the_adapter_serves_the_metric_the_autoscalers_use(
    prod: list[Obj], metrics: dict[str, set[str]]
) -> None:
    values = yaml.safe_load(ADAPTER.read_text())
    served = set()
    for rule in values["rules"]["external"]:
        check_query(rule["seriesQuery"], metrics, "adapter seriesQuery")
        served.add(rule["name"]["as"])
    wanted = {
        m["external"]["metric"]["name"]
        for hpa in of_kind(prod, "HorizontalPodAutoscaler").values()
        for m in hpa["spec"]["metrics"]
        if m["type"] == "External"
    }
    assert wanted and wanted <= served


def test_the_rbac_rules_file_is_plain_data() -> None:
    rules = json.loads((Path(ROOT) / "deploy" / "kubernetes" / "rbac-rules.json").read_text())
    assert isinstance(rules, list) and rules
    for rule in rules:
        assert all(isinstance(v, list) and v for v in rule.values()), rule
