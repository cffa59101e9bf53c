"""`memskill evolve` and `memskill skills show|diff|export`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from memskill_cli.cli.progress import progress_sink
from memskill_cli.cli.state import state
from memskill_cli.skills import SkillBank


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
    from memskill_cli.embeddings import Encoder
    from memskill_cli.llm import UsageLedger, build_role_clients
    from stages.build_cache import current_cache
    from stages.evaluate import load_context
    from stages.evolve import buffer_from_run
    from stages.evolve import evolve as run

    app_state = state(ctx)
    base = app_state.settings()
    name = dataset or base.dataset
    artifacts = Path(base.paths.artifacts_dir)
    train_dir = train_dir or artifacts / "train" / name
    checkpoint = train_dir / "checkpoint"
    # Bank versions are scored on the validation split (F1), with the trained controller when there is one.
    settings = app_state.settings({
        "evolve.max_changes": max_changes, "evolve.cycles": cycles, "eval.split": "validation", "eval.judge": False,
        "memory.controller": str(checkpoint) if (checkpoint / "state.json").exists() else None})
    ledger = UsageLedger()
    with app_state.console.status("loading models..."):
        encoder = Encoder(settings.embedding.model, settings.embedding.batch_size, settings.embedding.device)
        clients = build_role_clients(settings.llm, ledger, roles=("executor", "answerer", "designer"))
    initial = SkillBank.load(train_dir / "skill_bank.yaml") if (train_dir / "skill_bank.yaml").exists() else None
    with progress_sink(app_state.console, app_state.quiet) as progress:
        context = load_context(settings, Path(settings.paths.data_dir) / "prepared" / name,
                               current_cache(artifacts / "cache", name), clients, ledger, encoder,
                               Path(settings.memory.cache_dir) / name, progress)
        summary = run(settings, context, clients["designer"], out or artifacts / "evolve" / name,
                      initial or context.skill_bank, buffer_from_run(train_dir, settings),
                      settings.evolve.max_changes, settings.evolve.cycles)
    from memskill_cli.fileio import write_json
    from stages.tracking import evolve_steps, record_stage

    run_dir = out or artifacts / "evolve" / name
    write_json(run_dir / "llm_usage.json", ledger.to_dict())
    record_stage(settings, "evolve", name, evolve_steps(summary), ledger.to_dict(), [run_dir])
    for cycle in summary["cycles"]:
        outcome = cycle.get("outcome", cycle.get("stopped"))
        app_state.console.print(f"round {cycle['round']}: {len(cycle.get('accepted', []))} applied, "
                                f"{len(cycle.get('rejected', []))} rejected -> {outcome}")
        for edit in cycle.get("rejected", []):
            app_state.console.print(f"  rejected {edit.get('op')} {edit.get('skill')}: {edit['why']}")
    app_state.console.print(f"best bank v{summary['best_version']} (validation F1 {summary['best_score']:.3f}) "
                            f"exported to {summary['exported']}")
    typer.echo(json.dumps({k: v for k, v in summary.items() if k != "cycles"}))


skills_app = typer.Typer(help="Read and compare skill banks.", no_args_is_help=True)


@skills_app.command()
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


@skills_app.command()
def diff(old: Path = typer.Argument(..., help="Older bank YAML."),
         new: Path = typer.Argument(..., help="Newer bank YAML.")) -> None:
    """Unified diff of two skill banks."""
    typer.echo(SkillBank.load(old).diff(SkillBank.load(new)) or "no differences")


@skills_app.command()
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
