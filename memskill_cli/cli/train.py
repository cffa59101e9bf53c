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
    from stages.tracking import record_stage, train_steps
    from stages.train import train as run

    app_state = state(ctx)
    settings = app_state.settings({"train.updates": updates, "train.episodes_per_update": episodes_per_update,
                                   "train.workers": workers})
    name = dataset or settings.dataset
    out_dir = out or Path(settings.paths.artifacts_dir) / "train" / name
    with progress_sink(app_state.console, app_state.quiet) as progress:
        result = run(name, settings, out_dir, resume, progress)
    summary = result.summary
    if resume and summary["fresh_because"]:
        app_state.console.print(f"[yellow]--resume: a fresh run, because {summary['fresh_because']} "
                                f"({out_dir / 'checkpoint'})[/yellow]")
    record_stage(settings, "train", name, train_steps(result.history), summary["llm_usage"],
                 [out_dir / "checkpoint", out_dir / "history.jsonl", out_dir / "skill_bank.yaml",
                  out_dir / "evolution"])
    app_state.console.print(f"[green]trained[/green] {summary['updates']} updates; reward first "
                            f"{summary['reward_first']:.3f}, last {summary['reward_last']:.3f}; "
                            f"checkpoint {out_dir / 'checkpoint'}")
    typer.echo(json.dumps({"out": str(out_dir), **{k: v for k, v in summary.items() if k != "llm_usage"}}))
