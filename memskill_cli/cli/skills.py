"""`memskill skills show|diff|export`: read and compare skill banks."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from memskill_cli.cli.state import state
from memskill_cli.skills import SkillBank

app = typer.Typer(help="Read and compare skill banks.", no_args_is_help=True)


@app.command()
def show(ctx: typer.Context,
         bank: Path | None = typer.Argument(None, help="Bank YAML (default: the seed bank).")) -> None:
    """Show a skill bank: each skill's actions, version, provenance and description."""
    loaded = SkillBank.load(bank) if bank else SkillBank.seed()
    table = Table(title=f"skill bank v{loaded.version} ({loaded.hash})")
    for column in ("name", "actions", "version", "origin", "description"):
        table.add_column(column)
    for skill in loaded.skills:
        table.add_row(skill.name, ",".join(skill.actions), str(skill.version), skill.provenance.origin,
                      skill.description)
    state(ctx).console.print(table)


@app.command()
def diff(old: Path = typer.Argument(..., help="Older bank YAML."),
         new: Path = typer.Argument(..., help="Newer bank YAML.")) -> None:
    """Unified diff of two skill banks."""
    typer.echo(SkillBank.load(old).diff(SkillBank.load(new)) or "no differences")


@app.command()
def export(ctx: typer.Context, out: Path = typer.Argument(..., help="Where to write the bank YAML."),
           run: Path | None = typer.Option(None, help="Evolution run (default: artifacts/evolve/<dataset>)."),
           version: int | None = typer.Option(None, help="A specific version (default: the best).")) -> None:
    """Export an evolution run's best (or a given) bank version."""
    from memskill_cli.errors import DataError
    from memskill_cli.evolution.snapshots import EvolutionState
    from memskill_cli.fileio import read_json

    settings = state(ctx).settings()
    run = run or Path(settings.paths.artifacts_dir) / "evolve" / settings.dataset
    if not (run / "state.json").exists():
        raise DataError("not an evolution run (no state.json)", file=str(run))
    evolution = EvolutionState.model_validate(read_json(run / "state.json"))
    chosen = version or evolution.best
    SkillBank.load(run / "versions" / f"v{chosen}" / "bank.yaml").save(out)
    state(ctx).console.print(f"exported bank v{chosen} to {out}")
