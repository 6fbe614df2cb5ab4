"""``tailrace demo``: the engine end to end on the embedded default."""

from __future__ import annotations

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..demo import build_app, run_demo
from ..engine.states import JobState, Priority
from ..observability.logs import configure as configure_logs
from ..settings import database_url, redact_url


@click.command()
@click.pass_context
def demo(ctx: click.Context) -> None:
    """Enqueue jobs of every priority (some failing, one until dead) and run a worker."""
    url = database_url(ctx.find_root().obj.get("database_url"))
    configure_logs("WARNING")  # the progress bar and summary say it; keep stderr for trouble
    console = Console()
    console.print(f"[bold]tailrace demo[/bold] on {redact_url(url)}")
    app = build_app(url)
    with (
        app,
        Progress(
            TextColumn("running jobs"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as bar,
    ):
        task = bar.add_task("jobs", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=min(done, total), total=total)

        result = run_demo(app, progress)
        bar.update(task, completed=len(result.ids), total=len(result.ids))

    table = Table(
        "priority",
        *[s.value for s in (JobState.SUCCEEDED, JobState.DEAD)],
        "total",
        title=f"{len(result.ids)} jobs in {result.seconds:.2f} s "
        f"({len(result.ids) / result.seconds:,.0f} jobs/s)",
    )
    for p in Priority:
        row = [result.states[(p, s)] for s in (JobState.SUCCEEDED, JobState.DEAD)]
        total = sum(n for (prio, _), n in result.states.items() if prio is p)
        table.add_row(p.name, *map(str, row), str(total))
    console.print(table)
    console.print(f"{result.retried} jobs needed more than one attempt.")
    for line in result.dead_errors:
        console.print(f"[red]dead[/red] {line}")
    console.print(
        "Next: [cyan]tailrace jobs list --state dead[/cyan], "
        "[cyan]tailrace jobs replay --all[/cyan], [cyan]tailrace queues stats[/cyan]"
    )
