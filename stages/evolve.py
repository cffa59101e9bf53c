"""Stage `evolve`: a training run's hard cases, bank and controller -> artifacts/evolve/<dataset>/ (bank versions
with scores, the best bank, metrics, the timeline). Params: evolve, memory, eval (scoring), the LLM roles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memskill_cli.components import build_components
from memskill_cli.config import Settings
from memskill_cli.data.cache import current_cache
from memskill_cli.evaluation import bank_scorer, load_context, scoring_groups, version_measure
from memskill_cli.evolution.hardcases import buffer_from_training
from memskill_cli.evolution.loop import evolve as run_evolution
from memskill_cli.fileio import sha256_file, stable_hash, write_csv, write_json
from memskill_cli.learning import source_turns
from memskill_cli.progress import ProgressSink
from memskill_cli.skills import SkillBank


def evolve(dataset: str, settings: Settings, train_dir: Path, out_dir: Path,
           progress: ProgressSink | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Returns the evolution summary and the LLM usage per role."""
    artifacts = Path(settings.paths.artifacts_dir)
    checkpoint = train_dir / "checkpoint"
    trained = (checkpoint / "controller.safetensors").exists()
    # Bank versions are scored on the validation split (by training's reward where windows are scored, else F1),
    # with the trained controller when there is one.
    settings = settings.model_copy(update={
        "eval": settings.eval.model_copy(update={"split": "validation", "judge": False}),
        "memory": settings.memory.model_copy(update={"controller": str(checkpoint) if trained else None})})
    components = build_components(settings, ("executor", "answerer", "designer"))
    context = load_context(settings, Path(settings.paths.data_dir) / "prepared" / dataset,
                           current_cache(artifacts / "cache", dataset), components, progress)
    bank_file = train_dir / "skill_bank.yaml"
    initial = SkillBank.load(bank_file) if bank_file.exists() else context.skill_bank
    # a run resumes only where its versions' scores still mean the same: same bank, measure, windows and controller
    measure, groups = version_measure(context), scoring_groups(context)
    source = stable_hash({"bank": initial.hash, "scored_by": measure, "windows": sorted(set((groups or {}).values())),
                          "controller": sha256_file(checkpoint / "controller.safetensors") if trained else None})
    e = settings.evolve
    for stale in (out_dir / "metrics.json", out_dir / "timeline.csv"):  # a killed run leaves no old summary
        stale.unlink(missing_ok=True)
    summary = run_evolution(e, bank_scorer(context), source_turns(context.traces), components.encoder.encode,
                            components.clients["designer"], out_dir, initial, buffer_from_training(train_dir, e),
                            source, e.max_changes, e.cycles, settings.seed, groups=groups) | {"scored_by": measure}
    usage = components.ledger.to_dict()
    write_json(out_dir / "llm_usage.json", usage)
    write_json(out_dir / "metrics.json", {"best_version": summary["best_version"], "scored_by": measure,
                                          "best_score": summary["best_score"], "rounds": summary["rounds"],
                                          "versions": len(summary["versions"])})
    write_csv(out_dir / "timeline.csv", ("version", "score", "gain", "gain_low", "gain_high", "status"),
              ([v["version"], v["score"], *[(v["gain"] or {}).get(k) for k in ("mean", "low", "high")], v["status"]]
               for v in summary["versions"]))
    return summary, usage
