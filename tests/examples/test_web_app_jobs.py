"""examples/web-app-jobs (docs/guides/jobs-in-a-web-app.md): jobs enqueued in the web app's
own transactions exist exactly when the order does; a worker runs them."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.services import free_port

from .conftest import Example

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_an_order_and_its_jobs_commit_together_and_a_worker_runs_them(
    tmp_path: Path, pg_url: str
) -> None:
    example = Example("web-app-jobs", tmp_path)
    output = example.run(DATABASE_URL=pg_url, PORT=str(free_port())).stdout
    assert output.count("201 ") == 3 and "409 " in output, output
    with psycopg.connect(pg_url) as conn:
        orders = conn.execute("SELECT id, email FROM orders ORDER BY id").fetchall()
        receipts = conn.execute("SELECT order_id, sent_to FROM receipts ORDER BY 1").fetchall()
        jobs = conn.execute(
            "SELECT task, state, args->>'order_id' FROM tailrace_jobs ORDER BY id"
        ).fetchall()
        (kettles,) = conn.execute(
            "SELECT units_left FROM stock WHERE product = 'kettle'"
        ).fetchone() or (None,)
    # the refused order left nothing: no order, no job, its stock untouched
    assert [email for _, email in orders] == [
        "ada@example.com",
        "grace@example.com",
        "alan@example.com",
    ]
    assert kettles == 1
    assert receipts == orders  # each receipt once, to the order's address
    receipt_jobs = [j for j in jobs if j[0].endswith("send_receipt")]
    assert [int(order_id) for _, _, order_id in receipt_jobs] == [i for i, _ in orders]
    assert {state for _, state, _ in jobs} == {"succeeded"}
    assert sum(1 for task, _, _ in jobs if task.endswith("restock_report")) == 1
