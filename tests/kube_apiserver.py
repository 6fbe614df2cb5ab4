"""A small Kubernetes API server for the tests, with a kubelet that runs real processes.

What it does:
- serves, over plain HTTP, the calls the Kubernetes executor makes: create, get, list and
  delete of namespaced Jobs (batch/v1), ConfigMaps and Secrets; list and get of Pods; and
  pod logs with ``timestamps``, ``tailLines`` and ``sinceSeconds``; label selectors of the
  form ``key=value[,key=value]``; 404 and 409 as Status objects;
- stores Secrets as the real server does (``stringData`` turned into base64 ``data``);
- acts as kubelet and Job controller for Indexed Jobs: starts one real process per index
  (``python -m tailrace`` with the container's args, as the image's entrypoint would), at
  most ``parallelism`` at once, with only the environment the pod spec gives (``env``
  values, ``secretKeyRef``, ``envFrom`` Secrets, the completion-index ``fieldRef``);
  records each line the process prints with an RFC 3339 time, as the kubelet does;
  replaces a failed pod until the index passes ``backoffLimitPerIndex``, then lists it in
  ``failedIndexes``; sets the Complete or Failed condition when every index is done;
- deleting a Job stops its processes (SIGTERM, then SIGKILL after the grace period) and
  removes its pods;
- records every call as (verb, API group, resource), for the RBAC test.

What it does not do: authentication and authorisation, TLS, watches, resource versions and
conflicts on update, admission and schema validation (the objects are validated against the
OpenAPI schemas in another test), scheduling (``nodeSelector``, resources) and images (every
pod runs this checkout), ``ttlSecondsAfterFinished`` garbage collection, and any resource
the executor does not use.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
_PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[a-z.]+)/v1)/namespaces/(?P<ns>[^/]+)/(?P<resource>[a-z]+)"
    r"(?:/(?P<name>[^/]+)(?:/(?P<sub>[a-z]+))?)?$"
)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Pod:
    obj: dict[str, Any]
    index: int
    process: subprocess.Popen[bytes] | None = None
    lines: list[tuple[datetime, str]] = field(default_factory=list)


class FakeKubernetes:
    def __init__(self, grace_s: float = 5.0) -> None:
        self.grace_s = grace_s
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # (resource, ns, name)
        self.pods: dict[tuple[str, str], Pod] = {}
        self.calls: list[tuple[str, str, str]] = []
        self.lock = threading.RLock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def kubeconfig(self, path: Path) -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
            "current-context": "fake",
        }
        path.write_text(json.dumps(config))
        return path

    def __enter__(self) -> FakeKubernetes:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        with self.lock:
            pods = list(self.pods.values())
        for pod in pods:
            self._stop(pod)
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(10)

    # -- what tests look at --------------------------------------------------------------

    def get(self, resource: str, ns: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            return self.objects.get((resource, ns, name))

    def running_pods(self, index: int | None = None) -> list[Pod]:
        with self.lock:
            return [
                p
                for p in self.pods.values()
                if p.process is not None
                and p.process.poll() is None
                and (index is None or p.index == index)
            ]

    def kill(self, pod: Pod) -> None:
        """SIGKILL the pod's process, as an OOM kill would."""
        assert pod.process is not None
        pod.process.kill()

    # -- HTTP ----------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, code: int, body: Any, text: bool = False) -> None:
                data = body.encode() if text else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain" if text else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method: str) -> None:
                parts = urlsplit(self.path)
                match = _PATH.match(parts.path)
                if match is None:
                    self._send(404, _status(404, "NotFound", f"no route {parts.path}"))
                    return
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                body = None
                if method == "POST":
                    length = int(self.headers.get("Content-Length") or 0)
                    body = json.loads(self.rfile.read(length) or b"{}")
                code, answer, text = fake._serve(method, match.groupdict(), query, body)
                self._send(code, answer, text)

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def do_DELETE(self) -> None:
                self._route("DELETE")

        return Handler

    def _serve(
        self, method: str, match: dict[str, Any], query: dict[str, str], body: Any
    ) -> tuple[int, Any, bool]:
        group = match["group"] or ""
        resource = match["resource"] + (f"/{match['sub']}" if match["sub"] else "")
        ns, name = match["ns"], match["name"]
        verb = {"POST": "create", "DELETE": "delete"}.get(method) or ("get" if name else "list")
        with self.lock:
            self.calls.append((verb, group, resource))
        if resource == "pods/log":
            return self._log(ns, name, query)
        if resource == "pods":
            return self._pods(ns, name, query)
        if resource not in ("jobs", "configmaps", "secrets"):
            return 404, _status(404, "NotFound", f"{resource} is not served here"), False
        if verb == "create":
            return self._create(resource, ns, body)
        if verb == "list":
            with self.lock:
                items = [
                    o
                    for (r, n, _), o in self.objects.items()
                    if r == resource and n == ns and _selected(o, query.get("labelSelector"))
                ]
            return 200, {"kind": "List", "apiVersion": "v1", "metadata": {}, "items": items}, False
        with self.lock:
            found = self.objects.get((resource, ns, name))
        if found is None:
            return 404, _status(404, "NotFound", f'{resource} "{name}" not found'), False
        if verb == "get":
            return 200, found, False
        self._delete(resource, ns, name)
        return 200, _status(200, "", "deleted", success=True), False

    def _create(self, resource: str, ns: str, obj: dict[str, Any]) -> tuple[int, Any, bool]:
        name = obj["metadata"]["name"]
        key = (resource, ns, name)
        with self.lock:
            if key in self.objects:
                return 409, _status(409, "AlreadyExists", f'{resource} "{name}" exists'), False
            meta = obj["metadata"]
            meta.update(namespace=ns, uid=str(uuid.uuid4()), creationTimestamp=_now()[:19] + "Z")
            if resource == "secrets":
                data = dict(obj.get("data") or {})
                for k, v in (obj.pop("stringData", None) or {}).items():
                    data[k] = base64.b64encode(v.encode()).decode()
                obj["data"] = data
            if resource == "jobs":
                obj["status"] = {"active": 0}
            self.objects[key] = obj
        if resource == "jobs":
            thread = threading.Thread(target=self._run_job, args=(ns, name), daemon=True)
            thread.start()
            self._threads.append(thread)
        return 201, obj, False

    def _delete(self, resource: str, ns: str, name: str) -> None:
        with self.lock:
            self.objects.pop((resource, ns, name), None)
            pods = [p for p in self.pods.values() if p.obj["metadata"].get("_job") == (ns, name)]
        if resource == "jobs":
            for pod in pods:
                self._stop(pod)
            with self.lock:
                for pod in pods:
                    self.pods.pop((ns, pod.obj["metadata"]["name"]), None)

    # -- pods and their logs -------------------------------------------------------------

    def _pods(self, ns: str, name: str | None, query: dict[str, str]) -> tuple[int, Any, bool]:
        with self.lock:
            if name is not None:
                pod = self.pods.get((ns, name))
                if pod is None:
                    return 404, _status(404, "NotFound", f'pods "{name}" not found'), False
                return 200, _public(pod.obj), False
            items = [
                _public(p.obj)
                for (n, _), p in self.pods.items()
                if n == ns and _selected(p.obj, query.get("labelSelector"))
            ]
        return 200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}, False

    def _log(self, ns: str, name: str, query: dict[str, str]) -> tuple[int, Any, bool]:
        with self.lock:
            pod = self.pods.get((ns, name))
            lines = list(pod.lines) if pod is not None else None
        if lines is None:
            return 404, _status(404, "NotFound", f'pods "{name}" not found'), False
        if "sinceSeconds" in query:
            cutoff = datetime.now(UTC) - timedelta(seconds=int(query["sinceSeconds"]))
            lines = [(t, text) for t, text in lines if t >= cutoff]
        if "tailLines" in query:
            lines = lines[-int(query["tailLines"]) :] if int(query["tailLines"]) else []
        stamp = query.get("timestamps") == "true"
        out = "".join(
            (t.strftime("%Y-%m-%dT%H:%M:%S.%f000Z ") if stamp else "") + text + "\n"
            for t, text in lines
        )
        return 200, out, True

    # -- the Job controller and kubelet --------------------------------------------------

    def _run_job(self, ns: str, name: str) -> None:
        job = self.get("jobs", ns, name)
        assert job is not None
        spec = job["spec"]
        completions = spec["completions"]
        parallelism = spec.get("parallelism", completions)
        limit = spec.get("backoffLimitPerIndex", 6)
        todo = list(range(completions))
        failures = dict.fromkeys(todo, 0)
        done: set[int] = set()
        failed: set[int] = set()
        running: dict[int, Pod] = {}
        while not self._stopping.is_set():
            if self.get("jobs", ns, name) is None:
                return  # deleted
            for index, pod in list(running.items()):
                assert pod.process is not None
                code = pod.process.poll()
                if code is None:
                    continue
                del running[index]
                self._finish(pod, code)
                if code == 0:
                    done.add(index)
                else:
                    failures[index] += 1
                    if failures[index] > limit:
                        failed.add(index)
                    else:
                        todo.insert(0, index)
            while todo and len(running) < parallelism:
                index = todo.pop(0)
                running[index] = self._start_pod(ns, name, job, index)
            with self.lock:
                status = job["status"]
                status.update(
                    active=len(running),
                    succeeded=len(done),
                    failed=sum(failures.values()),
                    completedIndexes=_ranges(done),
                    failedIndexes=_ranges(failed),
                )
                if not running and not todo:
                    kind = "Failed" if failed else "Complete"
                    reason = "FailedIndexes" if failed else "Completed"
                    status["conditions"] = [
                        {
                            "type": kind,
                            "status": "True",
                            "reason": reason,
                            "message": "Job has failed indexes" if failed else "",
                            "lastTransitionTime": _now()[:19] + "Z",
                        }
                    ]
                    status["completionTime"] = _now()[:19] + "Z"
                    return
            self._stopping.wait(0.05)

    def _start_pod(self, ns: str, job_name: str, job: dict[str, Any], index: int) -> Pod:
        template = job["spec"]["template"]
        container = template["spec"]["containers"][0]
        name = f"{job_name}-{index}-{uuid.uuid4().hex[:5]}"
        annotations = {INDEX_ANNOTATION: str(index)}
        labels = {**template["metadata"].get("labels", {}), INDEX_ANNOTATION: str(index)}
        obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": labels,
                "annotations": annotations,
                "creationTimestamp": _now()[:19] + "Z",
                "_job": (ns, job_name),
            },
            "spec": template["spec"],
            "status": {"phase": "Running", "startTime": _now()[:19] + "Z"},
        }
        env = self._environment(ns, container, annotations)
        pod = Pod(obj, index)
        pod.process = subprocess.Popen(
            [sys.executable, "-m", "tailrace", *container.get("args", [])],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        reader = threading.Thread(target=self._read_output, args=(pod,), daemon=True)
        reader.start()
        self._threads.append(reader)
        with self.lock:
            self.pods[(ns, name)] = pod
        return pod

    def _environment(
        self, ns: str, container: dict[str, Any], annotations: dict[str, str]
    ) -> dict[str, str]:
        # a pod sees what its spec gives it, nothing of the test's environment
        env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "PYTHONPATH") if k in os.environ}
        for source in container.get("envFrom", []):
            secret = self.get("secrets", ns, source["secretRef"]["name"])
            assert secret is not None, f"the pod's Secret {source} does not exist"
            env.update({k: base64.b64decode(v).decode() for k, v in secret["data"].items()})
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = item["value"]
                continue
            ref = item["valueFrom"]
            if "fieldRef" in ref:
                path = ref["fieldRef"]["fieldPath"]
                key = re.fullmatch(r"metadata\.annotations\['(.+)'\]", path)
                assert key is not None, f"field {path} is not served here"
                env[item["name"]] = annotations[key.group(1)]
            else:
                secret = self.get("secrets", ns, ref["secretKeyRef"]["name"])
                assert secret is not None
                env[item["name"]] = base64.b64decode(
                    secret["data"][ref["secretKeyRef"]["key"]]
                ).decode()
        return env

    def _read_output(self, pod: Pod) -> None:
        assert pod.process is not None and pod.process.stdout is not None
        for raw in pod.process.stdout:
            with self.lock:
                pod.lines.append((datetime.now(UTC), raw.decode(errors="replace").rstrip("\n")))
        pod.process.stdout.close()

    def _finish(self, pod: Pod, code: int) -> None:
        with self.lock:
            pod.obj["status"] = {
                "phase": "Succeeded" if code == 0 else "Failed",
                "containerStatuses": [
                    {
                        "name": "worker",
                        "ready": False,
                        "restartCount": 0,
                        "image": "",
                        "imageID": "",
                        "state": {
                            "terminated": {
                                "exitCode": code if code >= 0 else 128 - code,
                                "reason": "Completed" if code == 0 else "Error",
                                "signal": -code if code < 0 else None,
                            }
                        },
                    }
                ],
            }

    def _stop(self, pod: Pod) -> None:
        if pod.process is None or pod.process.poll() is not None:
            return
        pod.process.send_signal(signal.SIGTERM)
        try:
            pod.process.wait(self.grace_s)
        except subprocess.TimeoutExpired:
            pod.process.kill()
            pod.process.wait(10)


def _public(obj: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in obj["metadata"].items() if not k.startswith("_")}
    return {**obj, "metadata": meta}


def _selected(obj: dict[str, Any], selector: str | None) -> bool:
    if not selector:
        return True
    labels = obj["metadata"].get("labels") or {}
    return all(labels.get(k) == v for k, _, v in (p.partition("=") for p in selector.split(",")))


def _ranges(indexes: set[int]) -> str | None:
    if not indexes:
        return None
    out: list[str] = []
    for start, end in _runs(sorted(indexes)):
        out.append(str(start) if start == end else f"{start}-{end}")
    return ",".join(out)


def _runs(values: list[int]) -> Iterator[tuple[int, int]]:
    start = prev = values[0]
    for v in values[1:]:
        if v != prev + 1:
            yield start, prev
            start = v
        prev = v
    yield start, prev


def _status(code: int, reason: str, message: str, success: bool = False) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if success else "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
