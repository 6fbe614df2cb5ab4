"""``tailrace sample-logs``: realistic failover logs to try the pipeline on."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from ..pipeline.samples import (
    DEFAULT_BAD_RATE,
    default_range,
    sample_stream_ids,
    write_samples,
)


@click.command("sample-logs")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--files", type=click.IntRange(min=1), default=10, show_default=True)
@click.option(
    "--lines",
    type=click.IntRange(min=0),
    default=10_000,
    show_default=True,
    help="Mean lines per file; files get uneven shares of files x lines.",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed, same bytes.")
@click.option("--streams", type=click.IntRange(min=1), default=5, show_default=True)
@click.option(
    "--gzip-share",
    type=click.FloatRange(0.0, 1.0),
    default=0.5,
    show_default=True,
    help="Fraction of the files written as .ndjson.gz.",
)
@click.option(
    "--bad-lines",
    is_flag=True,
    help=f"Break about {DEFAULT_BAD_RATE:.1%} of lines (invalid JSON or UTF-8) and truncate "
    "the last line of every other file.",
)
@click.option(
    "--from",
    "start",
    type=click.DateTime(),
    default=None,
    help="Earliest event time, UTC (default: 3 days before --to).",
)
@click.option(
    "--to",
    "end",
    type=click.DateTime(),
    default=None,
    help="Events fall before this time, UTC (default: a date fixed by the seed).",
)
def sample_logs(
    directory: Path,
    files: int,
    lines: int,
    seed: int,
    streams: int,
    gzip_share: float,
    bad_lines: bool,
    start: datetime | None,
    end: datetime | None,
) -> None:
    """Write Jitsu-style failover NDJSON files (plain and gzip) into DIRECTORY."""
    default_start, default_end = default_range(seed)
    end = _utc(end) if end is not None else default_end
    start = _utc(start) if start is not None else end - (default_end - default_start)
    if end <= start:
        raise click.BadParameter("--to must be after --from", param_hint="--to")
    console = Console()
    began = time.perf_counter()
    with Progress(
        TextColumn("writing sample logs"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("lines", total=files * lines)
        written = write_samples(
            directory,
            files,
            lines,
            seed,
            streams=streams,
            gzip_share=gzip_share,
            start=start,
            end=end,
            bad_rate=DEFAULT_BAD_RATE if bad_lines else 0.0,
            progress=lambda n: bar.advance(task, n),
        )
    seconds = time.perf_counter() - began
    total_lines = sum(f.lines for f in written)
    total_bytes = sum(f.size for f in written)
    gzipped = sum(f.compression == "gzip" for f in written)
    console.print(
        f"Wrote {len(written)} files ({gzipped} gzip), {total_lines:,} lines, "
        f"{total_bytes:,} bytes in {seconds:.1f} s to {directory}",
        soft_wrap=True,
    )
    console.print(
        f"Events from {start.isoformat()} to {end.isoformat()}, {streams} streams, seed {seed}.",
        soft_wrap=True,
    )
    ids = sample_stream_ids(seed, streams)
    console.print(f"Stream ids: {', '.join(ids)}", soft_wrap=True, highlight=False)
    console.print(
        f"Keep one stream with: tailrace reprocess {directory} --sink file:out.ndjson "
        f"--stream-id {ids[0]}",
        soft_wrap=True,
        highlight=False,
    )
    if bad_lines:
        bad = sum(f.bad_lines for f in written)
        console.print(f"{bad:,} bad lines for the dead-letter output.", soft_wrap=True)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
