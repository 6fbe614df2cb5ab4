"""The alerts and recording rules, evaluated by Prometheus itself: `promtool test rules` on
the rules the prod overlay renders, against series shaped as tailrace exports them (zero
included: every known queue exports its gauges, a dead-letter depth of 0 before the first).

promtool comes from Debian's `prometheus` package (.ci/run installs it)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.services import missing

from .rendering import Obj, of_kind, render

Case = dict[str, Any]


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        missing("promtool", "not on PATH; apt-get install prometheus")
    return str(found)


@pytest.fixture(scope="module")
def rules_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every rule group of the prod overlay's PrometheusRules in one rules file. The
    annotations are left out: promtool compares them whole, and their text (templated on
    the value) is not what these tests are about; expressions, durations and labels are."""
    groups = []
    for rule in of_kind(render("prod"), "PrometheusRule").values():
        for group in rule["spec"]["groups"]:
            rules = [{k: v for k, v in r.items() if k != "annotations"} for r in group["rules"]]
            groups.append({**group, "rules": rules})
    path = tmp_path_factory.mktemp("rules") / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}))
    return path


def run(promtool: str, rules_file: Path, tests: list[Case]) -> None:
    spec: Obj = {"rule_files": [str(rules_file)], "evaluation_interval": "30s", "tests": tests}
    test_file = rules_file.parent / "tests.yaml"
    test_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    done = subprocess.run(
        [promtool, "test", "rules", str(test_file)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"promtool test rules failed:\n{done.stdout}\n{done.stderr}"


def alert(name: str, at: str, *expected: dict[str, str]) -> Case:
    return {
        "eval_time": at,
        "alertname": name,
        "exp_alerts": [{"exp_labels": labels} for labels in expected],
    }


# -- alerts -----------------------------------------------------------------------------------


def test_dead_letters_growing_fires_on_the_first_dead_letter(
    promtool: str, rules_file: Path
) -> None:
    # Two workers and the admin service export the same gauge (max by queue); a first job
    # goes dead at 10 m. The alert waits its 5 m, and ends once 15 m pass without a new one.
    depth = "tailrace_dead_letter_depth"
    series = [
        {"series": f'{depth}{{queue="default", pod="{pod}"}}', "values": "0x20 1x60"}
        for pod in ("worker-a", "worker-b", "admin")
    ]
    series.append({"series": f'{depth}{{queue="other", pod="admin"}}', "values": "0x80"})
    firing = {"alertname": "TailraceDeadLettersGrowing", "queue": "default", "severity": "warning"}
    run(
        promtool,
        rules_file,
        [
            {
                "interval": "30s",
                "input_series": series,
                "alert_rule_test": [
                    alert("TailraceDeadLettersGrowing", "9m"),
                    alert("TailraceDeadLettersGrowing", "13m"),  # pending for its 5 m
                    alert("TailraceDeadLettersGrowing", "17m", firing),
                    alert("TailraceDeadLettersGrowing", "35m"),
                ],
            }
        ],
    )


def test_without_the_zero_series_the_first_dead_letter_went_unseen(
    promtool: str, rules_file: Path
) -> None:
    # What tailrace exported before known queues had zero-valued series: nothing until the
    # first dead job, then 1. The window holds only 1s: delta() is 0 and nothing fires.
    series = [{"series": 'tailrace_dead_letter_depth{queue="default"}', "values": "_x20 1x60"}]
    run(
        promtool,
        rules_file,
        [
            {
                "interval": "30s",
                "input_series": series,
                "alert_rule_test": [
                    alert("TailraceDeadLettersGrowing", at) for at in ("17m", "25m")
                ],
            }
        ],
    )


def test_critical_backlog_counts_pending_jobs_not_scheduled_ones(
    promtool: str, rules_file: Path
) -> None:
    depth = "tailrace_queue_depth"
    series = [
        # 150 CRITICAL jobs scheduled for later, in both queues: no backlog
        {
            "series": f'{depth}{{queue="default", priority="critical", state="scheduled"}}',
            "values": "150x20",
        },
        {
            "series": f'{depth}{{queue="reports", priority="critical", state="scheduled"}}',
            "values": "150x20",
        },
        # 150 due now in one queue, seen by two targets
        {
            "series": f'{depth}{{queue="reports", priority="critical", state="pending", pod="a"}}',
            "values": "0 150x20",
        },
        {
            "series": f'{depth}{{queue="reports", priority="critical", state="pending", pod="b"}}',
            "values": "0 150x20",
        },
        {
            "series": f'{depth}{{queue="default", priority="critical", state="pending"}}',
            "values": "0x20",
        },
        {
            "series": f'{depth}{{queue="default", priority="bulk", state="pending"}}',
            "values": "5000x20",
        },
    ]
    firing = {"alertname": "TailraceCriticalBacklog", "queue": "reports", "severity": "critical"}
    run(
        promtool,
        rules_file,
        [
            {
                "interval": "30s",
                "input_series": series,
                "alert_rule_test": [
                    alert("TailraceCriticalBacklog", "2m"),
                    alert("TailraceCriticalBacklog", "3m", firing),
                ],
                "promql_expr_test": [
                    {
                        "expr": f'max by (queue) ({depth}{{priority="critical",state="pending"}})',
                        "eval_time": "3m",
                        "exp_samples": [
                            {"labels": '{queue="default"}', "value": 0},
                            {"labels": '{queue="reports"}', "value": 150},
                        ],
                    }
                ],
            }
        ],
    )


def test_failure_rate_over_ten_percent_fires(promtool: str, rules_file: Path) -> None:
    started, failed = "tailrace_jobs_started_total", "tailrace_jobs_failed_total"
    series = [
        # 100 attempts a minute in each queue; 20 % fail in "flaky", 5 % in "steady"
        {"series": f'{started}{{queue="flaky", task="t"}}', "values": "0+50x30"},
        {"series": f'{failed}{{queue="flaky", task="t"}}', "values": "0+10x30"},
        {"series": f'{started}{{queue="steady", task="t"}}', "values": "0+50x30"},
        {"series": f'{failed}{{queue="steady", task="t"}}', "values": "0+2.5x30"},
    ]
    firing = {"alertname": "TailraceJobFailureRateHigh", "queue": "flaky", "severity": "warning"}
    run(
        promtool,
        rules_file,
        [
            {
                "interval": "30s",
                "input_series": series,
                "alert_rule_test": [alert("TailraceJobFailureRateHigh", "12m", firing)],
            }
        ],
    )


def test_a_dead_outbox_event_and_a_spool_left_waiting_fire(promtool: str, rules_file: Path) -> None:
    series = [
        # two relays read the same table: one event dies at 5 m
        {
            "series": f'tailrace_outbox_events{{namespace="chat", status="dead", pod="{pod}"}}',
            "values": "0x10 1x30",
        }
        for pod in ("r1", "r2")
    ]
    series += [
        {
            "series": 'tailrace_outbox_events{namespace="chat", status="pending", pod="r1"}',
            "values": "900x40",
        },
        # a spool that drains within minutes, and one left waiting
        {
            "series": 'tailrace_spool_depth{namespace="chat", spool="brief", kind="redis"}',
            "values": "0x4 500 300 100 0x34",
        },
        {
            "series": 'tailrace_spool_depth{namespace="chat", spool="stuck", kind="disk"}',
            "values": "0x4 500x36",
        },
    ]
    dead = {"alertname": "TailraceOutboxEventsDead", "namespace": "chat", "severity": "warning"}
    stuck = {
        "alertname": "TailraceSpoolNotDraining",
        "namespace": "chat",
        "spool": "stuck",
        "severity": "warning",
    }
    run(
        promtool,
        rules_file,
        [
            {
                "interval": "30s",
                "input_series": series,
                "alert_rule_test": [
                    alert("TailraceOutboxEventsDead", "9m"),
                    alert("TailraceOutboxEventsDead", "11m", dead),
                    alert("TailraceSpoolNotDraining", "10m"),
                    alert("TailraceSpoolNotDraining", "18m", stuck),
                ],
            }
        ],
    )


# -- the Kafka workers' names -----------------------------------------------------------------


def test_the_kafka_workers_names_read_as_their_dashboards_expect(
    promtool: str, rules_file: Path
) -> None:
    labels = 'topic="message_processing", group="message_router_group"'
    series = [
        {
            "series": f'tailrace_stream_messages_handled_total{{{labels}, pod="a"}}',
            "values": "0+60x20",
        },
        {
            "series": f'tailrace_stream_messages_handled_total{{{labels}, pod="b"}}',
            "values": "0+30x20",
        },
        {
            "series": f'tailrace_stream_messages_dead_lettered_total{{{labels}, pod="a"}}',
            "values": "0+3x20",
        },
        {
            "series": f'tailrace_stream_handler_seconds_bucket{{{labels}, le="0.1"}}',
            "values": "0+90x20",
        },
        {
            "series": f'tailrace_stream_handler_seconds_bucket{{{labels}, le="+Inf"}}',
            "values": "0+100x20",
        },
        # every relay reads the same table
        {
            "series": 'tailrace_outbox_events{namespace="chat", status="pending", pod="r1"}',
            "values": "42x20",
        },
        {
            "series": 'tailrace_outbox_events{namespace="chat", status="pending", pod="r2"}',
            "values": "42x20",
        },
        {
            "series": 'tailrace_outbox_events{namespace="chat", status="dead", pod="r1"}',
            "values": "7x20",
        },
        {
            "series": 'tailrace_spool_depth{namespace="chat", spool="fallback", kind="redis"}',
            "values": "12x20",
        },
        {
            "series": 'tailrace_spool_depth{namespace="chat", spool="local", kind="disk"}',
            "values": "99x20",
        },
        {"series": "tailrace_objects_retention_failed_uploads_total", "values": "0+1x20"},
    ]
    run(
        promtool,
        rules_file,
        [
            {
                "interval": "30s",
                "input_series": series,
                "promql_expr_test": [
                    # their queries, word for word (per second: 2 + 1 handled, 0.1 dead)
                    {
                        "expr": "sum(rate(messages_processed_total[5m]))",
                        "eval_time": "10m",
                        "exp_samples": [{"labels": "{}", "value": 3}],
                    },
                    {
                        "expr": "sum(rate(dlq_messages_total[5m]))",
                        "eval_time": "10m",
                        "exp_samples": [{"labels": "{}", "value": 0.1}],
                    },
                    {
                        "expr": "histogram_quantile(0.99, "
                        "rate(worker_processing_duration_seconds_bucket[5m]))",
                        "eval_time": "10m",
                        # 99 % of the calls: the last 10 % lie beyond 0.1 s, so +Inf's lower
                        # bound, as histogram_quantile answers above the last finite bucket
                        "exp_samples": [
                            {
                                "labels": "{" + labels.replace(", ", ",") + "}",
                                "value": 0.1,
                            }
                        ],
                    },
                    {
                        "expr": "outbox_pending_events",
                        "eval_time": "5m",
                        "exp_samples": [
                            {"labels": 'outbox_pending_events{namespace="chat"}', "value": 42}
                        ],
                    },
                    {
                        "expr": "redis_fallback_queue_length",
                        "eval_time": "5m",
                        "exp_samples": [
                            {
                                "labels": "redis_fallback_queue_length"
                                '{namespace="chat",spool="fallback"}',
                                "value": 12,
                            }
                        ],
                    },
                    {
                        "expr": "increase(uploads_cleaned_total[10m])",
                        "eval_time": "10m",
                        "exp_samples": [{"labels": "{}", "value": 20}],
                    },
                ],
            }
        ],
    )
