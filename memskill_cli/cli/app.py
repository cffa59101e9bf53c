"""Root of the `memskill` CLI: global options, command registration and error handling."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from memskill_cli import __version__, secrets
from memskill_cli.cli import (
    build_cache,
    evaluate,
    evolve,
    export,
    memory,
    models,
    prepare,
    report,
    serve,
    skills,
    train,
)
from memskill_cli.cli.state import AppState
from memskill_cli.errors import MemskillError

app = typer.Typer(
    name="memskill",
    help="Learn and evolve memory skills for LLM agents (MemSkill).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold API keys
    rich_markup_mode="rich",
)
app.add_typer(models.app, name="models", rich_help_panel="Setup")
app.command(rich_help_panel="Pipeline")(prepare.prepare)
app.command("build-cache", rich_help_panel="Pipeline")(build_cache.build_cache)
app.command(rich_help_panel="Pipeline")(train.train)
app.command(rich_help_panel="Pipeline")(evolve.evolve)
app.command("eval", rich_help_panel="Pipeline")(evaluate.evaluate)
app.command(rich_help_panel="Pipeline")(report.report)
app.add_typer(skills.app, name="skills", rich_help_panel="Inspect")
app.command(rich_help_panel="Use")(export.export)
app.add_typer(memory.app, name="memory", rich_help_panel="Use")
app.command(rich_help_panel="Use")(serve.serve)


@app.callback()
def root(
    ctx: typer.Context,
    params: Path | None = typer.Option(None, "--params", "-p", help="params.yaml to read (default ./params.yaml)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    """memskill: prepare data, build caches, train the skill controller, evolve the skill bank, evaluate."""
    if version:
        typer.echo(__version__)
        raise typer.Exit()
    ctx.obj = AppState(params=params, quiet=quiet)


def main() -> None:
    """Console entry point: typed errors become a one-line message (secrets redacted) and an exit code; an
    interrupted command exits 130 and says that what it finished is kept."""
    try:
        code = app(standalone_mode=False)
    except MemskillError as exc:
        typer.secho(f"error: {' '.join(secrets.redact(str(exc)).split())}", fg="red", err=True)  # one line
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        code = 130
    except __import__("click").ClickException as exc:
        exc.show()
        sys.exit(2)
    if code == 130:
        typer.echo("interrupted: everything finished so far is kept; run the same command again to go on", err=True)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
