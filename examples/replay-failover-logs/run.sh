#!/usr/bin/env bash
# Replay failover logs: from a local directory into a file, then (when their settings are
# given) from S3 and into Kafka. Run it in an empty directory: it writes logs/ and out*.ndjson.
#
#   S3_BUCKET=failover AWS_ENDPOINT_URL=http://127.0.0.1:9000   # any S3 API (MinIO, moto)
#   KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 KAFKA_TOPIC=failover-replay
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

# 1. failover files as a collector writes them when its destination is down: 4 files,
#    half gzip, one line in a thousand broken on purpose
tailrace sample-logs logs --files 4 --lines 1000 --seed 7 --bad-lines | tee sample-logs.txt
stream="$(sed -n 's/^Stream ids: \([a-z0-9]*\).*/\1/p' sample-logs.txt)"

# 2. replay every event into a file; broken lines go to out.deadletter.ndjson with the file,
#    line and reason
tailrace reprocess logs --sink file:out.ndjson --workers 2

# 3. from S3: the same files under a prefix, one stream, one day
if [ -n "${S3_BUCKET:-}" ]; then
  python "$here/upload.py" logs "s3://$S3_BUCKET/failover/"
  tailrace reprocess "s3://$S3_BUCKET/failover/" --sink file:out-s3.ndjson \
    --stream-id "$stream" --from 2026-11-11T00:00:00Z --to 2026-11-11T23:59:59Z --strict
fi

# 4. into Kafka: each event's message id as its key, the connection ids in a header
if [ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
  tailrace reprocess logs --sink "kafka://$KAFKA_BOOTSTRAP_SERVERS/${KAFKA_TOPIC:-failover-replay}" \
    --stream-id "$stream" --connection-id warehouse --json > kafka-summary.json
  python -c 'import json; s = json.load(open("kafka-summary.json")); print(s["sent"], "events sent to Kafka")'
fi

tailrace reprocessing list
