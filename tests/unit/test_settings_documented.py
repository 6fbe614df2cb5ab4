"""Every environment variable the code reads by name is on the settings reference page: a
module that reads one directly (a library's own name, or one published by the settings layer)
cannot add a variable users do not find in docs/settings.md."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# a literal name handed to os.environ / a mapping of the environment / the settings helpers
READS = re.compile(
    r"""(?:environ|env|getenv|env_int|env_float)(?:\.get)?\(\s*["']([A-Z][A-Z0-9_]+)["']"""
    r"""|environ\[\s*["']([A-Z][A-Z0-9_]+)["']\s*\]"""
)


def _names_read() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in sorted((ROOT / "src" / "tailrace").rglob("*.py")):
        for match in READS.finditer(path.read_text(encoding="utf-8")):
            name = match.group(1) or match.group(2)
            found.setdefault(name, str(path.relative_to(ROOT)))
    return found


def test_the_scan_sees_the_direct_readers() -> None:
    names = _names_read()
    # a regression guard on the pattern itself: these are read directly on purpose
    assert {"KUBECONFIG", "OTEL_TRACES_EXPORTER", "TAILRACE_SERVICE_NAME"} <= set(names)


def test_every_variable_read_is_documented() -> None:
    page = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    missing = {name: where for name, where in _names_read().items() if f"`{name}`" not in page}
    assert not missing, f"not in docs/settings.md (add them to the settings model): {missing}"
