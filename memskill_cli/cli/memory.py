"""`memskill memory add|search|answer`: the library API from the shell, for scripts. JSON on stdout."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer

from memskill_cli.cli.state import state

app = typer.Typer(help="Add to and search a memory store (the library API from the shell).", no_args_is_help=True)

STORE_HELP = "Memory store folder (default: <artifacts>/memory); created on first add."
FROM_HELP = ("Create the store from this export folder or MLflow run id (default: params.yaml's bank and "
             "selector).")


def _store(ctx: typer.Context, store: Path | None) -> Path:
    return store or Path(state(ctx).settings().paths.artifacts_dir) / "memory"


def _open(ctx: typer.Context, store: Path, source: str | None, must_exist: bool) -> Any:
    from memskill_cli.api import MemSkill
    from memskill_cli.errors import ConfigError, NotFoundError
    from memskill_cli.export import is_export

    if is_export(store):
        if source:
            raise ConfigError(f"the store {store} exists already; --from only creates a new one")
        return MemSkill.load(store)
    if must_exist:
        raise NotFoundError(f"no memory store at {store} (add to it first: memskill memory add)")
    return MemSkill.from_run(source) if source else MemSkill.from_config(state(ctx).settings())


def _messages(file: Path) -> tuple[list[Any], str | None]:
    """A JSON list of messages, or {"messages": [...], "session_date": ...}; `-` reads stdin."""
    from memskill_cli.errors import DataError
    from memskill_cli.fileio import read_json

    if str(file) == "-":
        try:
            data = json.loads(sys.stdin.read())
        except json.JSONDecodeError as exc:
            raise DataError(f"not JSON ({exc})", file="<stdin>") from None
    else:
        data = read_json(file)
    if isinstance(data, dict):
        return data.get("messages", []), data.get("session_date")
    return data, None


@app.command()
def add(ctx: typer.Context,
        file: Path = typer.Argument(..., help="JSON list of messages ({role, content, name?, date?}), or - for stdin."),
        user: str = typer.Option(..., "--user", "-u", help="Whose memory."),
        date: str | None = typer.Option(None, help="Session date of messages without their own."),
        store: Path | None = typer.Option(None, help=STORE_HELP),
        source: str | None = typer.Option(None, "--from", help=FROM_HELP)) -> None:
    """Add messages to a user's memory: spans, skills, executor, operations; prints what happened and its cost.

    Example: memskill memory add --user ana chat.json; memskill memory search --user ana "where does Ana live"
    """
    folder = _store(ctx, store)
    memory = _open(ctx, folder, source, must_exist=False)
    messages, file_date = _messages(file)
    result = memory.add(messages, user_id=user, session_date=date or file_date)
    memory.save(folder)
    state(ctx).console.print(f"{len(result.applied)} operations applied, {len(result.rejected)} rejected over "
                             f"{len(result.spans)} spans; {result.llm_calls} LLM calls, {result.seconds:.1f}s")
    typer.echo(json.dumps({**asdict(result), "applied": result.applied, "rejected": result.rejected,
                           "store": str(folder)}))


@app.command()
def search(ctx: typer.Context,
           query: str = typer.Argument(..., help="What to look for."),
           user: str = typer.Option(..., "--user", "-u", help="Whose memory."),
           limit: int = typer.Option(20, help="Most memories to return."),
           store: Path | None = typer.Option(None, help=STORE_HELP)) -> None:
    """The user's memories most similar to the query, with scores and the turns they cite (JSON lines)."""
    memory = _open(ctx, _store(ctx, store), None, must_exist=True)
    for hit in memory.search(query, user_id=user, limit=limit):
        typer.echo(json.dumps(asdict(hit)))


@app.command()
def answer(ctx: typer.Context,
           question: str = typer.Argument(..., help="The question."),
           user: str = typer.Option(..., "--user", "-u", help="Whose memory."),
           store: Path | None = typer.Option(None, help=STORE_HELP)) -> None:
    """Answer a question from the user's memories with the configured answerer."""
    memory = _open(ctx, _store(ctx, store), None, must_exist=True)
    typer.echo(json.dumps(asdict(memory.answer(question, user_id=user))))
