"""`memskill eval`: memories, answers and scores for memskill and the baselines, side by side."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from memskill_cli.cli.progress import progress_sink
from memskill_cli.cli.state import state


def evaluate(
    ctx: typer.Context,
    dataset: str | None = typer.Argument(None, help="Prepared dataset (default: params `dataset`)."),
    method: list[str] | None = typer.Option(None, "--method", "-m", help="memskill | no-memory | full-context | "
                                            "raw-rag | static-primitives | random-skills (repeatable)."),
    split: str | None = typer.Option(None, help="Split to evaluate (default: params eval.split)."),
    skill_bank: Path | None = typer.Option(None, help="Skill bank YAML (default: the seed bank)."),
    controller: Path | None = typer.Option(None, help="Trained controller checkpoint directory."),
    skills_per_span: int | None = typer.Option(None, "--skills-per-span", "--top-k",
                                               help="Skills the selector picks per span."),
    workers: int | None = typer.Option(None, help="Traces built in parallel."),
    judge: bool | None = typer.Option(None, "--judge/--no-judge", help="Score with the LLM judge too."),
    max_queries: int | None = typer.Option(None, help="Evaluate at most this many questions."),
    out: Path | None = typer.Option(None, help="Output directory (default: artifacts/eval/<dataset>)."),
) -> None:
    """Build memories for the evaluation traces, answer every question from them, and score.

    Examples: memskill eval; memskill eval locomo -m memskill -m raw-rag -m no-memory --split validation
    """
    from memskill_cli.metrics import metric_names
    from stages.evaluate import evaluate as run
    from stages.tracking import eval_steps, record_stage

    app_state = state(ctx)
    settings = app_state.settings({
        "eval.methods": method or None, "eval.split": split,
        "memory.skill_bank": str(skill_bank) if skill_bank else None,
        "memory.controller": str(controller) if controller else None,
        "eval.skills_per_span": skills_per_span, "memory.workers": workers, "eval.judge": judge,
        "eval.max_queries": max_queries,
    })
    name = dataset or settings.dataset
    out_dir = out or Path(settings.paths.artifacts_dir) / "eval" / name
    console = app_state.console
    with progress_sink(console, app_state.quiet) as progress:
        summary = run(name, settings, out_dir, progress)
    record_stage(settings, "eval", name, eval_steps(summary), summary["llm_usage"],
                 [out_dir / "metrics.json", out_dir / "runs"])
    names = metric_names(summary)
    table = Table(title=f"{name} / {settings.eval.split}")
    for column in ("method", "selector", "n", *names, "executor calls", "tokens"):
        table.add_column(column)
    for method_name, result in summary["methods"].items():
        overall, cost = result["overall"], result["cost"]
        table.add_row(method_name, result.get("selector", "-"), str(overall["n"]),
                      *(_fmt(overall.get(n)) for n in names), str(cost.get("executor_calls", 0)),
                      str(cost.get("prompt_tokens", 0) + cost.get("completion_tokens", 0)))
    console.print(table)
    console.print(f"wrote {out_dir}/metrics.json")
    typer.echo(json.dumps({"out": str(out_dir), "methods": {m: r["overall"] for m, r in summary["methods"].items()}}))


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
