"""A job's config as stored in its `config` column: what earlier versions wrote still loads,
what this one writes is what they wrote, and the API shows its fields by their names."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson

from tailrace.api.present import config_out
from tailrace.api.schemas import SHOWN_CONFIG
from tailrace.db import migrate
from tailrace.pipeline.jobs import ReprocessingConfig, ReprocessingStore
from tailrace.pipeline.jobs.model import BATCH_SIZE, MAX_WORKERS, Counters
from tailrace.pipeline.sources import SourceFile

# as the hand-written to_json of tailrace before the config became one msgspec Struct wrote it
STORED = (
    '{"source":"s3://logs/2024/","sink":"kafka://broker:9092/events","stream_ids":["s1"],'
    '"connection_ids":[],"date_from":"2024-01-01T00:00:00+00:00","date_to":null,'
    '"where":["event=click"],"max_workers":8,"s3_endpoint_url":null,"checkpoint_s":1.0,'
    '"batch_size":2000,"stream_id_fields":[],"time_fields":[],"message_id_fields":[],'
    '"roots":["/data"],"write_roots":[],"include":["*.txt"],"exclude":[],"dry_run":false,'
    '"start_file":null,"start_line":0,"limit":100,"retry_attempts":null,'
    '"listing_skipped":{"counts":{"marker":1},"examples":{"marker":["_SUCCESS"]}}}'
)

# ...and with every field at its default
STORED_DEFAULTS = (
    '{"source":"/x","sink":"null:","stream_ids":[],"connection_ids":[],"date_from":null,'
    '"date_to":null,"where":[],"max_workers":50,"s3_endpoint_url":null,"checkpoint_s":1.0,'
    '"batch_size":2000,"stream_id_fields":[],"time_fields":[],"message_id_fields":[],'
    '"roots":[],"write_roots":[],"include":[],"exclude":[],"dry_run":false,"start_file":null,'
    '"start_line":0,"limit":null,"retry_attempts":null,"listing_skipped":{}}'
)

# an older version's row: the fields added since are missing, and empty ones were null
OLDER = {
    "source": "/var/log/jitsu",
    "sink": "null:",
    "stream_ids": None,
    "connection_ids": ["c1"],
    "date_from": "0001-01-01T00:00:00Z",  # Go's zero time: no date
    "date_to": "",
    "where": None,
    "max_workers": None,
    "s3_endpoint_url": None,
    "checkpoint_s": None,
    "batch_size": 0,
}


def test_a_config_stored_by_the_previous_version_loads_and_is_stored_the_same() -> None:
    config = ReprocessingConfig.from_stored(STORED)
    assert config.stream_ids == ("s1",)
    assert config.where == ("event=click",)
    assert (config.max_workers, config.limit, config.roots) == (8, 100, ("/data",))
    assert config.listing_skipped["examples"] == {"marker": ["_SUCCESS"]}
    assert config.to_stored() == STORED
    assert ReprocessingConfig.from_stored(orjson.loads(STORED)) == config  # PostgreSQL's jsonb
    assert ReprocessingConfig("/x", "null:").to_stored() == STORED_DEFAULTS
    assert ReprocessingConfig.from_stored(STORED_DEFAULTS) == ReprocessingConfig("/x", "null:")


def test_an_older_config_takes_the_defaults_for_what_it_lacks_or_left_empty() -> None:
    config = ReprocessingConfig.from_stored(orjson.dumps(OLDER))
    assert config == ReprocessingConfig(
        source="/var/log/jitsu", sink="null:", connection_ids=("c1",)
    )
    assert config.date_from is None and config.date_to is None
    assert (config.max_workers, config.batch_size, config.checkpoint_s) == (
        MAX_WORKERS,
        BATCH_SIZE,
        1.0,
    )
    assert (config.include, config.dry_run, config.start_file, config.limit) == (
        (),
        False,
        None,
        None,
    )


def test_a_job_jitsu_s_admin_stored_names_its_source_by_jitsu_s_field() -> None:
    adopted = {"s3_path": "s3://bucket/logs/", "max_concurrency": 4, "stream_ids": ["s"]}
    config = ReprocessingConfig.from_stored(adopted)
    assert (config.source, config.sink, config.stream_ids) == ("s3://bucket/logs/", "", ("s",))
    local = ReprocessingConfig.from_stored({"local_path": "/logs", "sink": "null:"})
    assert local.source == "/logs"


def test_an_old_row_in_a_database_loads_as_a_job(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/tailrace.db"
    migrate(url)
    with ReprocessingStore(url) as store:
        store.job_create("old", ReprocessingConfig("/x", "null:"), [SourceFile("/x/a", 1)], 1)
        with sqlite3.connect(tmp_path / "tailrace.db") as db:
            db.execute(
                "UPDATE reprocessing_jobs SET config = ? WHERE id = 'old'", [orjson.dumps(OLDER)]
            )
        job = store.job("old")
    assert job.config.source == "/var/log/jitsu"
    assert job.config.max_workers == MAX_WORKERS


def test_the_api_shows_the_config_s_own_fields_with_the_sink_s_password_hidden() -> None:
    config = ReprocessingConfig.from_stored(STORED)
    secret = ReprocessingConfig("/x", "postgresql://u:hunter2@db/logs?table=events")
    shown = config_out(config).model_dump(mode="json")
    assert list(shown) == list(SHOWN_CONFIG)
    assert shown["stream_ids"] == ["s1"] and shown["limit"] == 100
    assert "hunter2" not in config_out(secret).model_dump_json()


def test_a_file_s_counters_round_trip_through_its_checkpoint_by_name() -> None:
    counters = Counters(lines=10, sent=6, filtered=1, skipped=2, deadlettered=1, processed_bytes=99)
    flat = counters.as_dict()
    assert flat == {
        "lines": 10,
        "sent": 6,
        "filtered": 1,
        "skipped": 2,
        "deadlettered": 1,
        "processed_bytes": 99,
    }
    assert Counters.from_dict(flat) == counters
    # a mark written before processed_bytes was counted, with a null and a string figure
    assert Counters.from_dict({"lines": "3", "sent": 3, "skipped": None}) == Counters(3, 3)
