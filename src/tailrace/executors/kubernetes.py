"""The Kubernetes executor (``TAILRACE_EXECUTOR=kubernetes``): a reprocessing job's workers
as one Indexed Job, the way reference 000 runs them.

For job ``ID`` with N workers it creates:

- ConfigMap ``reprocess-ID-files``: ``files.json`` (url and size of each file),
  ``worker_count`` and ``total_files``;
- Secret ``reprocess-ID-config``: the job's configuration and what the workers need to
  reach the database, the sink, S3 and the repository service, as environment variables;
- Job ``reprocess-ID``: ``completionMode: Indexed``, completions N, parallelism
  min(N, ``K8S_MAX_PARALLEL_WORKERS``), a per-index backoff limit, TTL 24 h after it
  finishes; pod ``i`` runs ``tailrace worker`` with ``JOB_ID=ID`` and ``WORKER_INDEX=i``.

Workers claim files from the job's engine queue like local ones, so the pods need nothing
but the database. Cancel deletes the Job (and its pods), the ConfigMap and the Secret;
Secrets of finished jobs are deleted 24 h after the job ended. A background thread follows
each Job: when it completes or fails the reprocessing job is settled, and an index that
failed past its backoff marks its worker failed with the pod's reason. Logs come from the
pods, with Kubernetes' timestamps.

Every call made here is listed in `RBAC_RULES`; the deployment's Role grants exactly those.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from ..errors import ConfigurationError
from ..extras import require
from ..pipeline.jobs import ReprocessingJob, ReprocessingStatus, ReprocessingStore
from ..pipeline.jobs.service import settle
from ..pipeline.jobs.store import ReprocessingJobNotFoundError
from ..settings import current
from .logs import LogLine, WorkerLog

log = logging.getLogger("tailrace.executor")

# (API group, resource, verbs): what this module calls, and all it calls
RBAC_RULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("batch", "jobs", ("create", "get", "delete")),
    ("", "configmaps", ("create", "delete")),
    ("", "secrets", ("create", "list", "delete")),
    ("", "pods", ("list",)),
    ("", "pods/log", ("get",)),
)

MANAGED_BY = "tailrace"
WORKER_METRICS_PORT = 9464  # a worker pod's /metrics and probes
SECRET_TTL = timedelta(hours=24)
JOB_TTL_S = 24 * 3600
_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
# What the workers need from the service's environment to reach what the job uses.
_PASSED_PREFIXES = (
    "KAFKA_",
    "AWS_",
    "TAILRACE_SINK_",
    "REPOSITORY_",
    "TAILRACE_KAFKA_",
    "TAILRACE_REPOSITORY_",
)
_PASSED_NAMES = ("TAILRACE_LOG_LEVEL", "PGPASSWORD", "PGSSLMODE")
# web identity (IRSA) points at a token file mounted into the service's pod only
_POD_OWN = frozenset(
    {
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    }
)


@dataclass(frozen=True)
class KubernetesSettings:
    image: str
    namespace: str = "default"
    # a kubeconfig file, or its YAML text (Jitsu's KUBERNETES_CLIENT_CONFIG allows both);
    # None or "local" (reference 000's value): in-cluster, else the default kubeconfig
    config_path: str | None = None
    context: str | None = None  # the kubeconfig's context to use (K8S_CONTEXT)
    max_parallel: int = 50
    node_selector: dict[str, str] = field(default_factory=dict)
    backoff_limit_per_index: int = 3
    cpu: str = "1"
    memory: str = "512Mi"
    poll_s: float = 2.0

    @classmethod
    def from_environment(cls) -> KubernetesSettings:
        settings = current()
        image = settings.reprocessing_worker_image
        if not image:
            raise ConfigurationError(
                "TAILRACE_EXECUTOR=kubernetes needs REPROCESSING_WORKER_IMAGE (the worker image)"
            )
        return cls(
            image=image,
            namespace=settings.k8s_namespace,
            config_path=settings.k8s_config_path,
            context=settings.k8s_context,
            max_parallel=settings.k8s_max_parallel_workers,
            node_selector=node_selector(settings.k8s_node_selector or ""),
            backoff_limit_per_index=settings.k8s_backoff_limit_per_index,
            cpu=settings.k8s_worker_cpu,
            memory=settings.k8s_worker_memory,
        )


def node_selector(raw: str) -> dict[str, str]:
    """``{"disktype": "ssd"}`` (JSON, as reference 000 writes it) or ``key=value,key=value``."""
    name = "KUBERNETES_NODE_SELECTOR"
    if raw.strip().startswith("{"):
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ConfigurationError(f"{name}: not valid JSON: {exc}") from None
        if not isinstance(parsed, dict) or not all(
            isinstance(k, str) and isinstance(v, str | int | float | bool) and k
            for k, v in parsed.items()
        ):
            raise ConfigurationError(f"{name}: expected a JSON object of label: value")
        return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in parsed.items()}
    selector: dict[str, str] = {}
    for pair in raw.split(","):
        if not pair.strip():
            continue
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigurationError(
                f"{name}: {pair!r} is not key=value (pairs are comma-separated), "
                'nor a JSON object like {"disktype": "ssd"}'
            )
        selector[key.strip()] = value.strip()
    return selector


def load_client_config(settings: KubernetesSettings) -> None:
    """Point the Kubernetes client at the cluster, or say exactly why it cannot."""
    config: Any = require("kubernetes", "kubernetes.config")
    where = settings.config_path
    try:
        if where and where != "local" and "\n" in where:  # the kubeconfig's YAML itself
            import yaml

            config.load_kube_config_from_dict(yaml.safe_load(where), context=settings.context)
        elif where and where != "local":
            config.load_kube_config(config_file=where, context=settings.context)
        else:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                # KUBECONFIG as it is now (the client reads it once, when imported)
                kubeconfig = os.environ.get("KUBECONFIG") or None
                config.load_kube_config(config_file=kubeconfig, context=settings.context)
    except Exception as exc:
        shown = "local (in-cluster)" if not where or where == "local" else where[:200]
        raise ConfigurationError(
            f"K8S_CONFIG_PATH={shown}: no Kubernetes configuration could be loaded "
            f"({type(exc).__name__}: {exc}); run the service in the cluster with a service "
            "account, or point K8S_CONFIG_PATH (or KUBECONFIG) at a kubeconfig"
        ) from None


def names(job_id: str) -> dict[str, str]:
    base = f"reprocess-{job_id}"
    return {"job": base, "configmap": f"{base}-files", "secret": f"{base}-config"}


def worker_environment(database_url: str, environ: dict[str, str]) -> dict[str, str]:
    """What goes into the job's Secret: the database, and the service's variables that
    reach the sink, S3 and the repository service."""
    if not database_url.startswith(("postgresql://", "postgres://")):
        raise ConfigurationError(
            "the Kubernetes executor needs TAILRACE_DATABASE_URL on PostgreSQL: "
            "pods cannot share a SQLite file"
        )
    passed = {
        key: value
        for key, value in environ.items()
        if (key.startswith(_PASSED_PREFIXES) or key in _PASSED_NAMES)
        and key not in _POD_OWN  # names files of the service's own pod
    }
    return {**passed, "TAILRACE_DATABASE_URL": database_url}


def build_objects(
    job: ReprocessingJob,
    files: list[tuple[str, int]],
    settings: KubernetesSettings,
    environment: dict[str, str],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The ConfigMap, Secret and Indexed Job of one reprocessing job, as manifests."""
    n = names(job.id)
    labels = {"app.kubernetes.io/managed-by": MANAGED_BY, "job-id": job.id}
    workers = job.total_workers
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": n["configmap"], "labels": labels},
        "data": {
            "files.json": orjson.dumps([{"url": u, "size": s} for u, s in files]).decode(),
            "worker_count": str(workers),
            "total_files": str(len(files)),
        },
    }
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": n["secret"], "labels": labels},
        "stringData": {
            **environment,
            "TAILRACE_JOB_CONFIG": job.config.to_stored(),
        },
    }
    container = {
        "name": "worker",
        "image": settings.image,
        "args": ["worker"],
        "env": [
            {"name": "JOB_ID", "value": job.id},
            # in the one writable place, a directory of its own: jobs never read or write
            # the data directory, and /tmp itself may hold what they do
            {"name": "TAILRACE_DATA_DIR", "value": "/tmp/tailrace"},
            {
                "name": "WORKER_INDEX",
                "valueFrom": {
                    "fieldRef": {"fieldPath": f"metadata.annotations['{_INDEX_ANNOTATION}']"}
                },
            },
            # its figures and probes, for the pod monitor tailrace-reprocessing-worker
            {"name": "TAILRACE_METRICS_PORT", "value": str(WORKER_METRICS_PORT)},
            {"name": "TAILRACE_METRICS_HOST", "value": "0.0.0.0"},
        ],
        "ports": [{"name": "metrics", "containerPort": WORKER_METRICS_PORT}],
        "envFrom": [{"secretRef": {"name": n["secret"]}}],
        "resources": {
            "requests": {"cpu": settings.cpu, "memory": settings.memory},
            "limits": {"memory": settings.memory},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "data", "mountPath": "/tmp"}],
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",  # a failed pod is replaced by the Job, per index
        "automountServiceAccountToken": False,  # workers never call the Kubernetes API
        "containers": [container],
        "volumes": [{"name": "data", "emptyDir": {}}],
    }
    if settings.node_selector:
        pod_spec["nodeSelector"] = dict(settings.node_selector)
    kube_job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": n["job"], "labels": labels},
        "spec": {
            "completionMode": "Indexed",
            "completions": workers,
            "parallelism": min(workers, settings.max_parallel),
            "backoffLimitPerIndex": settings.backoff_limit_per_index,
            "maxFailedIndexes": workers,
            "ttlSecondsAfterFinished": JOB_TTL_S,
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }
    return configmap, secret, kube_job


def _indexes(text: str | None) -> list[int]:
    """``"0,2-4"`` -> [0, 2, 3, 4] (the Job status' index lists)."""
    found: list[int] = []
    for part in (text or "").split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        found.extend(range(int(low), int(high or low) + 1))
    return found


class KubernetesExecutor:
    def __init__(self, database_url: str, settings: KubernetesSettings) -> None:
        client: Any = require("kubernetes", "kubernetes.client")

        self.database_url = database_url
        self.settings = settings
        # Without a cluster the service still starts (its API, UI and engine work): each
        # job start then fails with this reason instead of the whole service.
        self.unavailable: str | None = None
        try:
            load_client_config(settings)
        except ConfigurationError as exc:
            self.unavailable = str(exc)
            log.error("kubernetes unavailable", extra={"error": self.unavailable})
        # the client's models are typed loosely enough (optional everything) that reading
        # them typed would be all asserts: they are handled as Any here
        self._client: Any = client
        self._api_client: Any = client.ApiClient()
        self.core: Any = client.CoreV1Api(self._api_client)
        self.batch: Any = client.BatchV1Api(self._api_client)
        self._active: set[str] = set()
        self._marked: set[tuple[str, int]] = set()  # (job, index) marked failed already
        self._lock = threading.Lock()
        # held while one job is followed, and while a job is reset and launched again, so
        # that a follow never sees a resumed job between its old Job's end and the new one
        self._following = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._store: ReprocessingStore | None = None

    # -- the executor protocol -------------------------------------------------------------

    def _usable(self) -> None:
        if self.unavailable is not None:
            raise ConfigurationError(self.unavailable)

    def start(self) -> None:
        self._store = ReprocessingStore(self.database_url)
        if self.unavailable is not None:
            return  # nothing can be followed
        # jobs whose Kubernetes Jobs run on: followed again after a restart of the service
        for status in (ReprocessingStatus.PENDING, ReprocessingStatus.RUNNING):
            offset = 0
            while True:
                jobs, total = self._store.jobs_page(status, limit=100, offset=offset)
                self._active.update(j.id for j in jobs if j.k8s_job_name)
                offset += len(jobs)
                if not jobs or offset >= total:
                    break
        self._thread = threading.Thread(target=self._run, name="tailrace-k8s", daemon=True)
        self._thread.start()

    def launch(self, job: ReprocessingJob) -> None:
        assert self._store is not None, "start() first"
        self._usable()
        files = [(f.url, f.size) for f in self._store.files(job.id)]
        environment = worker_environment(self.database_url, dict(os.environ))
        configmap, secret, kube_job = build_objects(job, files, self.settings, environment)
        ns = self.settings.namespace
        n = names(job.id)
        # a resumed job runs a new Kubernetes Job: the last one is gone or finished
        self._delete(job.id, wait=True)
        self.core.create_namespaced_config_map(ns, self._client.V1ConfigMap.from_dict(configmap))
        self.core.create_namespaced_secret(ns, self._client.V1Secret.from_dict(secret))
        self.batch.create_namespaced_job(ns, self._client.V1Job.from_dict(kube_job))
        self._store.job_set_workers(job.id, job.total_workers, n["job"])
        with self._lock:
            self._active.add(job.id)
        log.info("kubernetes job created", extra={"job_id": job.id, "k8s_job": n["job"]})

    def resume(self, job_id: str, reopen: Callable[[], ReprocessingJob]) -> ReprocessingJob:
        self._usable()
        with self._following:
            with self._lock:
                self._active.discard(job_id)
            self._marked = {m for m in self._marked if m[0] != job_id}  # a new Job, new pods
            job = reopen()
            self.launch(job)
        return job

    def cancelled(self, job_id: str) -> None:
        """The job was cancelled: its Job, pods, ConfigMap and Secret go."""
        with self._lock:
            self._active.discard(job_id)
        if self.unavailable is None:
            self._delete(job_id, wait=False)

    def logs(self, job_id: str, tail: int | None, since_s: float | None) -> list[WorkerLog]:
        self._usable()
        ns = self.settings.namespace
        pods = self.core.list_namespaced_pod(ns, label_selector=f"job-id={job_id}").items
        found: list[WorkerLog] = []
        for pod in sorted(pods, key=lambda p: (_pod_index(p), p.metadata.name)):
            index = _pod_index(pod)
            name = pod.metadata.name
            try:
                text = self.core.read_namespaced_pod_log(
                    name,
                    ns,
                    timestamps=True,
                    tail_lines=tail,
                    since_seconds=max(1, int(since_s + 0.999)) if since_s else None,
                )
            except self._client.ApiException as exc:
                found.append(WorkerLog(index, name, [], f"logs unavailable: {exc.reason}"))
                continue
            found.append(WorkerLog(index, name, _pod_lines(text, index, name)))
        return found

    def stop(self, timeout: float = 10.0) -> None:
        """Stop following Jobs; they run on in the cluster, followed again at next start."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._store is not None:
            self._store.close()
        self._api_client.close()

    # -- following the Jobs ----------------------------------------------------------------

    def _run(self) -> None:
        last_cleanup = None
        while True:
            if last_cleanup is None or time.monotonic() - last_cleanup > 600:
                last_cleanup = time.monotonic()
                try:
                    self.clean_secrets()
                except Exception:
                    log.exception("cleaning finished jobs' secrets failed")
            if self._stopping.wait(self.settings.poll_s):
                return
            with self._lock:
                active = sorted(self._active)
            for job_id in active:
                try:
                    with self._following:
                        if job_id in self._active:  # not cancelled or resumed meanwhile
                            self.follow(job_id)
                except Exception:
                    log.exception("following a kubernetes job failed", extra={"job_id": job_id})

    def follow(self, job_id: str) -> None:
        """Bring the job's rows in line with its Kubernetes Job."""
        assert self._store is not None
        ns = self.settings.namespace
        try:
            kube_job = self.batch.read_namespaced_job(names(job_id)["job"], ns)
        except self._client.ApiException as exc:
            if exc.status != 404:
                raise
            with self._lock:
                self._active.discard(job_id)
            settle(self._store, job_id, "its Kubernetes Job is gone")
            return
        status = kube_job.status
        # indexes newly past their backoff (each is marked once, not at every look)
        failed = [
            i
            for i in _indexes(getattr(status, "failed_indexes", None))
            if (job_id, i) not in self._marked
        ]
        if failed:
            reasons = self._pod_failures(job_id)
            known = {w.worker_index for w in self._store.workers(job_id)}
            for index in failed:
                if index not in known:  # its pods died before they could say they started
                    self._store.worker_start(job_id, index, f"kubernetes index {index}")
                self._store.worker_finish(
                    job_id,
                    index,
                    ReprocessingStatus.FAILED,
                    reasons.get(index, "its pod failed past the backoff limit"),
                )
                self._marked.add((job_id, index))
        conditions = {c.type: c for c in (status.conditions or []) if c.status == "True"}
        if "Complete" in conditions or "Failed" in conditions:
            reason = "the Kubernetes Job ended with files left"
            if "Failed" in conditions:
                condition = conditions["Failed"]
                reason = f"the Kubernetes Job failed: {condition.reason}: {condition.message}"
            job = settle(self._store, job_id, reason)
            with self._lock:
                self._active.discard(job_id)
            log.info("job settled", extra={"job_id": job_id, "status": str(job.status)})

    def _pod_failures(self, job_id: str) -> dict[int, str]:
        """The last failure of each index's pods, as Kubernetes reports it."""
        pods = self.core.list_namespaced_pod(
            self.settings.namespace, label_selector=f"job-id={job_id}"
        ).items
        found: dict[int, str] = {}
        for pod in sorted(pods, key=lambda p: p.metadata.creation_timestamp or datetime.min):
            if pod.status is None or pod.status.phase != "Failed":
                continue
            reason = pod.status.reason or "Failed"
            for container in pod.status.container_statuses or []:
                terminated = container.state.terminated if container.state else None
                if terminated is not None:
                    reason = f"{terminated.reason or 'Error'} (exit {terminated.exit_code})" + (
                        f": {terminated.message}" if terminated.message else ""
                    )
            found[_pod_index(pod)] = f"pod {pod.metadata.name} failed: {reason}"
        return found

    def clean_secrets(self) -> int:
        """Delete the Secrets of jobs that ended more than 24 h ago; returns how many."""
        assert self._store is not None
        ns = self.settings.namespace
        secrets = self.core.list_namespaced_secret(
            ns, label_selector=f"app.kubernetes.io/managed-by={MANAGED_BY}"
        ).items
        now = datetime.now(UTC)
        deleted = 0
        for secret in secrets:
            job_id = (secret.metadata.labels or {}).get("job-id")
            if not job_id:
                continue
            try:
                job = self._store.job(job_id)
            except ReprocessingJobNotFoundError:
                job = None  # the job was deleted: its Secret has no one left to serve
            # any other error propagates: a database blip must not look like "job ended"
            ended = job is None or (
                job.status.finished
                and job.completed_at is not None
                and now - job.completed_at > SECRET_TTL
            )
            if ended:
                self._ignore_missing(self.core.delete_namespaced_secret, secret.metadata.name, ns)
                deleted += 1
        return deleted

    def _delete(self, job_id: str, wait: bool) -> None:
        ns = self.settings.namespace
        n = names(job_id)
        self._ignore_missing(
            self.batch.delete_namespaced_job, n["job"], ns, propagation_policy="Foreground"
        )
        self._ignore_missing(self.core.delete_namespaced_config_map, n["configmap"], ns)
        self._ignore_missing(self.core.delete_namespaced_secret, n["secret"], ns)
        if wait:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    self.batch.read_namespaced_job(n["job"], ns)
                except self._client.ApiException as exc:
                    if exc.status == 404:
                        return
                    raise
                time.sleep(0.2)
            raise ConfigurationError(f"Kubernetes Job {n['job']} was not deleted within 60 s")

    def _ignore_missing(self, call: Any, *args: Any, **kwargs: Any) -> None:
        try:
            call(*args, **kwargs)
        except self._client.ApiException as exc:
            if exc.status != 404:
                raise


def _pod_index(pod: Any) -> int:
    annotations = pod.metadata.annotations or {}
    labels = pod.metadata.labels or {}
    raw = annotations.get(_INDEX_ANNOTATION) or labels.get(_INDEX_ANNOTATION) or "0"
    return int(raw)


def _pod_lines(text: str, index: int, name: str) -> list[LogLine]:
    """``<RFC 3339 time> <line>`` per line, as ``timestamps=true`` returns them."""
    lines: list[LogLine] = []
    for raw in text.splitlines():
        stamp, _, message = raw.partition(" ")
        stamp = _nanoseconds(stamp)
        level = None
        if message.startswith("{"):
            try:
                entry = orjson.loads(message)
            except orjson.JSONDecodeError:
                entry = None
            if isinstance(entry, dict) and isinstance(entry.get("level"), str):
                level = entry["level"]
        lines.append(LogLine(stamp, index, name, message, level))
    return lines


def _nanoseconds(stamp: str) -> str:
    """RFC 3339 with exactly nine fraction digits: Kubernetes trims trailing zeros
    (``…:00.1Z``, ``…:00Z``), and lines from several pods are ordered by comparing text."""
    if not stamp.endswith("Z") or "T" not in stamp:
        return stamp
    whole, _, fraction = stamp[:-1].partition(".")
    return f"{whole}.{(fraction + '000000000')[:9]}Z"
