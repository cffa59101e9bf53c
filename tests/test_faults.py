"""Fault injection: train (parallel episodes), evolve and eval against an OpenAI-compatible endpoint on 127.0.0.1
that fails a fifth of its requests. Transient faults (429, 5xx, Retry-After far too long, a proxy's HTML page,
a 200 that is no completion, hangs past the timeout) must change nothing: results are identical to a clean run.
Hostile replies (deep nesting, huge strings, wrong types, invented references, prose, HTML, 10,000 operations)
must crash nothing. A permanent failure ends the run with one line, after a bounded number of requests."""

import hashlib
import json
import random
import shutil
import sys
import threading
import time

import pytest

from memskill_cli.cli.app import main
from tests.conftest import cli_in
from tests.fake_openai import FakeOpenAIServer, completion
from tests.test_pipeline_dvc import scripted_llm

TRANSIENT = [
    (429, {"retry-after": "0"}, {"error": "rate limited"}),
    (500, {}, {"error": "boom"}),
    (502, {}, {"error": "bad gateway"}),
    (503, {"retry-after": "3600"}, {"error": "come back in an hour"}),  # capped at max_backoff_s
    (503, {"retry-after": "inf"}, {"error": "never"}),
    (200, {}, "<html><body><h1>502 Bad Gateway</h1></body></html>"),
    (200, {}, {"id": "chatcmpl-1", "object": "error"}),
    "hang",
]
HOSTILE = [
    "[" * 5000 + "]" * 5000,
    '{"operations": ' + "[" * 3000 + "]" * 3000 + "}",
    "x" * 2_000_000,
    '{"operations": "all of them"}',
    '{"operations": [1, null, "INSERT", {"action": 7}]}',
    '{"operations": [{"action": "UPDATE", "ref": 999, "turns": [42], "content": "invented"}]}',
    "I am sorry, but I cannot help with storing memories today.",
    "<!DOCTYPE html><html><body>Service Unavailable</body></html>",
    json.dumps({"operations": [{"action": "INSERT", "turns": [1], "content": f"fact {i}"} for i in range(10_000)]}),
    '{"edits": [{"op": "add", "skill": "x", "actions": [["INSERT"]], "description": 5, "instructions": []}]}',
    '{"score": "very", "explanation": ["no"]}',
    '{"patterns": {"not": "a list"}, "recommendations": 3}',
]


class Faulty:
    """The scripted LLM behind a seeded fault mix: each request fails with probability `rate`."""

    def __init__(self, rate: float, faults: list, seed: int = 0, hostile: bool = False) -> None:
        self.rate, self.faults, self.hostile = rate, faults, hostile
        self.random, self.lock, self.injected = random.Random(seed), threading.Lock(), 0

    def __call__(self, body, auth):
        with self.lock:
            fault = self.faults[self.random.randrange(len(self.faults))] if self.random.random() < self.rate else None
            self.injected += fault is not None
        if fault is None:
            return scripted_llm(body, auth)
        if self.hostile:
            return completion(fault)
        if fault == "hang":
            time.sleep(0.6)  # past the 0.3 s timeout: the client gives up on it and retries
            return scripted_llm(body, auth)
        return fault


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("prepared")
    run_cli(root, ["prepare", "sample"], ["build-cache", "sample"])
    return root


def run_cli(root, *commands, env=None, expect=0) -> None:
    """Run memskill commands in-process in `root` (params.yaml there), each expected to exit with `expect`."""
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.chdir(root)
    cli_in(root, train={"updates": 1, "episodes_per_update": 2, "workers": 2, "evolve_every": 0},
           eval={"methods": ["memskill", "no-memory", "raw-rag"], "judge": True}, evolve={"max_cases_shown": 3})
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    try:
        for args in commands:
            monkeypatch.setattr(sys, "argv", ["memskill", "-q", "--params", str(root / "params.yaml"), *args])
            with pytest.raises(SystemExit) as exit_info:
                main()
            assert exit_info.value.code == expect, args
    finally:
        monkeypatch.undo()


def endpoint_env(url: str, retries: int = 8, timeout_s: float = 0.3) -> dict[str, str]:
    env = {}
    for role in ("EXECUTOR", "ANSWERER", "JUDGE", "DESIGNER"):
        env.update({f"MEMSKILL_LLM__{role}__BACKEND": "openai", f"MEMSKILL_LLM__{role}__BASE_URLS": json.dumps([url]),
                    f"MEMSKILL_LLM__{role}__MODEL": "scripted", f"MEMSKILL_LLM__{role}__TIMEOUT_S": str(timeout_s),
                    f"MEMSKILL_LLM__{role}__MAX_RETRIES": str(retries),
                    f"MEMSKILL_LLM__{role}__BACKOFF_S": "0.001", f"MEMSKILL_LLM__{role}__MAX_BACKOFF_S": "0.01"})
    return env


def pipeline(prepared, root, behaviour, timeout_s: float = 0.3) -> dict:
    """train -> evolve -> eval against `behaviour`; what each produced, for comparison."""
    shutil.copytree(prepared / "data", root / "data")
    shutil.copytree(prepared / "artifacts", root / "artifacts")
    with FakeOpenAIServer(behaviour) as server:
        run_cli(root, ["train", "sample"], ["evolve", "sample"],
                ["eval", "sample", "--controller", "artifacts/train/sample/checkpoint",
                 "--skill-bank", "artifacts/evolve/sample/best_bank.yaml"],
                env=endpoint_env(server.url, timeout_s=timeout_s))
    artifacts = root / "artifacts"
    history = [json.loads(line) for line in (artifacts / "train/sample/history.jsonl").read_text().splitlines()]
    evolution = json.loads((artifacts / "evolve/sample/state.json").read_text())
    summary = json.loads((artifacts / "eval/sample/metrics.json").read_text())
    return {
        "rewards": [h["reward_mean"] for h in history],
        "controller": hashlib.sha256((artifacts / "train/sample/checkpoint/controller.safetensors").read_bytes())
        .hexdigest(),
        "versions": [(v["version"], v["score"], v["status"]) for v in evolution["versions"]],
        "best_bank": (artifacts / "evolve/sample/best_bank.yaml").read_text(),
        "eval": {m: r["overall"] for m, r in summary["methods"].items()},
        "predictions": {m: [(row["query_id"], row["prediction"]) for row in map(json.loads, (
            artifacts / f"eval/sample/runs/{m}/predictions.jsonl").read_text().splitlines())]
            for m in summary["methods"]},
        "usage": summary["llm_usage"],
    }


def test_transient_faults_change_nothing(prepared, tmp_path):
    # The clean run waits long enough never to retry, however loaded the machine (0.3 s once timed out beside a
    # llama.cpp build); the faulty run's short timeout turns its hung requests into retries.
    clean = pipeline(prepared, tmp_path / "clean", scripted_llm, timeout_s=30.0)
    faulty_endpoint = Faulty(0.2, TRANSIENT, seed=1)
    faulty = pipeline(prepared, tmp_path / "faulty", faulty_endpoint)
    assert faulty_endpoint.injected >= 10
    for key in ("rewards", "controller", "versions", "best_bank", "eval", "predictions"):
        assert faulty[key] == clean[key], key
    # The ledger saw the retries: every role's calls are the same, its retries are not.
    retries = sum(role.get("retries", 0) for role in faulty["usage"].values())
    assert retries > 0 and sum(role.get("retries", 0) for role in clean["usage"].values()) == 0


def test_hostile_replies_crash_nothing(prepared, tmp_path):
    hostile = Faulty(0.2, HOSTILE, seed=2, hostile=True)
    result = pipeline(prepared, tmp_path / "hostile", hostile)
    assert hostile.injected >= 10
    assert set(result["eval"]) == {"memskill", "no-memory", "raw-rag"}
    memories = json.loads((tmp_path / "hostile/artifacts/eval/sample/runs/memskill/memories.json").read_text())
    records = [r for m in memories.values() for r in m["records"]]
    assert all(len(r["raw_output"]) <= 16 * 384 for r in records)  # bounded: nothing stores megabytes


@pytest.mark.parametrize("status, message", [(401, "HTTP 401"), (503, "gave up after 3 attempts")])
def test_a_permanent_failure_ends_the_run_with_one_line(prepared, tmp_path, capsys, status, message):
    root = tmp_path / "permanent"
    shutil.copytree(prepared / "data", root / "data")
    shutil.copytree(prepared / "artifacts", root / "artifacts")
    with FakeOpenAIServer(lambda body, auth: (status, {}, {"error": "no"})) as server:
        env = {**endpoint_env(server.url, retries=2), "MEMSKILL_LLM__ANSWERER__MAX_CONCURRENCY": "1"}
        run_cli(root, ["eval", "sample", "-m", "no-memory"], env=env, expect=1)
        assert len(server.seen) == (1 if status == 401 else 3)   # the first question's attempts, nothing after
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in lines[0]
