"""The billing service's handler: called once per message id (`tailrace consume
--handler handlers:bill`), retried with backoff if it raises, dead-lettered after that."""

import json

from tailrace.streams import Message


def bill(message: Message) -> None:
    event = json.loads(message.value or b"{}")
    with open("billed.ndjson", "a") as out:
        out.write(
            json.dumps({"id": message.id, "key": (message.key or b"").decode(), **event}) + "\n"
        )
