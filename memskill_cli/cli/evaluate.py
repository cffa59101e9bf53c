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
    top_k: int | None = typer.Option(None, help="Skills selected per span."),
    workers: int | None = typer.Option(None, help="Traces built in parallel."),
    judge: bool | None = typer.Option(None, "--judge/--no-judge", help="Score with the LLM judge too."),
    max_queries: int | None = typer.Option(None, help="Evaluate at most this many questions."),
    out: Path | None = typer.Option(None, help="Output directory (default: artifacts/eval/<dataset>)."),
) -> None:
    """Build memories for the evaluation traces, answer every question from them, and score.

    Examples: memskill eval; memskill eval locomo -m memskill -m raw-rag -m no-memory --split validation
    """
    from memskill_cli.embeddings import Encoder
    from memskill_cli.llm import UsageLedger, build_role_clients
    from stages.build_cache import current_cache
    from stages.evaluate import evaluate as run
    from stages.evaluate import load_context

    app_state = state(ctx)
    settings = app_state.settings({
        "eval.methods": method or None, "eval.split": split,
        "memory.skill_bank": str(skill_bank) if skill_bank else None,
        "memory.controller": str(controller) if controller else None,
        "eval.top_k": top_k, "memory.workers": workers, "eval.judge": judge, "eval.max_queries": max_queries,
    })
    name = dataset or settings.dataset
    artifacts = Path(settings.paths.artifacts_dir)
    out_dir = out or artifacts / "eval" / name
    cache_dir = current_cache(artifacts / "cache", name)
    ledger = UsageLedger()
    console = app_state.console
    with console.status("loading models..."):
        encoder = Encoder(settings.embedding.model, settings.embedding.batch_size, settings.embedding.device)
        clients = build_role_clients(settings.llm, ledger, roles=("executor", "answerer", "judge"))
    with progress_sink(console, app_state.quiet) as progress:
        context = load_context(settings, Path(settings.paths.data_dir) / "prepared" / name, cache_dir, clients,
                               ledger, encoder, Path(settings.memory.cache_dir) / name, progress)
        summary = run(context, settings.eval.methods, out_dir)
    from stages.tracking import eval_steps, record_stage

    record_stage(settings, "eval", name, eval_steps(summary), ledger.to_dict(),
                 [out_dir / "metrics.json", out_dir / "runs"])
    from stages.evaluate import metric_names

    names = metric_names(summary)
    table = Table(title=f"{name} / {settings.eval.split}")
    for column in ("method", "n", *names, "executor calls", "tokens"):
        table.add_column(column)
    for method_name, result in summary["methods"].items():
        overall, cost = result["overall"], result["cost"]
        table.add_row(method_name, str(overall["n"]), *(_fmt(overall.get(n)) for n in names),
                      str(cost.get("executor_calls", 0)),
                      str(cost.get("prompt_tokens", 0) + cost.get("completion_tokens", 0)))
    console.print(table)
    console.print(f"wrote {out_dir}/metrics.json")
    typer.echo(json.dumps({"out": str(out_dir), "methods": {m: r["overall"] for m, r in summary["methods"].items()}}))


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
