"""``python -m tailrace`` is the ``tailrace`` command."""

from .cli import main

main()
