"""MLflow tracking for the stages: one experiment per dataset, a parent run per pipeline run
(`MEMSKILL_PIPELINE_ID`, set by `make demo`), a run per stage under it with params, metrics per step, LLM usage
per role and the stage's files as artifacts. The core never imports this; secrets never reach it."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from memskill_cli import secrets
from memskill_cli.config import Settings

PIPELINE_ENV = "MEMSKILL_PIPELINE_ID"
Steps = Iterable[tuple[int | None, dict[str, float]]]


def flatten(data: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(data, dict):
        out: dict[str, str] = {}
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): secrets.redact(str(data))[:500]}


def _experiment(mlflow: Any, settings: Settings, dataset: str) -> str:
    name = f"memskill-{dataset}"
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    return mlflow.create_experiment(name, artifact_location=Path(settings.mlflow.artifact_root).resolve().as_uri())


def _parent_run(client: Any, experiment_id: str) -> str | None:
    pipeline = os.environ.get(PIPELINE_ENV)
    if not pipeline:
        return None
    found = client.search_runs([experiment_id], f"tags.`memskill.pipeline_id` = '{pipeline}'"
                                                " and tags.`memskill.kind` = 'pipeline'", max_results=1)
    if found:
        return found[0].info.run_id
    run = client.create_run(experiment_id, run_name=f"pipeline {pipeline}",
                            tags={"memskill.pipeline_id": pipeline, "memskill.kind": "pipeline"})
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def record_stage(settings: Settings, stage: str, dataset: str, steps: Steps = (),
                 usage: dict[str, dict[str, float]] | None = None, artifacts: Iterable[Path] = ()) -> str | None:
    """Log one finished stage; returns its run id (None when tracking is off)."""
    if not settings.mlflow.enabled:
        return None
    import mlflow
    from mlflow.tracking import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(settings.mlflow.tracking_uri)
    experiment_id = _experiment(mlflow, settings, dataset)
    parent = _parent_run(MlflowClient(), experiment_id)
    tags = {"memskill.stage": stage, "memskill.kind": "stage", PIPELINE_ENV: os.environ.get(PIPELINE_ENV, "")}
    with mlflow.start_run(experiment_id=experiment_id, run_name=stage, parent_run_id=parent, tags=tags) as run:
        params = flatten(settings.model_dump(mode="json"))
        for start in range(0, len(params), 100):
            mlflow.log_params(dict(list(params.items())[start:start + 100]))
        for step, metrics in steps:
            clean = {k.replace("/", "."): float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
            if clean:
                mlflow.log_metrics(clean, step=step)
        for role, counters in (usage or {}).items():
            mlflow.log_metrics({f"llm.{role}.{name}": float(value) for name, value in counters.items()})
        for path in artifacts:
            if path.is_dir():
                mlflow.log_artifacts(str(path), artifact_path=path.name)
            elif path.exists():
                mlflow.log_artifact(str(path))
        return run.info.run_id


QUALITY_FIGURES = ("truncation_rate", "verbatim_copy_rate", "completion_tokens_per_span", "memories_per_span")


def train_steps(history: list[dict[str, Any]]) -> Steps:
    keys = ("reward_mean", "reward_min", "reward_max", "policy_loss", "value_loss", "approx_kl", "clip_fraction",
            "entropy", "explained_variance", "episodes_seconds", "ppo_seconds")
    for record in history:
        metrics = {k: record[k] for k in keys if k in record}
        metrics.update({f"skill_usage.{name}": n for name, n in record.get("skill_usage", {}).items()})
        metrics["parse_failures"] = sum(e.get("parse_failures", 0) for e in record.get("episodes", []))
        for name in QUALITY_FIGURES:  # memory build quality, averaged over the update's episodes
            values = [e["quality"][name] for e in record.get("episodes", [])
                      if e.get("quality", {}).get(name) is not None]
            if values:
                metrics[f"quality.{name}"] = sum(values) / len(values)
        yield record["update"], metrics


def eval_steps(summary: dict[str, Any]) -> Steps:
    metrics: dict[str, float] = {}
    for method, result in summary["methods"].items():
        for name, value in result["overall"].items():  # every number the summary holds, by its own name
            metrics[f"{method}.{name}"] = value
        for category, block in result["per_category"].items():
            for name, value in block.items():
                metrics[f"{method}.{category}.{name}"] = value
        for name, value in result.get("cost", {}).items():
            metrics[f"{method}.cost.{name}"] = value
    yield None, metrics


def run_eval_metrics(run_id: str, tracking_uri: str) -> dict[str, dict[str, float]]:
    """An MLflow eval run's overall metrics per method (`<method>.<metric>`)."""
    from mlflow.tracking import MlflowClient

    out: dict[str, dict[str, float]] = {}
    for name, value in MlflowClient(tracking_uri=tracking_uri).get_run(run_id).data.metrics.items():
        method, _, metric = name.partition(".")
        if metric and "." not in metric:  # overall metrics only (per-category ones have two dots)
            out.setdefault(method, {})[metric] = value
    return out


def evolve_steps(summary: dict[str, Any]) -> Steps:
    for version in summary["versions"]:
        if version.get("score") is not None:
            yield version["version"], {"bank_score": version["score"]}
    yield None, {"best_version": summary["best_version"], "best_score": summary["best_score"] or 0.0}
