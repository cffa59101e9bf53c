"""A MemSkill folder in MLflow: logged as run artifacts (so `MemSkill.from_run(run_id)` finds it) and as a pyfunc
model whose `predict` searches (so a registered version serves with `mlflow models serve`). Like the CLI, this is
the library's edge: the core never imports MLflow."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc

from memskill_cli import __version__
from memskill_cli.mlflow_runs import EXPORT_ARTIFACT

MODEL_NAME = "memskill"


class MemSkillModel(mlflow.pyfunc.PythonModel):
    """Rows of {"user_id", "query", "limit"?, "messages"?}: messages (a list) are added first, then the user's
    memories are searched; each row's answer is the list of hits (id, content, score, provenance)."""

    def load_context(self, context: Any) -> None:
        from memskill_cli.api import MemSkill

        self.memory = MemSkill.load(context.artifacts["memskill"])

    def predict(self, context, model_input, params=None):  # untyped: MLflow reads type hints as a schema
        rows = model_input.to_dict("records") if hasattr(model_input, "to_dict") else list(model_input)
        results = []
        for row in rows:
            messages = row.get("messages")
            if isinstance(messages, list) and messages:
                self.memory.add(messages, user_id=row["user_id"], session_date=row.get("session_date"))
            limit = int(row.get("limit") or 20)
            results.append([asdict(hit) for hit in self.memory.search(row["query"], user_id=row["user_id"],
                                                                     limit=limit)])
        return results


def log_export(folder: Path, tracking_uri: str, experiment: str = "memskill-exports") -> str:
    """Log the folder as run artifacts and as a pyfunc model in a new run; returns the run id."""
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=f"export {folder.name}") as run:
        mlflow.log_artifacts(str(folder), artifact_path=EXPORT_ARTIFACT)
        mlflow.pyfunc.log_model(name=MODEL_NAME, python_model=MemSkillModel(), artifacts={"memskill": str(folder)},
                                pip_requirements=[f"memskill=={__version__}"])
        return run.info.run_id
