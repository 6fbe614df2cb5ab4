"""Stream consumers: each configured group's lag per partition (``TAILRACE_STREAM_CONSUMERS``
names them as ``group@topic``), or any group's on request."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from ...streams.lag import LagError, group_lag
from ..errors import ApiError
from ..schemas import (
    NO_NUL,
    ConsumerLagOut,
    ErrorBody,
    PartitionLagOut,
    StreamsOut,
    error_responses,
)
from ..services import Services, Svc, authenticated

router = APIRouter(
    prefix="/api/admin/streams",
    tags=["streams"],
    dependencies=[Depends(authenticated)],
    responses=error_responses(401, 422, 503),
)

_NAME = Query(min_length=1, max_length=249, pattern=NO_NUL)


def _lag(svc: Services, group: str, topic: str) -> ConsumerLagOut:
    servers = svc.config.kafka_bootstrap_servers
    if servers is None:
        raise ApiError(409, "kafka_not_configured", "set KAFKA_BOOTSTRAP_SERVERS on the service")
    try:
        partitions = group_lag(servers, group, topic)
    except LagError as exc:
        return ConsumerLagOut(group=group, topic=topic, lag=None, partitions=[], error=str(exc))
    rows = [
        # A broker can report an end offset behind a commit it already took (Tansu's trail
        # what it stored): the group has read everything, which is a lag of 0, not -3.
        PartitionLagOut(partition=p.partition, committed=p.committed, end=p.end, lag=max(0, p.lag))
        for p in partitions
    ]
    return ConsumerLagOut(group=group, topic=topic, lag=sum(r.lag for r in rows), partitions=rows)


@router.get("", response_model=StreamsOut)
def consumers(svc: Svc) -> StreamsOut:
    """The lag of every consumer group the service is told to watch."""
    servers = svc.config.kafka_bootstrap_servers
    return StreamsOut(
        bootstrap_servers=servers,
        consumers=[_lag(svc, g, t) for g, t in svc.config.stream_consumers] if servers else [],
    )


@router.get("/lag", response_model=ConsumerLagOut, responses={409: {"model": ErrorBody}})
def lag(svc: Svc, group: Annotated[str, _NAME], topic: Annotated[str, _NAME]) -> ConsumerLagOut:
    """One group's lag on one topic, per partition."""
    return _lag(svc, group, topic)
