"""`memskill prepare`: an official dataset -> the normalised prepared format."""

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
    download: bool = typer.Option(False, "--download", help="LoCoMo: fetch the official file if it is not local "
                                  "(memskill makes no network call without this)."),
) -> None:
    """Normalise an official dataset into data/prepared/<dataset>/ (traces, queries, manifest).

    Examples: memskill prepare sample; memskill prepare locomo --source locomo10.json;
    memskill prepare hotpotqa --source hotpot_dev_distractor_v1.json --num-docs 50 --num-docs 100;
    memskill prepare alfworld (generates games and runs the planner expert; needs the `alfworld` extra)
    """
    from stages.prepare import prepare as run
    from stages.tracking import record_stage

    settings = state(ctx).settings({
        "prepare.source": str(source) if source else None,
        "prepare.splits_file": str(splits_file) if splits_file else None,
        "prepare.num_docs": num_docs or None,
        "prepare.seed": seed,
        "prepare.download": download or None,
    })
    for result in run(dataset, settings, out):
        m = result.manifest
        counts = {f"traces.{split}": n for split, n in m["traces_per_split"].items()}
        counts.update({f"queries.{split}.{category}": n for split, cats in m["queries_per_split_and_category"].items()
                       for category, n in cats.items()})
        record_stage(settings, "prepare", result.name, [(None, counts)], artifacts=[result.path / "manifest.json"])
        counts = {split: sum(c.values()) for split, c in m["queries_per_split_and_category"].items()}
        state(ctx).console.print(f"[green]prepared[/green] {result.name} -> {result.path}: "
                                 f"traces {m['traces_per_split']}, queries {counts}")
        typer.echo(json.dumps({"dataset": result.name, "path": str(result.path)}))
