import pytest

from memskill_cli.config import ROLE_DEFAULTS, load_settings
from memskill_cli.errors import ConfigError


def test_params_env_and_overrides_in_that_order(tmp_path, monkeypatch):
    params = tmp_path / "params.yaml"
    params.write_text("dataset: locomo\nllm:\n  executor:\n    model: from-yaml\n    max_tokens: 100\n")
    monkeypatch.setenv("MEMSKILL_LLM__EXECUTOR__BACKEND", "openai")
    monkeypatch.setenv("MEMSKILL_LLM__EXECUTOR__MAX_TOKENS", "200")
    settings = load_settings(params, {"llm.executor.max_tokens": 300, "spans.mode": None})
    assert settings.dataset == "locomo"
    assert settings.llm.executor.model == "from-yaml"
    assert settings.llm.executor.backend == "openai"
    assert settings.llm.executor.max_tokens == 300
    assert settings.llm.judge.backend == "llamacpp"  # roles are independent


def test_a_role_given_in_part_keeps_its_own_defaults(tmp_path, monkeypatch):
    # An executor given only its output limit once became the generic role: the 0.5B, without DRY.
    monkeypatch.setenv("MEMSKILL_LLM__EXECUTOR__MAX_TOKENS", "1920")
    settings = load_settings(overrides={"llm.designer.n_ctx": 4096}, read_params_file=False)
    executor, designer = settings.llm.executor, settings.llm.designer
    assert (executor.model, executor.max_tokens, executor.dry_multiplier) == ("qwen2.5-coder-1.5b", 1920, 0.8)
    assert (designer.model, designer.max_tokens, designer.n_ctx) == ("qwen2.5-coder-1.5b", 1024, 4096)
    monkeypatch.delenv("MEMSKILL_LLM__EXECUTOR__MAX_TOKENS")
    params = tmp_path / "params.yaml"
    params.write_text("llm:\n  answerer:\n    backend: openai\n    model: served\n")
    answerer = load_settings(params).llm.answerer
    assert (answerer.backend, answerer.model, answerer.max_tokens) == ("openai", "served", 48)


def test_library_defaults_are_the_repository_params():
    from tests.conftest import REPO

    library, pipeline = load_settings(read_params_file=False).llm, load_settings(REPO / "params.yaml").llm
    for role in ROLE_DEFAULTS:
        assert getattr(library, role) == getattr(pipeline, role), role


def test_api_keys_are_refused_in_params(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("llm:\n  judge:\n    api_key: sk-abc\n")
    with pytest.raises(ConfigError, match=r"llm.judge.api_key"):
        load_settings(params)


def test_missing_params_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "absent.yaml")


def test_repository_params_yaml_is_valid():
    from tests.conftest import REPO

    settings = load_settings(REPO / "params.yaml")
    assert settings.llm.executor.backend == "llamacpp"


def test_old_setting_names_keep_working_with_a_warning(tmp_path, monkeypatch):
    params = tmp_path / "params.yaml"
    params.write_text("memory:\n  top_k: 2\n  exec_memory_top_k: 4\neval:\n  top_k: 5\n  mem_top_k_eval: 9\n"
                      "evolve:\n  budget: 3\n")
    with pytest.warns(FutureWarning, match=r"memory.top_k is renamed train.skills_per_span"):
        settings = load_settings(params)
    assert settings.train.skills_per_span == 2 and settings.memory.memories_shown_to_executor == 4
    assert settings.eval.skills_per_span == 5 and settings.eval.memories_per_question == 9
    assert settings.evolve.max_cases_shown == 3
    monkeypatch.setenv("MEMSKILL_EVAL__TOP_K", "6")  # an old name in the environment works too (env beats params.yaml)
    with pytest.warns(FutureWarning, match=r"eval.top_k is renamed eval.skills_per_span"):
        assert load_settings(tmp_path / "params.yaml", {"eval.memories_per_question": 11}).eval.skills_per_span == 6
