"""`dvc repro` end to end in a temporary git repo: every stage runs, a second run is a no-op, and a parameter
change re-runs only the stages downstream of it. The LLM roles use the real `openai` backend against a
scripted OpenAI-compatible server on 127.0.0.1."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from memskill_cli.skills import SkillBank
from tests.conftest import REPO
from tests.fake_openai import FakeOpenAIServer, completion
from tests.test_eval import answer_script
from tests.test_train import picky_executor, store_all_designer

STAGES = ["prepare", "build-cache", "train", "evolve", "eval", "report"]


def scripted_llm(body, auth):
    request = SimpleNamespace(messages=body["messages"])
    first = body["messages"][0]["content"]
    if "long-term memory" in first:
        return completion(picky_executor(request))
    if "Grade a predicted answer" in first:
        return completion('{"explanation": "close enough", "score": 1}')
    if "improve the memory skills" in first or "Current skills" in first:
        return completion(store_all_designer(request))
    return completion(answer_script(request))


def run(cmd, cwd, env):
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def run_json(cmd, cwd, env):
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def ran(output):
    return [stage for stage in STAGES if f"Running stage '{stage}'" in output]


def make_project(tmp_path: Path, **overrides: dict) -> tuple[Path, dict]:
    """A copy of the project (code, sample data, dvc.yaml) with a small params.yaml, as a fresh clone has it."""
    repo = tmp_path / "project"
    repo.mkdir()
    for name in ("memskill_cli", "stages"):
        shutil.copytree(REPO / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "data/sample", repo / "data/sample")
    shutil.copy(REPO / "dvc.yaml", repo / "dvc.yaml")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"].update({"updates": 1, "episodes_per_update": 1, "queries_per_trace": 2})
    params["eval"]["methods"] = ["memskill", "no-memory"]
    for section, values in overrides.items():
        params[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return repo, params


def test_dvc_repro_runs_all_then_nothing_then_only_downstream(tmp_path):
    repo, params = make_project(tmp_path, spans={"max_tokens": 64})  # a turn or two per span: all are stored
    bin_dir = str(Path(sys.executable).parent)
    with FakeOpenAIServer(scripted_llm) as server:
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "OPENAI_API_KEY": "sk-pipeline-secret",
               "MEMSKILL_PIPELINE_ID": "test-pipeline", "CI": "1"}
        for role in ("executor", "answerer", "judge", "designer"):
            env[f"MEMSKILL_LLM__{role.upper()}__BACKEND"] = "openai"
            env[f"MEMSKILL_LLM__{role.upper()}__BASE_URLS"] = json.dumps([server.url])
            env[f"MEMSKILL_LLM__{role.upper()}__MODEL"] = "scripted"
        run(["git", "init", "-q"], repo, env)
        run([f"{bin_dir}/dvc", "init", "-q"], repo, env)
        first = run([f"{bin_dir}/dvc", "repro"], repo, env)
        assert ran(first) == STAGES
        assert ran(run([f"{bin_dir}/dvc", "repro"], repo, env)) == []
        params["eval"]["methods"] = ["memskill", "raw-rag"]
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        assert ran(run([f"{bin_dir}/dvc", "repro"], repo, env)) == ["eval", "report"]
        # Metrics and plots are declared, so DVC reads them.
        metrics = run_json([f"{bin_dir}/dvc", "metrics", "show", "--json"], repo, env)
        files = {path for entry in metrics.values() for path in entry.get("data", {})}
        assert {"artifacts/train/sample/metrics.json", "artifacts/evolve/sample/metrics.json",
                "artifacts/eval/sample/metrics.json"} <= files
        plots = run([f"{bin_dir}/dvc", "plots", "show", "--json"], repo, env)
        assert "training.csv" in plots and "timeline.csv" in plots
        # Editing code marks exactly the stages that run it: the executor is in train, evolve and eval, not in
        # prepare, build-cache or report (which reruns only if their outputs change).
        with (repo / "memskill_cli/executor.py").open("a") as f:
            f.write("\n# an edit\n")
        stale = set(run_json([f"{bin_dir}/dvc", "status", "--json"], repo, env))
        assert stale == {"train", "evolve", "eval"}
    summary = json.loads((repo / "artifacts/eval/sample/metrics.json").read_text())
    assert set(summary["methods"]) == {"memskill", "raw-rag"}
    # Evaluation ran the bank evolve kept (its new skill's gain was significant) with the trained controller.
    evolution = json.loads((repo / "artifacts/evolve/sample/state.json").read_text())
    assert [v["status"] for v in evolution["versions"]] == ["kept", "best"]
    best = SkillBank.load(repo / "artifacts/evolve/sample/best_bank.yaml")
    assert "store-all" in best.names and summary["methods"]["memskill"]["skill_bank"] == best.hash
    assert summary["methods"]["memskill"]["selector"].startswith("controller-")
    assert summary["methods"]["memskill"]["overall"]["f1"] > 0  # only the evolved skill stores anything
    assert (repo / "artifacts/report/sample/report.html").exists()
    assert (repo / "artifacts/train/sample/checkpoint/controller.safetensors").exists()
    # MLflow: one pipeline parent with the stage runs under it, and no secret anywhere in the store.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{repo}/mlflow.db")
    experiment = client.get_experiment_by_name("memskill-sample")
    runs = client.search_runs([experiment.experiment_id])
    [parent] = [r for r in runs if r.data.tags.get("memskill.kind") == "pipeline"]
    stages = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert {r.info.run_name for r in stages} == set(STAGES)
    assert b"sk-pipeline-secret" not in (repo / "mlflow.db").read_bytes()
    for path in (repo / "mlruns").rglob("*"):
        if path.is_file() and path.stat().st_size < 5_000_000:
            assert b"sk-pipeline-secret" not in path.read_bytes(), path


@pytest.mark.llm
def test_quickstart_pipeline_with_the_embedded_model(tmp_path):
    """The README's main job (`dvc repro` on the embedded defaults), bounded: fewer questions and updates."""
    repo, _ = make_project(tmp_path, eval={"max_queries": 4, "judge": False}, evolve={"max_cases_shown": 3})
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "MEMSKILL_PIPELINE_ID": "quickstart", "CI": "1"}
    run(["git", "init", "-q"], repo, env)
    run([f"{bin_dir}/dvc", "init", "-q"], repo, env)
    assert ran(run([f"{bin_dir}/dvc", "repro"], repo, env)) == STAGES
    summary = json.loads((repo / "artifacts/eval/sample/metrics.json").read_text())
    assert summary["methods"]["memskill"]["cost"]["executor_calls"] > 0
    assert summary["llm_usage"]["executor"]["prompt_tokens"] > 0
    assert (repo / "artifacts/report/sample/report.html").exists()
