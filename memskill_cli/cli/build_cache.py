"""`memskill build-cache`: spans and embeddings, built once for training and evaluation."""

from __future__ import annotations

import json

import typer

from memskill_cli.cli.state import state


def build_cache(
    ctx: typer.Context,
    dataset: str | None = typer.Argument(None, help="Prepared dataset name (default: params `dataset`)."),
    mode: str | None = typer.Option(
        None, help="Span mode: turn | turn-pair | full-session | fixed-length | trajectory."),
    max_tokens: int | None = typer.Option(None, help="Token budget of fixed-length spans."),
    overlap: int | None = typer.Option(None, help="Overlap tokens between fixed-length spans."),
) -> None:
    """Cut prepared traces into spans and embed spans and queries once, into artifacts/cache/.

    Example: memskill build-cache locomo --max-tokens 512
    """
    from stages.build_cache import build_cache as run
    from stages.tracking import record_stage

    settings = state(ctx).settings({"spans.mode": mode, "spans.max_tokens": max_tokens, "spans.overlap": overlap})
    name = dataset or settings.dataset
    with state(ctx).console.status(f"building spans and embeddings for {name}..."):
        info = run(name, settings)
    record_stage(settings, "build-cache", name, [(None, {"spans": info.spans, "queries": info.queries,
                                                        "seconds": info.seconds, "built": int(info.built)})],
                 artifacts=[info.path / "meta.json"])
    verb = "built" if info.built else "up to date"
    state(ctx).console.print(f"[green]{verb}[/green] {info.path}: {info.spans} spans, {info.queries} queries "
                             f"({info.seconds:.1f}s)")
    typer.echo(json.dumps({"dataset": name, "key": info.key, "path": str(info.path), "built": info.built}))
