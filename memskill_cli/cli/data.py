"""`memskill prepare` and `memskill build-cache`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from memskill_cli.cli.state import state


def prepare(
    ctx: typer.Context,
    dataset: str = typer.Argument(..., help="sample | locomo | longmemeval | hotpotqa | alfworld"),
    source: Path | None = typer.Option(None, help="Official source file (default: per dataset under data/); "
                                       "alfworld: the official games folder (default: generate games)."),
    splits_file: Path | None = typer.Option(None, help="LongMemEval: the MemSkill splits file."),
    num_docs: list[int] | None = typer.Option(None, help="HotpotQA: documents per question (repeatable)."),
    seed: int | None = typer.Option(None, help="HotpotQA: seed for distractors and shuffling."),
    out: Path | None = typer.Option(None, help="Output root (default: <data_dir>/prepared)."),
) -> None:
    """Normalise an official dataset into data/prepared/<dataset>/ (traces, queries, manifest).

    Examples: memskill prepare sample; memskill prepare locomo --source locomo10.json;
    memskill prepare hotpotqa --source hotpot_dev_distractor_v1.json --num-docs 50 --num-docs 100;
    memskill prepare alfworld (generates games and runs the planner expert; needs the `alfworld` extra)
    """
    from stages.prepare import prepare as run

    settings = state(ctx).settings({
        "prepare.source": str(source) if source else None,
        "prepare.splits_file": str(splits_file) if splits_file else None,
        "prepare.num_docs": num_docs or None,
        "prepare.seed": seed,
    })
    from stages.tracking import record_stage

    out_root = out or Path(settings.paths.data_dir) / "prepared"
    for result in run(dataset, settings.prepare, out_root, settings.alfworld, settings.seed):
        m = result.manifest
        counts = {f"traces.{split}": n for split, n in m["traces_per_split"].items()}
        counts.update({f"queries.{split}.{category}": n for split, cats in m["queries_per_split_and_category"].items()
                       for category, n in cats.items()})
        record_stage(settings, "prepare", result.name, [(None, counts)], artifacts=[result.path / "manifest.json"])
        counts = {split: sum(c.values()) for split, c in m["queries_per_split_and_category"].items()}
        state(ctx).console.print(f"[green]prepared[/green] {result.name} -> {result.path}: "
                                 f"traces {m['traces_per_split']}, queries {counts}")
        typer.echo(json.dumps({"dataset": result.name, "path": str(result.path)}))


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
    prepared = Path(settings.paths.data_dir) / "prepared" / name
    with state(ctx).console.status(f"building spans and embeddings for {name}..."):
        info = run(prepared, settings.spans, settings.embedding, Path(settings.paths.artifacts_dir) / "cache")
    record_stage(settings, "build-cache", name, [(None, {"spans": info.spans, "queries": info.queries,
                                                        "seconds": info.seconds, "built": int(info.built)})],
                 artifacts=[info.path / "meta.json"])
    verb = "built" if info.built else "up to date"
    state(ctx).console.print(f"[green]{verb}[/green] {info.path}: {info.spans} spans, {info.queries} queries "
                             f"({info.seconds:.1f}s)")
    typer.echo(json.dumps({"dataset": name, "key": info.key, "path": str(info.path), "built": info.built}))
