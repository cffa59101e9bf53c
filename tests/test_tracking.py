"""MLflow tracking of stage runs: a parent run per pipeline run, params without secrets, metrics, artifacts."""

import os
import subprocess
import sys

import mlflow
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import REPO


def test_stage_runs_are_nested_under_the_pipeline_run_without_secrets(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["paths"] = {"data_dir": str(tmp_path / "data"), "artifacts_dir": str(tmp_path / "artifacts")}
    params["prepare"]["source"] = str(REPO / "data/sample/sample.yaml")
    params["mlflow"] = {"enabled": True, "tracking_uri": f"sqlite:///{tmp_path}/mlflow.db",
                        "artifact_root": str(tmp_path / "mlruns")}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "MEMSKILL_PIPELINE_ID": "run-42", "OPENAI_API_KEY": "sk-top-secret-999"}
    cli = [sys.executable, "-m", "memskill_cli.cli.app", "-q", "--params", str(tmp_path / "params.yaml")]
    for args in (["prepare", "sample"], ["build-cache"]):
        result = subprocess.run(cli + args, capture_output=True, text=True, cwd=tmp_path, env=env)
        assert result.returncode == 0, result.stderr
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    client = MlflowClient()
    experiment = client.get_experiment_by_name("memskill-sample")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"pipeline run-42", "prepare", "build-cache"}
    parent = runs["pipeline run-42"].info.run_id
    for stage in ("prepare", "build-cache"):
        run = runs[stage]
        assert run.data.tags["mlflow.parentRunId"] == parent
        assert run.data.params["spans.max_tokens"] == "256"
        assert run.data.params["llm.executor.api_key_env"] == "OPENAI_API_KEY"
        assert not any("sk-top-secret" in v for v in run.data.params.values())
    assert runs["build-cache"].data.metrics["spans"] > 0
    assert runs["prepare"].data.metrics["queries.test.single-hop"] > 0
    artifacts = [a.path for a in client.list_artifacts(runs["build-cache"].info.run_id)]
    assert artifacts == ["meta.json"]
    assert (tmp_path / "mlruns").is_dir()
