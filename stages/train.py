"""Stage `train`: the prepared data and span cache -> artifacts/train/<dataset>/ (checkpoint, history, bank,
metrics, plots). Params: train, memory, evolve, the LLM roles it calls, eval's retrieval and categories."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memskill_cli.components import Components, build_components
from memskill_cli.config import Settings
from memskill_cli.data.cache import current_cache
from memskill_cli.errors import ConfigError
from memskill_cli.evaluation import load_context
from memskill_cli.fileio import write_csv
from memskill_cli.learning import evolution_hook, make_trainer
from memskill_cli.learning import train as run_training
from memskill_cli.progress import ProgressSink

PLOT_COLUMNS = ("update", "reward_mean", "reward_min", "reward_max", "policy_loss", "value_loss", "entropy",
                "approx_kl")


@dataclass
class TrainResult:
    summary: dict[str, Any]
    history: list[dict[str, Any]]
    components: Components


def train(dataset: str, settings: Settings, out_dir: Path, resume: bool,
          progress: ProgressSink | None = None) -> TrainResult:
    if dataset.startswith("hotpotqa"):
        raise ConfigError("HotpotQA has no training split: train on LoCoMo or LongMemEval and evaluate the "
                          f"controller on {dataset} (`memskill eval {dataset} --controller ...`)")
    artifacts = Path(settings.paths.artifacts_dir)
    prepared, cache = Path(settings.paths.data_dir) / "prepared" / dataset, current_cache(artifacts / "cache", dataset)
    alternate = settings.train.evolve_every > 0
    components = build_components(settings, ("executor", "answerer", "designer") if alternate
                                  else ("executor", "answerer"))
    trainer = make_trainer(settings, prepared, cache, components)
    hook = None
    if alternate:  # evolution cycles between PPO phases, scored on the validation split
        scoring = settings.model_copy(update={"eval": settings.eval.model_copy(
            update={"split": "validation", "judge": False})})
        context = load_context(scoring, prepared, cache, components, progress)
        hook = evolution_hook(scoring, context, components.clients["designer"], out_dir / "evolution")
    for stale in (out_dir / "metrics.json", out_dir / "plots" / "training.csv"):  # never beside a newer checkpoint
        stale.unlink(missing_ok=True)
    summary = run_training(settings, trainer, out_dir, components.ledger, resume, progress, hook)
    write_csv(out_dir / "plots" / "training.csv", PLOT_COLUMNS,
              ([record.get(c) for c in PLOT_COLUMNS] for record in trainer.history))
    return TrainResult(summary, trainer.history, components)
