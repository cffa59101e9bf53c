"""Where `memskill export` puts a MemSkill folder in an MLflow run, and how the library gets it back by run id."""

from __future__ import annotations

import tempfile
from pathlib import Path

from memskill_cli.errors import NotFoundError

EXPORT_ARTIFACT = "memskill-export"


def download_export(run_id: str, tracking_uri: str) -> Path:
    """The export folder logged to an MLflow run, downloaded into a fresh temporary folder."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    target = Path(tempfile.mkdtemp(prefix=f"memskill-run-{run_id[:12]}-"))
    try:
        return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=EXPORT_ARTIFACT,
                                                        dst_path=str(target), tracking_uri=tracking_uri))
    except (MlflowException, OSError) as exc:
        raise NotFoundError(f"{run_id!r} is neither a folder nor an MLflow run with a memskill export "
                            f"(tracking URI {tracking_uri}): {str(exc)[:200]}") from None
