"""Bad input never dumps a traceback: each corrupt file, typo or interruption gives one line naming the file (or
setting) and the exit code that says so. The CLI runs in-process on real corrupt files."""

import json
import pickle
import shutil
import sys

import pytest
import yaml

from memskill_cli.cli.app import main
from tests.conftest import cli_in

# No LLM is called in these runs: the roles point at a closed port, so nothing loads a model.
OFFLINE_ROLES = {f"MEMSKILL_LLM__{role}__{key}": value for role in ("EXECUTOR", "ANSWERER", "JUDGE", "DESIGNER")
                 for key, value in (("BACKEND", "openai"), ("BASE_URLS", '["http://127.0.0.1:9/v1"]'))}


def memskill(monkeypatch, capsys, root, *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["memskill", "-q", "--params", str(root / "params.yaml"), *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code, capsys.readouterr().err


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A prepared and cached sample project, copied fresh for each case."""
    root = tmp_path_factory.mktemp("project")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.chdir(root)
    params = cli_in(root)[-1]
    for args in (["prepare", "sample"], ["build-cache", "sample"]):
        monkeypatch.setattr(sys, "argv", ["memskill", "-q", "--params", params, *args])
        with pytest.raises(SystemExit) as exit_info:
            main()
        assert exit_info.value.code == 0
    monkeypatch.undo()
    return root


@pytest.fixture
def workdir(project, tmp_path, monkeypatch):
    shutil.copytree(project / "data", tmp_path / "data")
    shutil.copytree(project / "artifacts", tmp_path / "artifacts")
    monkeypatch.chdir(tmp_path)
    cli_in(tmp_path)  # params.yaml with every path inside tmp_path
    for key, value in OFFLINE_ROLES.items():
        monkeypatch.setenv(key, value)
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "controller.safetensors").write_bytes(b"")
    (checkpoint / "state.json").write_text(json.dumps({"controller": {"embed_dim": 384}}))
    return tmp_path


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _wrong_shapes(root):
    import torch
    from safetensors.torch import save_file

    from memskill_cli.controller import ControllerConfig, SkillController

    small = SkillController(ControllerConfig(embed_dim=384, hidden=8, proj=4))
    save_file({k: v.contiguous() for k, v in small.state_dict().items()}, str(root / "ckpt/controller.safetensors"))
    assert torch.is_tensor(next(iter(small.state_dict().values())))


def _corrupt_training_checkpoint(root):
    target = root / "artifacts/train/sample/checkpoint"
    target.mkdir(parents=True)
    (target / "controller.safetensors").write_bytes(b"\x00" * 64)
    (target / "state.json").write_text("{}")


PREPARE_SOURCE = ["prepare", "sample", "--source", "source.yaml"]


def _source(root, split="train", turns=(("A", "hello"),)):
    """A one-conversation source in the sample format, with the given split and turns."""
    conversation = {"id": "c", "split": split, "speakers": ["A"], "questions": [],
                    "sessions": [{"date": "1 May 2024", "turns": [list(t) for t in turns]}]}
    (root / "source.yaml").write_text(yaml.safe_dump({"conversations": [conversation]}))


def _cache_file(root, suffix):
    return next((root / "artifacts/cache/sample").rglob(f"*{suffix}"))


CASES = {
    # name: (how to break the project, the command, what the message must name)
    "controller nowhere": (lambda r: None, ["eval", "sample", "--controller", "nowhere", "-m", "memskill"],
                           "nowhere"),
    "empty weights": (lambda r: None, ["eval", "sample", "--controller", "ckpt", "-m", "memskill"],
                      "controller.safetensors"),
    "pickled weights": (lambda r: (r / "ckpt/controller.safetensors").write_bytes(pickle.dumps({"w": [1.0]})),
                        ["eval", "sample", "--controller", "ckpt", "-m", "memskill"], "controller.safetensors"),
    "missing state": (lambda r: (r / "ckpt/state.json").unlink(),
                      ["eval", "sample", "--controller", "ckpt", "-m", "memskill"], "ckpt"),
    "truncated state": (lambda r: (r / "ckpt/state.json").write_text('{"controller": {"emb'),
                        ["eval", "sample", "--controller", "ckpt", "-m", "memskill"], "state.json"),
    "wrong shapes": (_wrong_shapes, ["eval", "sample", "--controller", "ckpt", "-m", "memskill"],
                     "controller.safetensors"),
    "corrupt checkpoint on resume": (_corrupt_training_checkpoint, ["train", "sample", "--resume"],
                                     "checkpoint/state.json"),
    "garbage llm cache": (lambda r: (r / "llm.sqlite").write_bytes(b"not a database at all" * 100),
                          ["eval", "sample", "-m", "no-memory"], "llm.sqlite"),
    "directory as llm cache": (lambda r: (r / "llm.sqlite").mkdir(), ["eval", "sample", "-m", "no-memory"],
                               "llm.sqlite"),
    "non-UTF-8 traces": (lambda r: (r / "data/prepared/sample/traces.jsonl").write_bytes(b'{"trace_id": "\xff"}\n'),
                         ["eval", "sample", "-m", "no-memory"], "traces.jsonl"),
    "truncated traces": (lambda r: _truncate(r / "data/prepared/sample/traces.jsonl"),
                         ["eval", "sample", "-m", "no-memory"], "traces.jsonl"),
    "corrupt span vectors": (lambda r: _truncate(_cache_file(r, ".npy")), ["eval", "sample", "-m", "no-memory"],
                             ".npy"),
    "non-UTF-8 skill bank": (lambda r: (r / "bank.yaml").write_bytes(b"skills:\n  - name: \xfe\xff\n"),
                             ["eval", "sample", "-m", "memskill", "--skill-bank", "bank.yaml"], "bank.yaml"),
    "directory as source": (lambda r: (r / "src").mkdir(), ["prepare", "locomo", "--source", "src"], "src"),
    "deeply nested source": (lambda r: (r / "deep.json").write_text("[" * 100_000 + "]" * 100_000),
                             ["prepare", "locomo", "--source", "deep.json"], "deep.json"),
    "unknown dataset": (lambda r: None, ["build-cache", "typo"], "typo"),
    "locomo not local (no download unless asked)": (lambda r: None, ["prepare", "locomo", "--source", "absent.json"],
                                                    "--download"),
    "an over-long turn": (lambda r: _source(r, turns=[["A", "word " * 50_000]]), PREPARE_SOURCE, "turn S1:1"),
    "an unknown split": (lambda r: _source(r, split="trian"), PREPARE_SOURCE, "trian"),
    "an empty session": (lambda r: _source(r, turns=[]), PREPARE_SOURCE, "empty session"),
    "empty traces": (lambda r: (r / "data/prepared/sample/traces.jsonl").write_text(""), ["build-cache", "sample"],
                     "traces.jsonl"),
    "question of an unknown trace": (lambda r: (r / "data/prepared/sample/queries.jsonl").write_text(
        (r / "data/prepared/sample/queries.jsonl").read_text().replace('"sample-03"', '"sample-99"', 1)),
        ["build-cache", "sample"], "queries.jsonl"),
    "a bank without skills": (lambda r: (r / "bank.yaml").write_text("version: 1\nskills: []\n"),
                              ["eval", "sample", "-m", "memskill", "--skill-bank", "bank.yaml"], "bank.yaml"),
    "a split with no questions": (lambda r: None, ["eval", "sample", "--split", "bogus", "-m", "no-memory"],
                                  "bogus"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gives_one_line_naming_it_and_exit_2(case, workdir, monkeypatch, capsys):
    breaking, args, named = CASES[case]
    breaking(workdir)
    code, err = memskill(monkeypatch, capsys, workdir, *args)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error:") and named in lines[0], err
    assert "Traceback" not in err


def test_params_that_are_not_a_mapping_or_not_utf8_and_a_mistyped_env_var(workdir, monkeypatch, capsys):
    params = workdir / "params.yaml"
    good = params.read_text()
    for text, named in ((b"- just\n- a list\n", "must be a mapping"), (b"eval:\n  split: \xff\n", "not UTF-8")):
        params.write_bytes(text)
        code, err = memskill(monkeypatch, capsys, workdir, "eval", "sample")
        assert code == 2 and named in err and str(params) in err and "Traceback" not in err
    params.write_text(good)
    monkeypatch.setenv("MEMSKILL_LLM__EXECUTOR__BASE_URLS", "http://not-a-json-list")
    code, err = memskill(monkeypatch, capsys, workdir, "eval", "sample")
    assert code == 2 and "MEMSKILL_* environment" in err and "Traceback" not in err
    monkeypatch.setenv("MEMSKILL_LLM__EXECUTOR__BASE_URLS", '["http://127.0.0.1:9/v1"]')
    monkeypatch.setenv("MEMSKILL_LLM_EXECUTOR__BACKEND", "openai")  # one underscore too few
    code, err = memskill(monkeypatch, capsys, workdir, "eval", "sample")
    assert code == 2 and "MEMSKILL_LLM_EXECUTOR__BACKEND names no setting" in err


def test_ctrl_c_exits_130_and_says_what_is_kept(workdir, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("stages.evaluate.evaluate", interrupted)
    code, err = memskill(monkeypatch, capsys, workdir, "eval", "sample", "-m", "no-memory")
    assert code == 130 and "interrupted" in err and "Traceback" not in err



def test_a_killed_eval_never_leaves_the_old_summary_beside_new_results(workdir, monkeypatch, capsys):
    stale = workdir / "artifacts/eval/sample/metrics.json"
    stale.parent.mkdir(parents=True)
    stale.write_text('{"methods": {"no-memory": {"overall": {"f1": 0.129}}}}')

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("memskill_cli.evaluation.run_method", killed)
    code, _ = memskill(monkeypatch, capsys, workdir, "eval", "sample", "-m", "no-memory")
    assert code == 130 and not stale.exists()


def test_a_kill_between_the_renames_of_a_directory_swap_loses_nothing(tmp_path):
    from memskill_cli.fileio import atomic_dir, recover_dir

    target = tmp_path / "checkpoint"
    with atomic_dir(target) as tmp:
        (tmp / "state.json").write_text('{"update": 7}')
    # A kill after the old version was set aside and before the new one moved in, plus a half-written save.
    target.rename(tmp_path / ".checkpoint.old")
    (tmp_path / ".checkpoint.x1y2.tmp").mkdir()
    (tmp_path / ".checkpoint.x1y2.tmp/controller.safetensors").write_bytes(b"\0" * 1024)
    recover_dir(target)
    assert (target / "state.json").read_text() == '{"update": 7}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


def test_offline_holds_without_any_environment_variable(tmp_path):
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}
    code = "import memskill_cli, os; print(os.environ['HF_HUB_OFFLINE'], os.environ['TRANSFORMERS_OFFLINE'])"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert result.stdout.split() == ["1", "1"]


def test_openmp_threads_spin_a_bounded_while_unless_the_user_chose(tmp_path):
    """Set on import, before llama.cpp or torch loads libgomp (bench/bench_llm.py shows the speed it buys)."""
    import os
    import subprocess

    code = ("import memskill_cli, os; print(os.environ['OMP_WAIT_POLICY'], os.environ['GOMP_SPINCOUNT'], "
            "'libgomp' in open('/proc/self/maps').read())")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert result.stdout.split() == ["ACTIVE", "1000000", "False"]
    result = subprocess.run([sys.executable, "-c", code], env=env | {"OMP_WAIT_POLICY": "PASSIVE"},
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.stdout.split()[:2] == ["PASSIVE", "1000000"]


def test_artifacts_get_the_usual_modes_under_the_umask(tmp_path):
    from memskill_cli import fileio

    for umask, file_mode, dir_mode in ((0o022, 0o644, 0o755), (0o077, 0o600, 0o700)):
        fileio._UMASK = umask  # as read at import under that umask
        fileio.write_text(tmp_path / "a.txt", "x")
        with fileio.atomic_dir(tmp_path / "d") as tmp:
            (tmp / "f").write_text("y")
        assert (tmp_path / "a.txt").stat().st_mode & 0o777 == file_mode
        assert (tmp_path / "d").stat().st_mode & 0o777 == dir_mode
    fileio._UMASK = fileio._read_umask()
