#!/usr/bin/env bash
# Stream workers: an outbox relayed to Kafka, a producer that spools while Kafka is down, and
# a consumer that handles each message once. Needs PostgreSQL and a Kafka broker:
#
#   DATABASE_URL=postgresql://postgres@127.0.0.1:5432/app
#   KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092  TOPIC=orders (created with one partition if missing)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
export TAILRACE_DATABASE_URL="$DATABASE_URL"
topic="${TOPIC:-orders}"

# 0. the topic, with one partition where it does not exist yet (its partitions, for step 3)
partitions="$(python "$here/create_topic.py")"

# 1. orders with their events in one transaction each; the relay publishes what committed
tailrace db migrate
python "$here/place_orders.py"
tailrace outbox relay --until-idle --bootstrap-servers "$KAFKA_BOOTSTRAP_SERVERS"

# 2. a producer during a broker outage spools to disk; once Kafka is back, drain the spool
BROKER_DOWN="${BROKER_DOWN:-127.0.0.1:1}" python "$here/ship_while_broker_down.py"
tailrace spool drain shipping-1 --url "file://$PWD/spool" \
  --bootstrap-servers "$KAFKA_BOOTSTRAP_SERVERS"

# 3. the consumer: each message handled once (ids recorded in PostgreSQL), offsets committed
#    after handling. It runs until SIGTERM; here, until it has billed the 13 events.
tailrace consume "$topic" --group billing --handler handlers:bill \
  --bootstrap-servers "$KAFKA_BOOTSTRAP_SERVERS" --partitions "$partitions" &
consumer=$!
trap 'kill $consumer 2>/dev/null || true' EXIT
python - <<'PY'
import pathlib, sys, time
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    billed = pathlib.Path("billed.ndjson")
    if billed.exists() and len(billed.read_text().splitlines()) >= 13:
        sys.exit(0)
    time.sleep(0.1)
sys.exit("the consumer did not bill 13 events in 60 s")
PY
kill -TERM "$consumer" && wait "$consumer"
echo "billed: $(wc -l < billed.ndjson) events"
