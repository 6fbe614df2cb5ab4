"""The order service: each order and its event in ONE transaction (the outbox). The event is
published by `tailrace outbox relay` only if the order committed."""

import os

import psycopg

from tailrace.streams import outbox

topic = os.environ.get("TOPIC", "orders")
with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
    conn.execute("CREATE TABLE IF NOT EXISTS orders (id bigint PRIMARY KEY, customer text)")
    for order_id in range(1, 11):
        customer = f"customer-{order_id % 3}"
        with conn.transaction():
            conn.execute("INSERT INTO orders VALUES (%s, %s)", (order_id, customer))
            # keyed by customer: a customer's events reach the topic in the order written
            outbox.add(
                conn,
                topic,
                key=customer,
                payload={"order": order_id, "customer": customer, "event": "placed"},
                headers={"message_id": f"order-{order_id}-placed"},
            )
print("10 orders placed, 10 events in the outbox")
