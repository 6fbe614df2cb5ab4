"""The shipping service sends its events straight to Kafka, through a circuit-broken producer:
while the broker is unreachable, `send` spools them to disk and returns at once."""

import os
import sys
import time

from tailrace.streams.producer import BreakerProducer
from tailrace.streams.spool import open_spool

topic = os.environ.get("TOPIC", "orders")
spool = open_spool(f"file://{os.path.abspath('spool')}", "shipping-1")
# BROKER_DOWN: an address where no broker answers, as during an outage
with BreakerProducer(os.environ["BROKER_DOWN"], spool) as producer:
    for order_id in range(1, 4):
        producer.send(
            topic,
            f'{{"order": {order_id}, "event": "shipped"}}',
            key=f"customer-{order_id % 3}",
            headers={"message_id": f"order-{order_id}-shipped"},
        )
    deadline = time.monotonic() + 30
    while spool.count() < 3:  # the circuit opens when the brokers are down
        if time.monotonic() > deadline:
            sys.exit("the producer did not spool its messages")
        time.sleep(0.05)
print(f"{spool.count()} events spooled while the broker was down")
