"""The shop's web app. Placing an order writes the order, takes the stock and enqueues the
receipt in ONE transaction: if any of it fails, none of it happened, the job included."""

import os

import psycopg
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from .tasks import app as jobs

api = FastAPI(title="shop")
DATABASE_URL = os.environ["DATABASE_URL"]


class Order(BaseModel):
    email: str
    product: str
    quantity: int = 1


@api.post("/orders", status_code=201)
def place_order(order: Order) -> dict[str, int]:
    try:
        with psycopg.connect(DATABASE_URL) as conn, conn.transaction():
            (order_id,) = conn.execute(
                "INSERT INTO orders (email, product, quantity) VALUES (%s, %s, %s) RETURNING id",
                (order.email, order.product, order.quantity),
            ).fetchone()
            # written by this transaction: it exists only if the order does
            job_id = jobs.enqueue(
                "send_receipt", {"order_id": order_id, "email": order.email}, connection=conn
            )
            (left,) = conn.execute(
                "UPDATE stock SET units_left = units_left - %s WHERE product = %s"
                " RETURNING units_left",
                (order.quantity, order.product),
            ).fetchone()  # CHECK (units_left >= 0): too few units, and everything rolls back
            if left < 2:
                jobs.enqueue(
                    "restock_report",
                    {"product": order.product},
                    connection=conn,
                    dedup_key=f"restock:{order.product}",
                )
    except psycopg.errors.CheckViolation:
        raise HTTPException(409, f"not enough {order.product} left") from None
    return {"order_id": order_id, "receipt_job": job_id}
