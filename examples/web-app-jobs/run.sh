#!/usr/bin/env bash
# A priority job engine in a web app: the app enqueues jobs in its own transactions, a
# worker runs them. Needs tailrace[server] (FastAPI, uvicorn) and PostgreSQL:
#
#   DATABASE_URL=postgresql://postgres@127.0.0.1:5432/shop   PORT=8000 (default)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
port="${PORT:-8000}"

# the shop's tables, and tailrace's (`tailrace db migrate`; the App also does it on first use)
python -c 'import os, sys, psycopg; psycopg.connect(os.environ["DATABASE_URL"], autocommit=True).execute(open(sys.argv[1]).read())' "$here/shop/schema.sql"
tailrace --database-url "$DATABASE_URL" db migrate

# the web app, and a few customers
python -m uvicorn shop.web:api --port "$port" --log-level warning &
web=$!
trap 'kill $web 2>/dev/null || true' EXIT
python - "$port" <<'PY'
import socket, sys, time
deadline = time.monotonic() + 30
while True:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit("the web app did not start")
        time.sleep(0.1)
PY
python "$here/place_orders.py" "http://127.0.0.1:$port"

# the jobs wait in the queue, by priority; a worker runs them (--burst: until none is left;
# in production it runs until SIGTERM, under systemd or as a Deployment)
tailrace --database-url "$DATABASE_URL" jobs list
tailrace --database-url "$DATABASE_URL" --app shop.tasks:app worker --burst
tailrace --database-url "$DATABASE_URL" jobs list --state succeeded
