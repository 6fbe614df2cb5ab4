"""A few customers: three orders go through, the fourth asks for more kettles than are left."""

import json
import sys
import urllib.error
import urllib.request

base = sys.argv[1]
orders = [
    {"email": "ada@example.com", "product": "kettle", "quantity": 1},
    {"email": "grace@example.com", "product": "teapot", "quantity": 2},
    {"email": "alan@example.com", "product": "kettle", "quantity": 1},
    {"email": "edsger@example.com", "product": "kettle", "quantity": 5},
]
for order in orders:
    request = urllib.request.Request(
        f"{base}/orders", json.dumps(order).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            print(response.status, response.read().decode())
    except urllib.error.HTTPError as refused:
        print(refused.code, refused.read().decode())
