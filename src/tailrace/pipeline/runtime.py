"""What a reprocessing job's config opens at run time: its source, the event fields it
reads and the filter it applies. The planner, the API and the workers build them from the
stored `ReprocessingConfig` alike, so a config that plans is one that runs."""

from __future__ import annotations

from typing import Any

from tailrace.pipeline.events import EventFields
from tailrace.pipeline.filters import EventFilter, parse_time_bound
from tailrace.pipeline.jobs import ReprocessingConfig
from tailrace.pipeline.sinks import parse_sink_url
from tailrace.pipeline.sources import Source, open_source


def check_config(config: ReprocessingConfig) -> EventFilter:
    """Fail before anything is stored if the sink, the fields or the filters cannot be
    understood."""
    parse_sink_url(config.sink)
    event_fields(config)
    return event_filter(config)


def event_fields(config: ReprocessingConfig) -> EventFields:
    return EventFields.from_strings(
        stream_id=config.stream_id_fields or None,
        time=config.time_fields or None,
        message_id=config.message_id_fields or None,
    )


def event_filter(config: ReprocessingConfig) -> EventFilter:
    return EventFilter(
        stream_ids=config.stream_ids or None,
        date_from=parse_time_bound(config.date_from) if config.date_from else None,
        date_to=parse_time_bound(config.date_to) if config.date_to else None,
        where=config.where,
    )


def source_for(config: ReprocessingConfig) -> Source:
    """The job's source, with its file selection and (local files) its roots."""
    options: dict[str, Any] = {"include": config.include, "exclude": config.exclude}
    if config.source[:5].lower() == "s3://":
        if config.s3_endpoint_url:
            options["endpoint_url"] = config.s3_endpoint_url
    else:
        options["roots"] = config.roots
    return open_source(config.source, **options)
