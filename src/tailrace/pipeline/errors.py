"""The exceptions the pipeline's reading layer raises."""

from __future__ import annotations

from tailrace.errors import TailraceError


class DecompressionError(TailraceError):
    """A compressed stream is corrupt or ends before its end-of-stream marker.

    The framing layer turns it into one bad-line record and stops reading that file.
    """


class FilterSpecError(TailraceError):
    """A filter given on the command line or in a job cannot be understood."""


class FieldPathError(TailraceError):
    """A field path (``origin.slug``) that is empty or has an empty segment."""
