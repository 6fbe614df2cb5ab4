"""Stream workers: Kafka consumers with dedup, retries, dead letters and routing."""

from .consumer.config import ConsumerConfig
from .consumer.loop import BatchHandler, Consumer, ConsumerStats, Handler
from .consumer.message import IdSource, Message, Output
from .dedup import Dedup, NoDedup, PostgresDedup, RedisDedup, claim, open_dedup
from .dlq import replay
from .router import DeliveryError, TopicRouter

__all__ = [
    "BatchHandler",
    "Consumer",
    "ConsumerConfig",
    "ConsumerStats",
    "Dedup",
    "DeliveryError",
    "Handler",
    "IdSource",
    "Message",
    "NoDedup",
    "Output",
    "PostgresDedup",
    "RedisDedup",
    "TopicRouter",
    "claim",
    "open_dedup",
    "replay",
]
