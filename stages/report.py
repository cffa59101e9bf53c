"""Stage `report`: eval, train and evolve outputs -> artifacts/report/<dataset>/ (report.md, report.html, PNGs);
and the comparison of two eval runs, each an output directory or an MLflow run id."""

from __future__ import annotations

from pathlib import Path

from memskill_cli.config import Settings
from memskill_cli.report import RunMetrics, build_report, compare_table, eval_dir_metrics
from stages.tracking import run_eval_metrics


def report(dataset: str, settings: Settings, out_dir: Path) -> Path:
    return build_report(dataset, Path(settings.paths.artifacts_dir), out_dir)


def _load(reference: str, tracking_uri: str) -> RunMetrics:
    path = Path(reference)
    return eval_dir_metrics(path) if path.exists() else run_eval_metrics(reference, tracking_uri)


def compare(run_a: str, run_b: str, tracking_uri: str) -> str:
    return compare_table(_load(run_a, tracking_uri), _load(run_b, tracking_uri))
