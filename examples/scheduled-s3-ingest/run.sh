#!/usr/bin/env bash
# Scheduled ingest from S3 into PostgreSQL: what a cron entry (crontab) or a Kubernetes
# CronJob (cronjob.yaml) runs every few minutes, shown here as three runs by hand.
#
#   S3_BUCKET=logs AWS_ENDPOINT_URL=http://127.0.0.1:9000   # a local S3 API server
#   DATABASE_URL=postgresql://postgres@127.0.0.1:5432/app   # the table `logs` is created there
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source="s3://$S3_BUCKET/logs/"
ingest() { tailrace ingest "$source" --sink "$DATABASE_URL" --table logs --json; }

# 1. the first files arrive (a log shipper would put them there)
tailrace sample-logs day1 --files 2 --lines 500 --seed 1 --gzip-share 1 >/dev/null
python "$here/upload.py" day1 "${source}day1/"

# 2. the scheduled run loads them
ingest > run1.json

# 3. more files arrive; the next run loads only those
tailrace sample-logs day2 --files 1 --lines 500 --seed 2 --gzip-share 1 >/dev/null
python "$here/upload.py" day2 "${source}day2/"
ingest > run2.json

# 4. nothing new: nothing loaded, exit 0
ingest > run3.json

# the record of files (kept in the sink's database): FAILED ones by default, here all loaded
tailrace ingest-files list "$source" --sink "$DATABASE_URL" --status completed
