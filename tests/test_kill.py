"""kill -9 in the middle of real `memskill` processes (scripted endpoint on 127.0.0.1): a resumed training ends
byte-identical to an uninterrupted one, and a killed evaluation leaves no summary for `memskill report` to
trust beside results it does not describe."""

import hashlib
import json
import os
import signal
import subprocess
import time

from tests.conftest import cli_in
from tests.fake_openai import FakeOpenAIServer
from tests.test_faults import endpoint_env
from tests.test_pipeline_dvc import scripted_llm


def start(cli, args, cwd, env):
    return subprocess.Popen(cli + args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(cli, args, cwd, env) -> subprocess.CompletedProcess:
    result = subprocess.run(cli + args, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result


def kill_when(process, ready, timeout=120.0) -> None:
    """SIGKILL `process` as soon as `ready()` holds (it must not have finished by then)."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "the process never reached the kill point"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def project(root, **overrides):
    cli = cli_in(root, train={"updates": 3, "episodes_per_update": 2, "workers": 2, "evolve_every": 0},
                 eval={"methods": ["no-memory", "raw-rag", "memskill"], "judge": False}, **overrides)
    return cli


def update_of(checkpoint) -> int:
    try:
        return json.loads((checkpoint / "state.json").read_text())["update"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return 0


def test_kill_9_mid_training_then_resume_ends_byte_identical(tmp_path):
    with FakeOpenAIServer(scripted_llm, latency_s=0.1) as server:
        env = {**os.environ, **endpoint_env(server.url, timeout_s=10)}
        runs = {}
        for name in ("whole", "killed"):
            root = tmp_path / name
            root.mkdir()
            cli = project(root)
            finish(cli, ["prepare", "sample"], root, env)
            finish(cli, ["build-cache", "sample"], root, env)
            checkpoint = root / "artifacts/train/sample/checkpoint"
            if name == "killed":
                kill_when(start(cli, ["train", "sample"], root, env), lambda c=checkpoint: update_of(c) >= 1)
                assert not (root / "artifacts/train/sample/metrics.json").exists()
                resumed = json.loads(finish(cli, ["train", "sample", "--resume"], root, env).stdout.splitlines()[-1])
                assert resumed["resumed_from"] >= 1
            else:
                finish(cli, ["train", "sample"], root, env)
            runs[name] = hashlib.sha256((checkpoint / "controller.safetensors").read_bytes()).hexdigest()
            assert update_of(checkpoint) == 3
            assert not [p for p in checkpoint.parent.iterdir() if p.name.endswith((".tmp", ".old"))]
    assert runs["killed"] == runs["whole"]


def test_kill_9_mid_evaluation_leaves_nothing_stale_to_report(tmp_path):
    with FakeOpenAIServer(scripted_llm, latency_s=0.5) as server:
        env = {**os.environ, **endpoint_env(server.url, timeout_s=10)}
        cli = project(tmp_path)
        for args in (["prepare", "sample"], ["build-cache", "sample"], ["eval", "sample", "--max-queries", "3"]):
            finish(cli, args, tmp_path, env)
        out = tmp_path / "artifacts/eval/sample"
        before = json.loads((out / "metrics.json").read_text())
        first = out / "runs/no-memory/metrics.json"
        started = first.stat().st_mtime
        # Killed once its first method is rewritten: the others still hold the previous run's results.
        kill_when(start(cli, ["eval", "sample", "--max-queries", "4"], tmp_path, env),
                  lambda: first.exists() and first.stat().st_mtime > started)
        assert not (out / "metrics.json").exists()  # the old summary went before any method ran
        report = subprocess.run([*cli, "report", "sample"], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert report.returncode == 2 and "run `memskill eval` first" in report.stderr
        finish(cli, ["eval", "sample", "--max-queries", "3"], tmp_path, env)
        assert json.loads((out / "metrics.json").read_text())["methods"] == before["methods"]
