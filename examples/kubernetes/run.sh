#!/usr/bin/env bash
# A reprocessing job run as a Kubernetes Indexed Job: the admin service (here on your machine,
# reaching the cluster through your kubeconfig; in the cluster, the tailrace-admin Deployment)
# creates one pod per worker, follows them and reads their logs.
#
#   KUBECONFIG=~/.kube/config K8S_NAMESPACE=tailrace-dev
#   DATABASE_URL=postgresql://...     a database the pods reach too
#   SOURCE=s3://bucket/failover/ SINK=kafka://kafka:9092/replay    what the pods read and write
#   IMAGE=tailrace:dev                                              the image of the pods
set -euo pipefail
port="${PORT:-3049}"
token="example-token-0123456789abcdef"
export TAILRACE_DATABASE_URL="$DATABASE_URL" TAILRACE_API_TOKENS="$token"
export TAILRACE_EXECUTOR=kubernetes K8S_CONFIG_PATH="${KUBECONFIG:-$HOME/.kube/config}"
export K8S_NAMESPACE="${K8S_NAMESPACE:-tailrace-dev}" K8S_MAX_PARALLEL_WORKERS=2
export REPROCESSING_WORKER_IMAGE="${IMAGE:-tailrace:dev}"

tailrace db migrate
tailrace serve --port "$port" --no-access-log &
admin=$!
trap 'kill $admin 2>/dev/null || true' EXIT

python - "$port" "$token" "$SOURCE" "$SINK" <<'PY'
import json, sys, time, urllib.error, urllib.request

port, token, source, sink = sys.argv[1:]
base = f"http://127.0.0.1:{port}/api/admin/reprocessing/jobs"
headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

def call(url, body=None):
    request = urllib.request.Request(url, body and json.dumps(body).encode(), headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)

deadline = time.monotonic() + 30
while True:  # until the service answers
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).close()
        break
    except (urllib.error.URLError, ConnectionError):
        if time.monotonic() > deadline:
            sys.exit("the admin service did not start")
        time.sleep(0.2)
try:
    job = call(base, {"path": source, "sink": sink})
except urllib.error.HTTPError as refused:
    sys.exit(f"refused: {refused.code} {refused.read().decode()}")
print(f"job {job['id']}: Kubernetes Job {job.get('k8s_job_name')}, {job['total_workers']} workers")
deadline = time.monotonic() + 120
while job["status"] not in ("completed", "failed", "cancelled"):
    if time.monotonic() > deadline:
        sys.exit(f"job {job['id']} still {job['status']}")
    time.sleep(0.5)
    job = call(f"{base}/{job['id']}")
workers = call(f"{base}/{job['id']}/workers")["workers"]
print(f"job {job['id']} {job['status']}: {job['success_count']} events sent by {len(workers)} pods")
sys.exit(0 if job["status"] == "completed" else 1)
PY
