"""The shop's background work: tasks that a worker runs
(`tailrace --app shop.tasks:app worker`)."""

import psycopg

from tailrace import App

# the same database as the shop's tables (DATABASE_URL), so that an order and its jobs
# commit together
app = App()


@app.task(priority="HIGH", max_attempts=5, timeout=30)
def send_receipt(order_id: int, email: str) -> None:
    # a real shop would send an email here; this one records that it did, once per order
    with psycopg.connect(app.database_url) as conn:
        conn.execute(
            "INSERT INTO receipts (order_id, sent_to) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (order_id, email),
        )


@app.task(priority="BULK")
def restock_report(product: str) -> None:
    print(f"{product} is running low")
