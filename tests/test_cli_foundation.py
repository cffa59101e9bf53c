
from typer.testing import CliRunner

from memskill_cli.cli.app import app

runner = CliRunner()


def test_help_lists_every_subcommand():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("prepare", "build-cache", "train", "evolve", "eval", "report", "models"):
        assert name in result.output


def test_models_list(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMSKILL_MODELS_DIR", str(tmp_path))
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 0
    assert "qwen2.5-coder-0.5b" in result.output and "6/6" in result.output
