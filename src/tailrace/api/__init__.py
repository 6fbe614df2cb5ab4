"""The admin service (``tailrace serve``): REST API, web UI, metrics."""

from .app import create_app
from .config import ApiConfig

__all__ = ["ApiConfig", "create_app"]
