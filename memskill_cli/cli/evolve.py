"""`memskill evolve`: the designer refines and adds skills from the training run's hard cases."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from memskill_cli.cli.progress import progress_sink
from memskill_cli.cli.state import state


def evolve(
    ctx: typer.Context,
    dataset: str | None = typer.Argument(None, help="Prepared dataset (default: params `dataset`)."),
    max_changes: int | None = typer.Option(None, help="Most skill edits per evolution cycle."),
    cycles: int | None = typer.Option(None, help="Most evolution cycles in this run."),
    train_dir: Path | None = typer.Option(None, help="Training run to mine (default: artifacts/train/<dataset>)."),
    out: Path | None = typer.Option(None, help="Evolution run directory (default: artifacts/evolve/<dataset>)."),
) -> None:
    """Mine the training run's hard cases, let the designer refine and add skills, keep only what helps.

    Each new bank version is scored on the validation split; a worse one is rolled back to the best.
    Example: memskill evolve --max-changes 3
    """
    from stages.evolve import evolve as run
    from stages.tracking import evolve_steps, record_stage

    app_state = state(ctx)
    settings = app_state.settings({"evolve.max_changes": max_changes, "evolve.cycles": cycles})
    name = dataset or settings.dataset
    artifacts = Path(settings.paths.artifacts_dir)
    run_dir = out or artifacts / "evolve" / name
    with progress_sink(app_state.console, app_state.quiet) as progress:
        summary, usage = run(name, settings, train_dir or artifacts / "train" / name, run_dir, progress)
    record_stage(settings, "evolve", name, evolve_steps(summary), usage, [run_dir])
    for cycle in summary["cycles"]:
        outcome = cycle.get("outcome", cycle.get("stopped"))
        app_state.console.print(f"round {cycle['round']}: {len(cycle.get('accepted', []))} applied, "
                                f"{len(cycle.get('rejected', []))} rejected -> {outcome}")
        for edit in cycle.get("rejected", []):
            app_state.console.print(f"  rejected {edit.get('op')} {edit.get('skill')}: {edit['why']}")
    app_state.console.print(f"best bank v{summary['best_version']} (validation {summary['scored_by']} "
                            f"{summary['best_score']:.3f}) exported to {summary['exported']}")
    typer.echo(json.dumps({k: v for k, v in summary.items() if k != "cycles"}))
