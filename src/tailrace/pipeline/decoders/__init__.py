"""Decoding stored files: decompression (from the bytes) and newline framing."""

from tailrace.pipeline.decoders.compression import (
    Compression,
    DecompressedStream,
    detect_compression,
    open_decompressed,
)
from tailrace.pipeline.decoders.framing import (
    DEFAULT_MAX_LINE_BYTES,
    BadLine,
    Checkpoint,
    Line,
    LineReader,
)

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "BadLine",
    "Checkpoint",
    "Compression",
    "DecompressedStream",
    "Line",
    "LineReader",
    "detect_compression",
    "open_decompressed",
]
