"""Number settings from the environment: a malformed one names the variable."""

from __future__ import annotations

import pytest

from tailrace.errors import ConfigurationError
from tailrace.settings import env_float, env_int


def test_non_numeric_setting_names_the_variable() -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TAILRACE_X", "abc")
        with pytest.raises(ConfigurationError, match="TAILRACE_X='abc': expected a whole number"):
            env_int("TAILRACE_X", 1)
        with pytest.raises(ConfigurationError, match="TAILRACE_X='abc': expected a number"):
            env_float("TAILRACE_X", 1.0)
        mp.setenv("TAILRACE_X", " 12 ")
        assert env_int("TAILRACE_X", 1) == 12
        mp.delenv("TAILRACE_X")
        assert env_float("TAILRACE_X", 2.5) == 2.5
