"""The admin service (``tailrace serve``): REST API, web UI, metrics."""

from tailrace.api.app import create_app
from tailrace.api.config import ApiConfig

__all__ = ["ApiConfig", "create_app"]
