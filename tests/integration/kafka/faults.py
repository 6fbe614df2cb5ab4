"""A real fatal error in a real producer: librdkafka's own `rd_kafka_test_fatal_error`,
which raises a fatal error inside the client exactly as an idempotence failure would (error
callback, purged queue, `_FATAL` on every later produce). confluent-kafka does not wrap it,
so it is called through ctypes on the librdkafka the wheel bundles."""

from __future__ import annotations

import ctypes
from pathlib import Path

import confluent_kafka
from confluent_kafka import KafkaError, Producer


def _librdkafka() -> ctypes.CDLL:
    libs = Path(confluent_kafka.__file__).parent.parent / "confluent_kafka.libs"
    [path] = sorted(libs.glob("librdkafka*.so*"))
    lib = ctypes.CDLL(str(path))
    lib.rd_kafka_name.restype = ctypes.c_char_p
    lib.rd_kafka_name.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_test_fatal_error.restype = ctypes.c_int
    lib.rd_kafka_test_fatal_error.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p]
    return lib


def inject_fatal_error(producer: Producer, client_id: str) -> None:
    """Make `producer` fail fatally (as "old epoch", an idempotence state error)."""
    lib = _librdkafka()
    # The client's handle: the first field after the object header (confluent_kafka.h).
    handle = ctypes.c_void_p.from_address(id(producer) + 2 * ctypes.sizeof(ctypes.c_ssize_t))
    name = lib.rd_kafka_name(handle.value) or b""
    assert name.decode().startswith(client_id), f"not the producer's handle: {name!r}"
    code = KafkaError.INVALID_PRODUCER_EPOCH
    assert lib.rd_kafka_test_fatal_error(handle.value, code, b"injected by the test") == 0
