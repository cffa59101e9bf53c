"""`memskill export`: a training run (its controller) and its evolution run (the best bank) -> one portable
folder the library loads (`MemSkill.from_run`), logged to MLflow as artifacts and as a pyfunc model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memskill_cli.config import Settings
from memskill_cli.errors import DataError
from memskill_cli.export import write_export
from memskill_cli.fileio import atomic_dir, read_json
from memskill_cli.selectors import check_top_k
from memskill_cli.skills import SkillBank


def export(run: str, settings: Settings, out: Path) -> tuple[dict[str, Any], str | None]:
    """RUN is a dataset name (artifacts/train/<name>, artifacts/evolve/<name>) or a training run folder.
    The bank is the evolution run's best, else the bank the training ended with. Returns the manifest and the
    MLflow run id (None when tracking is off)."""
    artifacts = Path(settings.paths.artifacts_dir)
    train_dir = Path(run) if Path(run).is_dir() else artifacts / "train" / run
    checkpoint = train_dir / "checkpoint"
    controller = checkpoint if (checkpoint / "controller.safetensors").is_file() else None
    candidates = [artifacts / "evolve" / train_dir.name / "best_bank.yaml", train_dir / "skill_bank.yaml"]
    bank_file = next((f for f in candidates if f.is_file()), None)
    if controller is None and bank_file is None:
        raise DataError(f"no trained run here (no {checkpoint}/controller.safetensors, no best bank); run "
                        "`memskill train` first", file=str(train_dir))
    bank = SkillBank.load(bank_file) if bank_file else SkillBank.seed()
    if controller is not None or settings.memory.selector != "all":
        check_top_k(settings.eval.skills_per_span, bank, "eval.skills_per_span")
    source = {"train_dir": str(train_dir), "skill_bank": str(bank_file) if bank_file else "seed"}
    with atomic_dir(out) as tmp:
        write_export(tmp, settings, bank, controller, source)
    run_id = None
    if settings.mlflow.enabled:
        from memskill_cli.mlflow_model import log_export

        run_id = log_export(out, settings.mlflow.tracking_uri)
    return read_json(out / "manifest.json"), run_id
