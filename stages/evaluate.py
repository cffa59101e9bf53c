"""Stage `eval`: prepared data, span cache, the trained controller and the best bank ->
artifacts/eval/<dataset>/ (per-method runs, metrics.json). Params: eval, memory, the LLM roles it calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memskill_cli.components import build_components
from memskill_cli.config import Settings
from memskill_cli.data.cache import current_cache
from memskill_cli.evaluation import evaluate as run_evaluation
from memskill_cli.evaluation import load_context
from memskill_cli.progress import ProgressSink


def evaluate(dataset: str, settings: Settings, out_dir: Path, progress: ProgressSink | None = None) -> dict[str, Any]:
    artifacts = Path(settings.paths.artifacts_dir)
    cache_dir = current_cache(artifacts / "cache", dataset)
    components = build_components(settings, ("executor", "answerer", "judge"))
    context = load_context(settings, Path(settings.paths.data_dir) / "prepared" / dataset, cache_dir, components,
                           progress)
    return run_evaluation(context, settings.eval.methods, out_dir)
