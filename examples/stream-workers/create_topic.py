"""The topic of the example, with one partition, unless it exists already: a broker that
creates topics on first use may give them several partitions, and the consumer below reads
the partitions this prints (one line: ``0`` or ``0,1,2``)."""

import os
import sys

from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[import-untyped]

topic = os.environ.get("TOPIC", "orders")
admin = AdminClient({"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"]})
existing = admin.list_topics(timeout=10).topics
if topic not in existing:
    future = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    try:
        future[topic].result(timeout=10)
    except Exception as exc:  # created meanwhile by another client: fine, read it back
        if "TOPIC_ALREADY_EXISTS" not in str(exc):
            sys.exit(f"cannot create topic {topic}: {exc}")
    existing = admin.list_topics(topic, timeout=10).topics
print(",".join(str(p) for p in sorted(existing[topic].partitions)))
