"""`memskill report`: Markdown + HTML report of a pipeline run, or a comparison of two eval runs."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from memskill_cli.cli.state import state


def report(
    ctx: typer.Context,
    dataset: str | None = typer.Argument(None, help="Dataset (default: params `dataset`)."),
    compare: tuple[str, str] | None = typer.Option(None, "--compare", metavar="RUN_A RUN_B",
                                                   help="Two eval output dirs or MLflow run ids to compare."),
    out: Path | None = typer.Option(None, help="Report directory (default: artifacts/report/<dataset>)."),
) -> None:
    """Write report.md and report.html (eval table, reward curve, skill usage, bank timeline, cost, examples).

    Examples: memskill report; memskill report --compare artifacts/eval/old artifacts/eval/sample
    """
    from stages.report import compare as compare_runs
    from stages.report import report as run
    from stages.tracking import record_stage

    settings = state(ctx).settings()
    name = dataset or settings.dataset
    if compare:
        typer.echo(compare_runs(compare[0], compare[1], settings.mlflow.tracking_uri))
        return
    out_dir = out or Path(settings.paths.artifacts_dir) / "report" / name
    page = run(name, settings, out_dir)
    record_stage(settings, "report", name, artifacts=[out_dir])
    state(ctx).console.print(f"[green]report[/green] {page} and {out_dir / 'report.md'}")
    typer.echo(json.dumps({"html": str(page), "markdown": str(out_dir / "report.md")}))
