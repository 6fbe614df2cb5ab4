"""What ``tailrace config`` prints (the effective settings, where each came from, secrets
masked) and the reference page docs/settings.md, both from the model."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from . import redact_url
from .model import PREFIX, Settings, env_names, field_extra
from .sources import CONFIG_ENV, CONFIG_FILE

MASK = "***"
_PASSWORD_PARAM = re.compile(r"(?i)((?:password|token|secret)=)[^&]*")

#: Read as their libraries name them (no TAILRACE_ name: the library reads the environment
#: itself); shown by ``tailrace config`` when set. Name -> (secret, what it does).
LIBRARY: dict[str, tuple[bool, str]] = {
    "AWS_ACCESS_KEY_ID": (True, "S3 credentials (boto3)."),
    "AWS_SECRET_ACCESS_KEY": (True, "S3 credentials (boto3)."),
    "AWS_SESSION_TOKEN": (True, "S3 temporary credentials (boto3)."),
    "AWS_PROFILE": (False, "The AWS profile (boto3)."),
    "AWS_DEFAULT_REGION": (False, "The region where `AWS_REGION` is unset (boto3)."),
    "KUBECONFIG": (False, "The kubeconfig where `K8S_CONFIG_PATH` names none."),
    "PGPASSWORD": (True, "The PostgreSQL password where the URL has none (libpq)."),
    "PGSSLMODE": (False, "PostgreSQL TLS (libpq)."),
    "OTEL_TRACES_EXPORTER": (False, "`otlp` or `console` turns tracing on (default none)."),
    "OTEL_SDK_DISABLED": (False, "`true` turns tracing off."),
    "OTEL_SERVICE_NAME": (False, "The service name of the spans (default tailrace)."),
    "OTEL_EXPORTER_OTLP_ENDPOINT": (False, "Where the OTLP exporter sends spans."),
    "OTEL_EXPORTER_OTLP_HEADERS": (True, "Headers of the OTLP exporter (often a token)."),
    "OTEL_EXPORTER_OTLP_PROTOCOL": (False, "`http/protobuf` (default) or `grpc`."),
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": (False, "The same, for traces only (wins)."),
}
SINK_PREFIX = "TAILRACE_SINK_"
CONSUMER_PREFIX = "KAFKA_CONSUMER_"


def masked(value: Any, secret: bool) -> str:
    """A value as ``tailrace config`` shows it: URLs without passwords, secrets as ***."""
    if value is None:
        return ""
    text = str(value).lower() if isinstance(value, bool) else str(value)
    if "\n" in text:
        return f"{MASK} ({text.count(chr(10)) + 1} lines)"
    if "://" in text:
        return _PASSWORD_PARAM.sub(r"\1" + MASK, redact_url(text))
    return MASK if secret and text else text


def rows(settings: Settings, environ: Mapping[str, str]) -> list[dict[str, str]]:
    """One row per setting (name, value, source), then the sink references and the
    libraries' own variables that are set."""
    found = [
        {
            "name": field,
            "env": env_names(field)[0],
            "value": masked(getattr(settings, field), field_extra(field, "secret")),
            "source": settings.origin(field),
        }
        for field in Settings.model_fields
    ]
    for name in sorted(n for n in environ if n.startswith(SINK_PREFIX) and environ[n]):
        found.append(
            {
                "name": name,
                "env": name,
                "value": masked(environ[name], True),
                "source": f"env {name}",
            }
        )
    for name in sorted(n for n in environ if n.startswith(CONSUMER_PREFIX) and environ[n]):
        if name == "KAFKA_CONSUMER_GROUP":
            continue
        secret = any(w in name for w in ("PASSWORD", "SECRET", "KEY"))
        found.append(
            {
                "name": name,
                "env": name,
                "value": masked(environ[name], secret),
                "source": f"env {name}",
            }
        )
    for name, (secret, _) in LIBRARY.items():
        if environ.get(name):
            found.append(
                {
                    "name": name,
                    "env": name,
                    "value": masked(environ[name], secret),
                    "source": f"env {name}",
                }
            )
    return found


def table(settings: Settings, environ: Mapping[str, str]) -> str:
    found = rows(settings, environ)
    width = max(len(r["env"]) for r in found)
    value_width = min(48, max(len(r["value"]) for r in found))
    lines = [f"{r['env']:<{width}}  {r['value']:<{value_width}}  {r['source']}" for r in found]
    lines += [f"warning: {w}" for w in settings.warnings]
    return "\n".join(lines) + "\n"


def _default(field: str) -> str:
    value = Settings.model_fields[field].default
    if value is None:
        return ""
    return f"`{str(value).lower() if isinstance(value, bool) else value}`"


def reference() -> str:
    """docs/settings.md (tests/unit/test_settings.py checks the page is this)."""
    out = [
        "# Settings",
        "",
        "<!-- generated from src/tailrace/settings/model.py by `tailrace config --reference`;"
        " do not edit -->",
        "",
        "Every setting is read, in this order, from:",
        "",
        "1. the command's option, where it has one (`--database-url`, `--app`, ...);",
        f"2. the environment: its `{PREFIX}` name, then the names in *also read as* (the "
        "names of the systems tailrace replaces: Jitsu's reprocessing worker and admin, the "
        "priority-job framework, the S3 ingestor), the first one set winning;",
        f"3. `{CONFIG_FILE}` in the current directory, or the file `{CONFIG_ENV}` names: "
        "the setting's name in lower case without the prefix, e.g. "
        '`database_url = "postgresql://localhost/tailrace"`;',
        "4. the default.",
        "",
        "An empty variable counts as unset. A value that does not fit (a word where a number "
        "goes) stops the command with one line naming the variable. `tailrace config` prints "
        "the effective settings, where each came from, with passwords, tokens and keys "
        "masked.",
        "",
        "A bare `JOB_ID` is taken only beside `WORKER_INDEX` (as the reprocessing worker's "
        "pods set them): a batch scheduler that exports `JOB_ID` to every process does not "
        "turn `tailrace worker` into a reprocessing worker.",
    ]
    groups: dict[str, list[str]] = {}
    for field in Settings.model_fields:
        info = Settings.model_fields[field]
        names = env_names(field)
        also = ", ".join(f"`{n}`" for n in names[1:])
        doc = str(info.description)
        if field_extra(field, "secret"):
            doc += " *(secret: masked)*"
        groups.setdefault(field_extra(field, "group"), []).append(
            f"| `{names[0]}` | {also} | {_default(field)} | {doc} |"
        )
    for group, lines in groups.items():
        out += [
            "",
            f"## {group}",
            "",
            "| Variable | Also read as | Default | What it does |",
            "|---|---|---|---|",
            *lines,
        ]
    out += [
        "",
        "## Sink references",
        "",
        f"`{SINK_PREFIX}<NAME>` holds the URL a sink reference `@name` stands for (`@kafka-main`"
        f" reads `{SINK_PREFIX}KAFKA_MAIN`): jobs name the sink, the credentials stay in the "
        "environment. Masked by `tailrace config`.",
        "",
        "## Consumer settings",
        "",
        f"`{CONSUMER_PREFIX}<NAME>` sets the Kafka consumer's librdkafka property `<name>` "
        f"(lower case, `_` for `.`): `{CONSUMER_PREFIX}FETCH_MIN_BYTES` is `fetch.min.bytes`.",
        "",
        "## Read as their libraries name them",
        "",
        "These have no `TAILRACE_` name: the library reads the environment itself.",
        "",
        "| Variable | What it does |",
        "|---|---|",
        *(
            f"| `{name}` | {doc}{' *(secret: masked)*' if secret else ''} |"
            for name, (secret, doc) in LIBRARY.items()
        ),
        "",
    ]
    return "\n".join(out)
