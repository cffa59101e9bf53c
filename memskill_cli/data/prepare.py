"""Preparing data: an official dataset file -> <out_root>/<dataset>/ in the normalised format."""

from __future__ import annotations

import collections
import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from memskill_cli import __version__
from memskill_cli.config import AlfworldSettings, PrepareSettings
from memskill_cli.data import hotpotqa, locomo, longmemeval, sample
from memskill_cli.data.schema import Query, Trace, check_turn_sizes
from memskill_cli.errors import DataError
from memskill_cli.fileio import atomic_dir, sha256_file, stable_hash, write_json, write_jsonl

DATASETS = ("sample", "locomo", "longmemeval", "hotpotqa", "alfworld")
DEFAULT_SOURCES = {
    "sample": sample.DEFAULT_SOURCE,
    "locomo": Path("data/raw/locomo10.json"),
    "longmemeval": Path("data/raw/longmemeval_s_cleaned.json"),
    "hotpotqa": Path("data/raw/hotpot_dev_distractor_v1.json"),
}


@dataclass
class Prepared:
    name: str
    path: Path
    manifest: dict


def prepare(dataset: str, settings: PrepareSettings, out_root: Path,
            alfworld_settings: AlfworldSettings | None = None, seed: int = 0) -> list[Prepared]:
    """Read, validate and normalise `dataset`; write each prepared dataset atomically under `out_root`.

    `hotpotqa` writes one dataset per `num_docs` (`hotpotqa-50`, ...); `hotpotqa-N` writes just that one, so
    a pipeline stage can name its output."""
    if (match := re.fullmatch(r"hotpotqa-(\d+)", dataset)) is not None:
        dataset, settings = "hotpotqa", settings.model_copy(update={"num_docs": [int(match.group(1))]})
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)} (or hotpotqa-N)")
    if dataset == "alfworld":
        return [_prepare_alfworld(settings, alfworld_settings or AlfworldSettings(), seed, out_root)]
    source = Path(settings.source) if settings.source else DEFAULT_SOURCES[dataset]
    if not source.exists():
        _fetch_or_explain(dataset, source, settings.download)
    if dataset == "sample":
        outputs = {"sample": sample.load(source)}
    elif dataset == "locomo":
        outputs = {"locomo": locomo.load(source)}
    elif dataset == "longmemeval":
        splits = Path(settings.splits_file) if settings.splits_file else None
        outputs = {"longmemeval": longmemeval.load(source, splits)}
    else:
        outputs = {}
        for n in settings.num_docs:
            records = (hotpotqa.build_eval_records(source, n, settings.seed)
                       if "eval_" not in source.name else _load_eval_file(source))
            outputs[f"hotpotqa-{n}"] = hotpotqa.records_to_traces(records, source)
    source_sha = sha256_file(source)
    for traces, _ in outputs.values():
        check_turn_sizes(traces, source)
    return [_write(name, traces, queries, source, source_sha, out_root) for name, (traces, queries) in outputs.items()]


def _prepare_alfworld(settings: PrepareSettings, alfworld_settings: AlfworldSettings, seed: int,
                      out_root: Path) -> Prepared:
    """Games are generated (or found) in a staging folder, played by the expert, then land with the rest."""
    from memskill_cli.data import alfworld
    from memskill_cli.embodied import requirement

    requirement()  # before anything is written
    source = Path(settings.source) if settings.source else None
    if source and not source.is_dir():
        raise DataError("expected the folder of official ALFWorld games (json_2.1.1)", file=str(source))
    out_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".alfworld.", dir=out_root))
    try:
        traces, queries, info = alfworld.load(source, alfworld_settings, seed, staging)
        digest = stable_hash({"info": info, "traces": [t.model_dump() for t in traces],
                              "queries": [q.model_dump() for q in queries]}, 64)
        return _write("alfworld", traces, queries, source or Path("generated"), digest, out_root,
                      extra={"alfworld": info}, files=staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _load_eval_file(source: Path) -> list[dict]:
    from memskill_cli.data.source import load_json

    data = load_json(source)
    if not isinstance(data, list):
        raise DataError("expected a list of eval records", file=str(source))
    return data


def _validate(traces: list[Trace], queries: list[Query], source: Path) -> None:
    trace_ids = [t.trace_id for t in traces]
    duplicates = [t for t, n in collections.Counter(trace_ids).items() if n > 1]
    if duplicates:
        raise DataError(f"duplicate trace ids {duplicates[:5]}", file=str(source), field="trace_id")
    known = set(trace_ids)
    seen: set[str] = set()
    for query in queries:
        if query.trace_id not in known:
            raise DataError(f"refers to unknown trace {query.trace_id!r}", file=str(source),
                            record=query.query_id, field="trace_id")
        if query.query_id in seen:
            raise DataError("duplicate query id", file=str(source), record=query.query_id, field="query_id")
        seen.add(query.query_id)


def _write(name: str, traces: list[Trace], queries: list[Query], source: Path, source_sha: str,
           out_root: Path, extra: dict | None = None, files: Path | None = None) -> Prepared:
    """`files`: a staging folder whose contents (e.g. game files) move into the prepared dir with it."""
    _validate(traces, queries, source)
    counts: dict[str, dict[str, int]] = collections.defaultdict(dict)
    for (split, category), n in sorted(collections.Counter((q.split, q.category) for q in queries).items()):
        counts[split][category] = n
    manifest = {
        "dataset": name,
        "source": str(source),
        "source_sha256": source_sha,
        "traces_per_split": dict(sorted(collections.Counter(t.split for t in traces).items())),
        "queries_per_split_and_category": dict(counts),
        "turns": sum(len(t.turns()) for t in traces),
        "memskill_version": __version__,
        **(extra or {}),
    }
    target = out_root / name
    with atomic_dir(target) as tmp:
        for item in sorted(files.iterdir()) if files else []:
            shutil.move(str(item), tmp / item.name)
        write_jsonl(tmp / "traces.jsonl", (t.model_dump(exclude_none=True) for t in traces))
        write_jsonl(tmp / "queries.jsonl", (q.model_dump(exclude_none=True) for q in queries))
        write_json(tmp / "manifest.json", manifest)
    return Prepared(name, target, manifest)


def _fetch_or_explain(dataset: str, source: Path, download: bool) -> None:
    """With `prepare.download` (opt-in: memskill makes no network call otherwise), LoCoMo is fetched from its
    official URL (md5-checked); else say where the file must go."""
    if dataset == "locomo" and download:
        try:
            import httpx

            response = httpx.get(locomo.OFFICIAL_URL, follow_redirects=True, timeout=10)
            response.raise_for_status()
            if hashlib.md5(response.content).hexdigest() == locomo.OFFICIAL_MD5:
                source.parent.mkdir(parents=True, exist_ok=True)
                source.write_bytes(response.content)
                return
        except Exception:
            pass
    hint = " (or `--download` to fetch it from its official URL)" if dataset == "locomo" and not download else ""
    raise DataError(f"source file not found. Put the official {dataset} file at {source} or pass --source "
                    f"PATH{hint}", file=str(source))
