"""`memskill export`: pack a run for the library (`MemSkill.from_run`) and for `mlflow models serve`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from memskill_cli.cli.state import state


def export(
    ctx: typer.Context,
    run: str | None = typer.Argument(None, help="Dataset name (its artifacts/train and artifacts/evolve runs) or a "
                                                "training run folder (default: params `dataset`)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write (replaced as a whole)."),
) -> None:
    """Pack the best skill bank, the trained controller and the settings that shaped them into one folder, with a
    manifest of hashes; log it to MLflow (artifacts + a pyfunc model whose predict searches).

    Example: memskill export locomo --out exports/locomo; then MemSkill.from_run("exports/locomo")
    """
    from stages.export import export as run_export

    app_state = state(ctx)
    settings = app_state.settings()
    manifest, run_id = run_export(run or settings.dataset, settings, out)
    app_state.console.print(f"[green]exported[/green] bank {manifest['skill_bank']}, controller "
                            f"{manifest['controller'] or 'none (the configured selector)'} -> {out}"
                            + (f"; MLflow run {run_id}" if run_id else ""))
    typer.echo(json.dumps({"out": str(out), "mlflow_run_id": run_id, **manifest}))
