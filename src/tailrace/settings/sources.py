"""Reading `Settings`: the environment first (each field's ``TAILRACE_`` name, then its
aliases), then ``tailrace.toml``, then the defaults. Each value remembers where it came from,
and a value that does not fit says so in one line naming the variable it came from."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from ..errors import ConfigurationError
from .model import Settings, env_names, field_extra

CONFIG_ENV = "TAILRACE_CONFIG"
CONFIG_FILE = "tailrace.toml"


class _Recorded(PydanticBaseSettingsSource):
    """A source that hands pydantic-settings plain values and records where each came from
    (its own lookup, not pydantic-settings' env parsing: the first non-empty name wins, in
    the field's order, and a rule can set a value aside)."""

    def __init__(self, settings_cls: type[BaseSettings], origins: dict[str, str]) -> None:
        super().__init__(settings_cls)
        self.origins = origins
        self.values: dict[str, Any] = {}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.values)


class EnvironmentSource(_Recorded):
    def __init__(
        self,
        settings_cls: type[BaseSettings],
        environ: Mapping[str, str],
        origins: dict[str, str],
        warnings: list[str],
    ) -> None:
        super().__init__(settings_cls, origins)
        for field in settings_cls.model_fields:
            for name in env_names(field):
                raw = environ.get(name)
                if raw is not None and raw.strip():
                    self.values[field] = raw.strip()
                    origins[field] = f"env {name}"
                    break
        if origins.get("job_id") == "env JOB_ID" and not origins.get("worker_index"):
            # SGE and other batch schedulers export JOB_ID to every process they start; the
            # reprocessing-worker contract always sets WORKER_INDEX beside it
            del self.values["job_id"], origins["job_id"]
            warnings.append(
                "JOB_ID is set without WORKER_INDEX: not taken as a reprocessing job (set "
                "TAILRACE_JOB_ID, or pass --job, to work one)"
            )


class TomlSource(_Recorded):
    def __init__(
        self, settings_cls: type[BaseSettings], path: Path | None, origins: dict[str, str]
    ) -> None:
        super().__init__(settings_cls, origins)
        if path is None:
            return
        try:
            data = tomllib.loads(path.read_text())
        except OSError as exc:
            raise ConfigurationError(f"{path}: cannot read it ({exc.strerror})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"{path}: not valid TOML: {exc}") from None
        unknown = sorted(set(data) - set(settings_cls.model_fields))
        if unknown:
            raise ConfigurationError(
                f"{path}: {', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not a "
                "setting (names are those of docs/settings.md, lower case, without TAILRACE_)"
            )
        for field, value in data.items():
            self.values[field] = value
            origins.setdefault(field, f"toml {path}")


def config_file(environ: Mapping[str, str]) -> Path | None:
    """``TAILRACE_CONFIG`` (which must exist), else ``./tailrace.toml`` if there is one."""
    named = (environ.get(CONFIG_ENV) or "").strip()
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigurationError(f"{CONFIG_ENV}={named!r}: no such file")
        return path
    local = Path(CONFIG_FILE)
    return local if local.is_file() else None


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings ``environ`` (default: the process's) and the TOML file give."""
    env = os.environ if environ is None else environ
    origins: dict[str, str] = {}
    warnings: list[str] = []
    sources = (
        EnvironmentSource(Settings, env, origins, warnings),
        TomlSource(Settings, config_file(env), origins),
    )
    try:
        # the plugin-less signature has no _build_sources: pydantic-settings takes it
        settings = Settings(_build_sources=(sources, {}))  # type: ignore[call-arg]
    except ValidationError as exc:
        raise ConfigurationError(_one_line(exc, sources, origins)) from None
    settings._origins = {k: v for k, v in origins.items() if k in settings.model_fields_set}
    settings._warnings = warnings
    return settings


def _one_line(exc: ValidationError, sources: tuple[_Recorded, ...], origins: dict[str, str]) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        field = str(error["loc"][0]) if error["loc"] else ""
        where = origins.get(field, field)
        name = where.split(" ", 1)[1] if " " in where else where
        raw = next((s.values[field] for s in sources if field in s.values), error.get("input"))
        if where.startswith("toml "):
            name = f"{name}: {field}"
        problems.append(f"{name}={raw!r}: {_expected(field, error)}")
    return "; ".join(problems)


def _expected(field: str, error: Any) -> str:
    info = Settings.model_fields.get(field)
    annotation = str(info.annotation) if info else ""
    kind = (
        "a whole number"
        if "int" in annotation
        else "a number"
        if "float" in annotation
        else "true or false"
        if "bool" in annotation
        else None
    )
    if kind is None:
        return str(error["msg"])
    bounds = [m for m in (info.metadata if info else []) if hasattr(m, "ge") or hasattr(m, "le")]
    floor = next((m.ge for m in bounds if getattr(m, "ge", None) is not None), None)
    ceiling = next((m.le for m in bounds if getattr(m, "le", None) is not None), None)
    if floor is not None:
        kind += f" of at least {floor:g}"
    if ceiling is not None:
        kind += f"{' and' if floor is not None else ''} at most {ceiling:g}"
    return f"expected {kind}"


def publish(settings: Settings, environ: os._Environ[str] | dict[str, str]) -> None:
    """Copy a value given under a field's ``TAILRACE_`` name (or in the TOML file) to the
    name that libraries and child processes read (`model.setting`'s ``publish``)."""
    for field in Settings.model_fields:
        if not field_extra(field, "publish") or field not in settings.model_fields_set:
            continue
        alias = env_names(field)[1]
        if environ.get(alias):
            continue
        value = getattr(settings, field)
        environ[alias] = str(value).lower() if isinstance(value, bool) else str(value)
