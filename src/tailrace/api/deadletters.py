"""A job's dead letters read back from where its sink put them (each sink kind's
`read_back`, `tailrace.pipeline.sinks.kinds`)."""

from __future__ import annotations

from ..pipeline.sinks.kinds import deadletter_spec, sink_kind
from ..pipeline.sinks.readback import ReadBack
from ..pipeline.sinks.url import parse_sink_url


def read_deadletters(sink_url: str, files: set[str], limit: int, offset: int = 0) -> ReadBack:
    """Where the job's bad lines are, and up to `limit` of them (after `offset`)."""
    spec = deadletter_spec(parse_sink_url(sink_url))
    return sink_kind(spec).read_back(spec, files, limit, offset)
