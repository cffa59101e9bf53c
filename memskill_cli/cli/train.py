"""`memskill train`: PPO for the skill-selection controller."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from memskill_cli.cli.progress import progress_sink
from memskill_cli.cli.state import state


def train(
    ctx: typer.Context,
    dataset: str | None = typer.Argument(None, help="Prepared dataset (default: params `dataset`)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint."),
    updates: int | None = typer.Option(None, help="Total PPO updates."),
    episodes_per_update: int | None = typer.Option(None, help="Training traces per update."),
    workers: int | None = typer.Option(None, help="Episodes in parallel."),
    out: Path | None = typer.Option(None, help="Output directory (default: artifacts/train/<dataset>)."),
) -> None:
    """Train the controller that picks skills per span, rewarded by the F1 of answers from the memory built.

    A checkpoint is written after every update; `--resume` continues a stopped run.
    Example: memskill train --updates 20 --workers 2; memskill train --resume
    """
    from memskill_cli.embeddings import Encoder
    from memskill_cli.llm import UsageLedger, build_role_clients
    from stages.build_cache import current_cache
    from stages.evaluate import load_context
    from stages.train import evolution_hook, make_trainer
    from stages.train import train as run

    app_state = state(ctx)
    settings = app_state.settings({"train.updates": updates, "train.episodes_per_update": episodes_per_update,
                                   "train.workers": workers})
    name = dataset or settings.dataset
    artifacts = Path(settings.paths.artifacts_dir)
    out_dir = out or artifacts / "train" / name
    ledger = UsageLedger()
    prepared, cache = Path(settings.paths.data_dir) / "prepared" / name, current_cache(artifacts / "cache", name)
    alternate = settings.train.evolve_every > 0
    with app_state.console.status("loading models..."):
        encoder = Encoder(settings.embedding.model, settings.embedding.batch_size, settings.embedding.device)
        roles = ("executor", "answerer", "designer") if alternate else ("executor", "answerer")
        clients = build_role_clients(settings.llm, ledger, roles=roles)
        trainer = make_trainer(settings, prepared, cache, clients, encoder)
    with progress_sink(app_state.console, app_state.quiet) as progress:
        hook = None
        if alternate:  # evolution cycles between PPO phases, scored on the validation split
            scoring = settings.model_copy(update={"eval": settings.eval.model_copy(
                update={"split": "validation", "judge": False})})
            context = load_context(scoring, prepared, cache, clients, ledger, encoder,
                                   Path(settings.memory.cache_dir) / name, progress)
            hook = evolution_hook(scoring, context, clients["designer"], out_dir / "evolution")
        summary = run(settings, trainer, out_dir, ledger, resume, progress, hook)
    from stages.tracking import record_stage, train_steps

    record_stage(settings, "train", name, train_steps(trainer.history), ledger.to_dict(),
                 [out_dir / "checkpoint", out_dir / "history.jsonl", out_dir / "skill_bank.yaml",
                  out_dir / "evolution"])
    app_state.console.print(f"[green]trained[/green] {summary['updates']} updates; reward first "
                            f"{summary['reward_first']:.3f}, last {summary['reward_last']:.3f}; "
                            f"checkpoint {out_dir / 'checkpoint'}")
    typer.echo(json.dumps({"out": str(out_dir), **{k: v for k, v in summary.items() if k != "llm_usage"}}))
