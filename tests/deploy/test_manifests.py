"""The kustomize overlays, rendered by `kubectl kustomize` and checked object by object:
Kubernetes' own schemas, then what the schemas cannot say (RBAC, security, references)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import click
import pytest

from tailrace.cli import COMMANDS, cli
from tailrace.engine.states import JobState, Priority
from tailrace.executors.kubernetes import RBAC_RULES

from .rendering import (
    KUBERNETES,
    Obj,
    containers,
    env_map,
    env_value,
    of_kind,
    one,
    pod_templates,
    selects,
)

# the Prometheus Operator's kinds, which have no schema in kubernetes-validate: the
# monitoring tests check their structure
OPERATOR_KINDS = {"PrometheusRule", "ServiceMonitor", "PodMonitor"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
NAMESPACES = {"dev": "tailrace-dev", "prod": "tailrace"}
# the Secrets docs/deploy.md tells the operator to create; nothing else may be referenced
SECRETS = {"tailrace-admin", "tailrace-ingest"}
ARG_VARIABLE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def test_every_object_satisfies_the_kubernetes_schemas(
    objects: list[Obj], validate: Callable[[Obj], Any]
) -> None:
    import kubernetes_validate

    unchecked = set()
    for obj in objects:
        try:
            validate(obj)
        except kubernetes_validate.SchemaNotFoundError:
            unchecked.add(obj["kind"])
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {where}: {exc.message}")
    assert unchecked <= OPERATOR_KINDS, f"no schema for {sorted(unchecked - OPERATOR_KINDS)}"


def test_the_overlay_renders_what_it_should(overlay: str, objects: list[Obj]) -> None:
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    expected = {
        ("Namespace", NAMESPACES[overlay]),
        ("ServiceAccount", "tailrace-admin"),
        ("ServiceAccount", "tailrace-worker"),
        ("Role", "tailrace-admin"),
        ("RoleBinding", "tailrace-admin"),
        ("ConfigMap", "tailrace"),
        ("Deployment", "tailrace-admin"),
        ("Service", "tailrace-admin"),
        ("Deployment", "tailrace-worker"),
        ("Deployment", "tailrace-worker-critical"),
        ("HorizontalPodAutoscaler", "tailrace-worker"),
        ("HorizontalPodAutoscaler", "tailrace-worker-critical"),
        ("PodDisruptionBudget", "tailrace-worker"),
        ("PodDisruptionBudget", "tailrace-worker-critical"),
        ("CronJob", "tailrace-ingest"),
        ("Deployment", "tailrace-consumer"),
        ("Deployment", "tailrace-outbox-relay"),
        ("HorizontalPodAutoscaler", "tailrace-consumer"),
        ("HorizontalPodAutoscaler", "tailrace-outbox-relay"),
        ("PodDisruptionBudget", "tailrace-consumer"),
        ("PodDisruptionBudget", "tailrace-outbox-relay"),
    }
    if overlay == "prod":
        expected |= {
            ("PrometheusRule", "tailrace"),
            ("PrometheusRule", "tailrace-kafka-workers-names"),
            ("ServiceMonitor", "tailrace-admin"),
            ("PodMonitor", "tailrace-worker"),
            ("PodMonitor", "tailrace-reprocessing-worker"),
        }
    assert kinds == expected


def test_objects_are_in_the_overlay_namespace(overlay: str, objects: list[Obj]) -> None:
    for obj in objects:
        if obj["kind"] not in CLUSTER_SCOPED:
            assert obj["metadata"].get("namespace") == NAMESPACES[overlay], obj["metadata"]
    for binding in of_kind(objects, "RoleBinding").values():
        for subject in binding["subjects"]:
            assert subject.get("namespace", NAMESPACES[overlay]) == NAMESPACES[overlay]


# -- RBAC ---------------------------------------------------------------------------------


def _normal(rules: list[Obj]) -> list[tuple[tuple[str, ...], ...]]:
    return sorted(
        (
            tuple(sorted(r["apiGroups"])),
            tuple(sorted(r["resources"])),
            tuple(sorted(r["verbs"])),
        )
        for r in rules
    )


def test_the_role_grants_exactly_rbac_rules_json(objects: list[Obj]) -> None:
    wanted = json.loads((KUBERNETES / "rbac-rules.json").read_text())
    assert all(set(rule) == {"apiGroups", "resources", "verbs"} for rule in wanted)
    role = one(objects, "Role", "tailrace-admin")
    assert set(role) == {"apiVersion", "kind", "metadata", "rules"}
    for rule in role["rules"]:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, rule  # no resourceNames etc.
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
    assert _normal(role["rules"]) == _normal(wanted)


def test_the_rules_are_the_calls_the_executor_makes() -> None:
    """The executor lists its calls in RBAC_RULES (and its end-to-end test checks that list
    against the calls it really makes): the manifests' rules are exactly those."""
    granted = {
        (group, resource, verb)
        for rule in json.loads((KUBERNETES / "rbac-rules.json").read_text())
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert granted == {(g, r, v) for g, r, verbs in RBAC_RULES for v in verbs}


def test_only_the_admin_service_can_reach_the_kubernetes_api(objects: list[Obj]) -> None:
    assert not of_kind(objects, "ClusterRole") and not of_kind(objects, "ClusterRoleBinding")
    bindings = of_kind(objects, "RoleBinding")
    assert list(bindings) == ["tailrace-admin"]
    binding = bindings["tailrace-admin"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "tailrace-admin",
    }
    assert [(s["kind"], s["name"]) for s in binding["subjects"]] == [
        ("ServiceAccount", "tailrace-admin")
    ]
    accounts = of_kind(objects, "ServiceAccount")
    for where, template in pod_templates(objects):
        spec = template["spec"]
        account = spec.get("serviceAccountName", "default")
        assert account in accounts, f"{where}: service account {account} is not rendered"
        if where == "Deployment/tailrace-admin":
            assert account == "tailrace-admin"
        else:
            assert account != "tailrace-admin", where
            assert spec.get("automountServiceAccountToken") is False, where


# -- pods -----------------------------------------------------------------------------------


def test_every_container_has_requests_and_limits(objects: list[Obj]) -> None:
    for where, _, container in containers(objects):
        resources = container.get("resources", {})
        for bound in ("requests", "limits"):
            assert set(resources.get(bound, {})) >= {"cpu", "memory"}, f"{where}: {bound}"


def test_every_container_runs_as_non_root_on_a_read_only_root(objects: list[Obj]) -> None:
    for where, spec, container in containers(objects):
        pod = spec.get("securityContext", {})
        own = container.get("securityContext", {})
        assert own.get("runAsNonRoot", pod.get("runAsNonRoot")) is True, where
        assert own.get("runAsUser", pod.get("runAsUser")) not in (None, 0), where
        assert own.get("allowPrivilegeEscalation") is False, where
        assert own.get("readOnlyRootFilesystem") is True, where
        assert own.get("capabilities", {}).get("drop") == ["ALL"], where


def test_what_tailrace_writes_is_on_a_volume(objects: list[Obj]) -> None:
    """A read-only root: the data directory (logs, ingest's local workers) and /tmp are
    emptyDirs."""
    for where, spec, container in containers(objects):
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
        data_dir = env_value(container, "TAILRACE_DATA_DIR")["value"]
        for path in (data_dir, "/tmp"):
            assert path in mounts, f"{where}: nothing mounted on {path}"
            assert "emptyDir" in volumes[mounts[path]], f"{where}: {path}"


def test_one_image_for_every_role(overlay: str, objects: list[Obj]) -> None:
    images = {c["image"] for _, _, c in containers(objects)}
    assert len(images) == 1, images
    image = images.pop()
    name, _, tag = image.rpartition(":")
    assert name and tag and tag != "latest", image
    if overlay == "dev":
        assert image == "tailrace:dev"


# -- the admin service ------------------------------------------------------------------------


def _admin(objects: list[Obj]) -> tuple[Obj, Obj]:
    deployment = one(objects, "Deployment", "tailrace-admin")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return deployment, container


def test_the_admin_service_is_probed_and_served(objects: list[Obj]) -> None:
    deployment, container = _admin(objects)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 3049}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    service = one(objects, "Service", "tailrace-admin")
    [port] = service["spec"]["ports"]
    assert port["port"] == 3049 and port["targetPort"] == "http"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selects({"matchLabels": service["spec"]["selector"]}, labels)
    assert selects(deployment["spec"]["selector"], labels)


def test_the_admin_service_is_configured_for_the_kubernetes_executor(objects: list[Obj]) -> None:
    _, container = _admin(objects)
    assert [s["secretRef"]["name"] for s in container["envFrom"]] == ["tailrace-admin"]
    assert env_value(container, "TAILRACE_EXECUTOR")["value"] == "kubernetes"
    assert env_value(container, "K8S_NAMESPACE")["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.namespace"}
    }
    # the workers of reprocessing jobs run the image the admin service runs
    assert env_value(container, "REPROCESSING_WORKER_IMAGE")["value"] == container["image"]
    assert int(env_value(container, "K8S_MAX_PARALLEL_WORKERS")["value"]) >= 1
    names = [e["name"] for e in container["env"]]
    assert "K8S_CONFIG_PATH" not in names  # in-cluster configuration


# -- references -------------------------------------------------------------------------------


def _expand(arg: str, variables: dict[str, str]) -> str:
    """What Kubernetes does to args: $(NAME) becomes the value of the container's NAME."""
    return ARG_VARIABLE.sub(lambda m: variables[m.group(1)], arg)


def _command_of(argv: list[str]) -> tuple[str, click.Context]:
    """Parse argv as `tailrace` would, without running anything; raises click's errors."""
    names = [i for i, a in enumerate(argv) if a in COMMANDS]  # loaded on first use
    assert names, f"no tailrace command in {argv}"
    at = names[0]
    parent = cli.make_context("tailrace", argv[:at], resilient_parsing=True)
    command = cli.get_command(parent, argv[at])
    assert command is not None
    return argv[at], command.make_context(argv[at], argv[at + 1 :], parent=parent)


def test_every_container_runs_a_tailrace_command_that_parses(objects: list[Obj]) -> None:
    commands = {}
    for where, _, container in containers(objects):
        assert "command" not in container, f"{where}: the image's entrypoint is tailrace"
        variables = env_map(container, objects)
        for arg in container["args"]:
            for name in ARG_VARIABLE.findall(arg):
                assert name in variables, f"{where}: $({name}) is not in its env"
        argv = [_expand(arg, variables) for arg in container["args"]]
        name, ctx = _command_of(argv)
        commands[where] = (name, ctx.params)
    assert commands["Deployment/tailrace-admin container admin"][0] == "serve"
    assert commands["CronJob/tailrace-ingest container ingest"][0] == "ingest"
    for pool in ("tailrace-worker", "tailrace-worker-critical"):
        name, params = commands[f"Deployment/{pool} container worker"]
        assert name == "worker"
        # without --queues an engine worker would also claim the reprocess:<job> queues
        assert params["queues"] and not params["queues"].startswith("reprocess:")
        assert params["metrics_port"]
    name, params = commands["Deployment/tailrace-consumer container consumer"]
    assert name == "consume" and params["handler_spec"] and params["metrics_port"] == 9464
    assert params["group"] and params["topic"]
    name, _ = commands["Deployment/tailrace-outbox-relay container relay"]
    assert name == "outbox"


def test_every_deployment_is_probed_on_the_port_that_serves_its_probes(
    objects: list[Obj],
) -> None:
    """Liveness on /healthz, readiness on /readyz, on a named port of the container: the
    admin service's http, the metrics server of every other process."""
    deployments = of_kind(objects, "Deployment")
    assert len(deployments) == 5
    for name, deployment in deployments.items():
        for c in deployment["spec"]["template"]["spec"]["containers"]:
            ports = {p["name"] for p in c["ports"]}
            where = f"{name} container {c['name']}"
            for probe, path in (
                ("livenessProbe", "/healthz"),
                ("readinessProbe", "/readyz"),
                ("startupProbe", "/healthz"),
            ):
                get = c[probe]["httpGet"]
                assert get["path"] == path, where
                assert get["port"] in ports, where
            if name != "tailrace-admin":
                # the metrics server listens on TAILRACE_METRICS_HOST: reachable by the kubelet
                assert env_map(c, objects)["TAILRACE_METRICS_HOST"] == "0.0.0.0", where


def test_the_critical_pool_works_critical_and_high_jobs_only(objects: list[Obj]) -> None:
    pools = {}
    for pool in ("tailrace-worker", "tailrace-worker-critical"):
        [container] = one(objects, "Deployment", pool)["spec"]["template"]["spec"]["containers"]
        pools[pool] = env_map(container, objects).get("WORKER_PRIORITY_FILTER")
    assert pools["tailrace-worker"] is None
    critical = pools["tailrace-worker-critical"]
    assert critical is not None
    assert Priority.parse_list(critical) == [Priority.CRITICAL, Priority.HIGH]


def test_config_and_secret_references_exist(objects: list[Obj], deploy_doc: str) -> None:
    maps = of_kind(objects, "ConfigMap")
    for where, _, container in containers(objects):
        for source in container.get("envFrom", []):
            assert source["secretRef"]["name"] in SECRETS, where
        for entry in container.get("env", []):
            ref = entry.get("valueFrom", {})
            if "configMapKeyRef" in ref:
                key = ref["configMapKeyRef"]
                assert key["key"] in maps[key["name"]]["data"], f"{where}: {key}"
            if "secretKeyRef" in ref:
                assert ref["secretKeyRef"]["name"] in SECRETS, f"{where}: {ref}"
    for secret in SECRETS:
        assert f"kubectl create secret generic {secret}" in deploy_doc


def test_the_ingest_cronjob(objects: list[Obj], deploy_doc: str) -> None:
    cronjob = one(objects, "CronJob", "tailrace-ingest")
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    assert len(cronjob["spec"]["schedule"].split()) == 5
    [container] = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    sink = args[args.index("--sink") + 1]
    # a reference: the URL with its password comes from the Secret, as this variable
    assert sink == "@ingest" and "TAILRACE_SINK_INGEST" in deploy_doc
    source = env_map(container, objects)["TAILRACE_INGEST_SOURCE"]
    assert source.startswith("s3://")


def test_autoscalers_scale_deployments_that_leave_them_the_count(objects: list[Obj]) -> None:
    deployments = of_kind(objects, "Deployment")
    hpas = of_kind(objects, "HorizontalPodAutoscaler")
    assert set(hpas) == {
        "tailrace-worker",
        "tailrace-worker-critical",
        "tailrace-consumer",
        "tailrace-outbox-relay",
    }
    # reference 002's general pool scales on memory too, as do the stream workers
    for name in ("tailrace-worker", "tailrace-consumer", "tailrace-outbox-relay"):
        memory = [
            m["resource"]["target"]
            for m in hpas[name]["spec"]["metrics"]
            if m["type"] == "Resource" and m["resource"]["name"] == "memory"
        ]
        assert memory == [{"type": "Utilization", "averageUtilization": 80}], name
    for name, hpa in hpas.items():
        target = hpa["spec"]["scaleTargetRef"]
        assert (target["apiVersion"], target["kind"]) == ("apps/v1", "Deployment")
        assert target["name"] in deployments, name
        deployment = deployments[target["name"]]
        assert "replicas" not in deployment["spec"], f"{name}: apply would reset the HPA's count"
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        kinds = [m["type"] for m in hpa["spec"]["metrics"]]
        assert "Resource" in kinds
        # CPU utilisation is relative to the request
        for c in deployment["spec"]["template"]["spec"]["containers"]:
            assert "cpu" in c["resources"]["requests"], name


def test_prod_scales_on_queue_depth(
    overlay: str, objects: list[Obj], metrics: dict[str, set[str]]
) -> None:
    queues = set(one(objects, "ConfigMap", "tailrace")["data"]["worker-queues"].split(","))
    external = {}
    for name, hpa in of_kind(objects, "HorizontalPodAutoscaler").items():
        for m in hpa["spec"]["metrics"]:
            if m["type"] == "External":
                external[name] = m["external"]
    if overlay == "dev":
        assert not external, "dev needs no Prometheus Adapter"
        return
    assert set(external) == {
        "tailrace-worker",
        "tailrace-worker-critical",
        "tailrace-consumer",
        "tailrace-outbox-relay",
    }
    config = one(objects, "ConfigMap", "tailrace")["data"]
    lag = external.pop("tailrace-consumer")
    assert lag["metric"]["name"] == "tailrace_stream_consumer_lag"
    assert lag["metric"]["selector"] == {"matchLabels": {"group": config["consume-group"]}}
    assert "group" in metrics["tailrace_stream_consumer_lag"]
    pending = external.pop("tailrace-outbox-relay")
    assert pending["metric"]["name"] == "tailrace_outbox_events"
    assert pending["metric"]["selector"] == {"matchLabels": {"status": "pending"}}
    assert "status" in metrics["tailrace_outbox_events"]
    for spec in (lag, pending):
        assert spec["target"]["type"] == "AverageValue"
    values = {
        "priority": {p.name.lower() for p in Priority},
        "state": {s.value for s in JobState if not s.finished},
        "queue": queues,
    }
    for name, spec in external.items():
        metric = spec["metric"]
        assert metric["name"] in metrics, f"{name}: tailrace exports no {metric['name']}"
        selector = metric["selector"]
        used = list(selector.get("matchLabels", {}).items())
        for e in selector.get("matchExpressions", []):
            used.extend((e["key"], v) for v in e["values"])
        for label, value in used:
            assert label in metrics[metric["name"]], f"{name}: no label {label}"
            assert value in values[label], f"{name}: {label}={value} never occurs"
        assert spec["target"]["type"] == "AverageValue"
    critical = external["tailrace-worker-critical"]["metric"]["selector"]
    assert selects(critical, {"queue": "default", "state": "pending", "priority": "critical"})
    assert not selects(critical, {"queue": "default", "state": "pending", "priority": "bulk"})


def test_disruption_budgets_cover_the_worker_pools(objects: list[Obj]) -> None:
    budgets = of_kind(objects, "PodDisruptionBudget")
    for name in (
        "tailrace-worker",
        "tailrace-worker-critical",
        "tailrace-consumer",
        "tailrace-outbox-relay",
    ):
        deployment = one(objects, "Deployment", name)
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        covering = [b for b in budgets.values() if selects(b["spec"]["selector"], labels)]
        assert len(covering) == 1, name
        # never blocks a drain, even at one replica
        assert covering[0]["spec"].get("maxUnavailable") == 1
