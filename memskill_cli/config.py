"""Typed settings: `params.yaml` is the single source, then `MEMSKILL_*` env vars, then CLI flags.

Nested keys use `__` in environment variables, e.g. `MEMSKILL_LLM__EXECUTOR__BACKEND=openai`.
API keys never live here: a role names the environment variable or file that holds them.
"""

from __future__ import annotations

import contextvars
import os
import warnings
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    YamlConfigSettingsSource,
)

from memskill_cli.errors import ConfigError

DEFAULT_PARAMS = Path("params.yaml")
_params_file: contextvars.ContextVar[Path | None] = contextvars.ContextVar("params_file", default=None)


# Old setting names (section, key) -> new ones; accepted with a warning until the next release.
RENAMED: dict[tuple[str, str], tuple[str, str]] = {
    ("memory", "top_k"): ("train", "skills_per_span"),
    ("eval", "top_k"): ("eval", "skills_per_span"),
    ("memory", "exec_memory_top_k"): ("memory", "memories_shown_to_executor"),
    ("eval", "mem_top_k_eval"): ("eval", "memories_per_question"),
    ("evolve", "budget"): ("evolve", "max_cases_shown"),
    ("eval", "full_context_tokens"): ("eval", "answer_context_tokens"),
}


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LLMRoleSettings(Section):
    """One LLM role (executor, designer, answerer, judge): its own backend, model and limits."""

    backend: Literal["llamacpp", "openai", "vllm"] = "llamacpp"
    model: str = Field("qwen2.5-coder-0.5b", description="Registry name, GGUF path, or served model id.")
    base_urls: list[str] = Field(default_factory=list, description="OpenAI-compatible endpoints (round-robin).")
    api_key_env: str = Field("OPENAI_API_KEY", description="Env var holding one key or several, comma-separated.")
    api_key_file: str | None = Field(None, description="File with one API key per line.")
    max_tokens: int = Field(512, ge=1)
    temperature: float = Field(0.0, ge=0.0)
    dry_multiplier: float = Field(0.0, ge=0.0, description="llama.cpp DRY sampling: penalise repeating a run of "
                                  "more than 2 tokens already in the prompt or the reply (0: off).")
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(6, ge=0)
    backoff_s: float = Field(0.5, ge=0, description="Retry backoff: exponential from this, with full jitter ...")
    max_backoff_s: float = Field(30.0, ge=0, description="... up to this; also the most a Retry-After may ask.")
    max_concurrency: int = Field(8, ge=1, description="Worker pool size for `map` over many requests.")
    n_ctx: int = Field(8192, ge=512, description="llama.cpp context window.")
    n_parallel: int = Field(1, ge=1, description="llama.cpp slots decoding at once.")
    threads: int | None = Field(None, description="llama.cpp threads; default: available cores.")
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1, description="vLLM only.")


#: Each role's own defaults, the same as params.yaml's, so the library builds what the pipeline builds. A role given
#: in part (an override, a MEMSKILL_* variable, a short params file) keeps them for the keys it leaves out: an
#: executor given only `max_tokens` stays the 1.5B with DRY, not LLMRoleSettings' generic 0.5B without it.
ROLE_DEFAULTS: dict[str, dict[str, Any]] = {
    # models.DEFAULT_EXECUTOR_MODEL (not imported: config comes first)
    "executor": {"model": "qwen2.5-coder-1.5b", "max_tokens": 640, "dry_multiplier": 0.8},
    # the 0.5B writes no valid, general edit (bench/bench_designer.py)
    "designer": {"model": "qwen2.5-coder-1.5b", "max_tokens": 1024},
    "answerer": {"max_tokens": 48},
    "judge": {"max_tokens": 96},
}


class LLMSettings(Section):
    executor: LLMRoleSettings = Field(default_factory=lambda: LLMRoleSettings(**ROLE_DEFAULTS["executor"]))
    designer: LLMRoleSettings = Field(default_factory=lambda: LLMRoleSettings(**ROLE_DEFAULTS["designer"]))
    answerer: LLMRoleSettings = Field(default_factory=lambda: LLMRoleSettings(**ROLE_DEFAULTS["answerer"]))
    judge: LLMRoleSettings = Field(default_factory=lambda: LLMRoleSettings(**ROLE_DEFAULTS["judge"]))
    cache_enabled: bool = Field(True, description="Reuse answers of deterministic (temperature 0) calls.")
    cache_path: str = Field(".cache/llm-cache.sqlite", description="SQLite response cache.")

    @model_validator(mode="before")
    @classmethod
    def _role_defaults(cls, data: Any) -> Any:
        """A role given in part is completed from its own defaults (ROLE_DEFAULTS), not the generic ones."""
        if not isinstance(data, dict):
            return data
        return {**data, **{role: {**defaults, **data[role]} for role, defaults in ROLE_DEFAULTS.items()
                           if isinstance(data.get(role), dict)}}

    def role(self, name: str) -> LLMRoleSettings:
        if name not in ROLE_DEFAULTS:
            raise ConfigError(f"unknown LLM role {name!r}")
        return getattr(self, name)


class EmbeddingSettings(Section):
    model: str = Field("all-MiniLM-L6-v2", description="Bundled default, a local path or a HF id.")
    batch_size: int = Field(64, ge=1)
    device: str = "cpu"


class SpanSettings(Section):
    mode: Literal["turn", "turn-pair", "full-session", "fixed-length", "trajectory"] = "fixed-length"
    max_tokens: int = Field(256, ge=16, description="Token budget of a fixed-length span.")
    overlap: int = Field(0, ge=0, description="Tokens of the previous span repeated (whole turns).")
    tokenizer: str = Field("all-MiniLM-L6-v2", description="Tokenizer that counts span tokens.")


class PrepareSettings(Section):
    source: str | None = Field(None, description="Official source file; default per dataset.")
    include_adversarial: bool = Field(False, description="Keep LoCoMo category 5 in train/eval.")
    include_abstention: bool = Field(False, description="Keep LongMemEval `_abs` questions.")
    splits_file: str | None = Field(None, description="LongMemEval MemSkill splits file.")
    num_docs: list[int] = Field(default_factory=lambda: [50, 100, 200], description="HotpotQA eval_N sizes.")
    seed: int = 42
    download: bool = Field(False, description=(
        "LoCoMo: fetch the official file when it is not local (the only network call memskill makes, opt-in)."))


class MemorySettings(Section):
    """How memories are built: which skills, how many, which memories the executor sees."""

    skill_bank: str | None = Field(None, description="Skill bank YAML; default: the seed bank.")
    selector: Literal["similarity", "all", "random"] = Field(
        "similarity", description="Skill selector when no trained controller is given.")
    memories_shown_to_executor: int = Field(
        3, ge=0, description="Related memories retrieved for a span and shown to the executor (by number).")
    workers: int = Field(1, ge=1, description="Traces built in parallel (spans stay sequential).")
    controller: str | None = Field(None, description="Trained controller checkpoint; else `selector` is used.")
    cache_dir: str = Field(".cache/memories", description="Built memories, keyed by all that shapes them.")


class EvalSettings(Section):
    split: str = Field("test", description="Which split's traces and queries to evaluate.")
    methods: list[str] = Field(default_factory=lambda: ["memskill", "no-memory", "static-primitives"])
    skills_per_span: int = Field(3, ge=1, description=(
        "Skills the selector picks per span at evaluation; fewer than the bank holds, so the choice matters."))
    memories_per_question: int = Field(300, ge=1, description=(
        "Most memories retrieved to answer a question; answer_context_tokens decides how many are shown (300 "
        "short facts fill the 2,000-token budget)."))
    memory_diversity: float = Field(0.2, ge=0, lt=1, description=(
        "Maximal marginal relevance when memories are retrieved to answer: the weight against a memory's "
        "similarity to those already chosen (0: similarity to the question alone)."))
    source_share: float = Field(0.7, ge=0, lt=1, description=(
        "Share of the answer budget that memory methods fill with the spans their memories were written from "
        "(memories as keys to the conversation: the facts first, then those spans); 0: memories only."))
    judge: bool = Field(True, description="Also score answers with the LLM judge.")
    answer_context_tokens: int = Field(2000, ge=64, description=(
        "Answer budget every method fills (memories, retrieved spans, history), counted with the answerer's "
        "tokenizer; with the prompt and the answer it must fit the answerer's n_ctx."))
    exclude_categories: list[str] = Field(default_factory=lambda: ["adversarial"])
    include_abstention: bool = False
    max_queries: int | None = Field(None, ge=1, description="Cap on questions (cheap smoke runs).")


class PPOSettings(Section):
    clip_coef: float = 0.2
    gamma: float = 0.99
    gae_lambda: float = 0.95
    vf_coef: float = 0.5
    ent_coef: float = 0.01
    learning_rate: float = 3e-3  # 1e-4 left the policy uniform after an update (DEVELOPERS.md)
    max_grad_norm: float = 0.5
    minibatch_size: int = 32
    update_epochs: int = 4
    target_kl: float | None = 0.02


class TrainSettings(Section):
    updates: int = Field(10, ge=1, description="PPO updates in all (a resumed run continues to this number).")
    episodes_per_update: int = Field(4, ge=1, description="Training traces per batch.")
    skills_per_span: int = Field(3, ge=1, description="Skills the controller picks per span in training episodes.")
    window_sessions: int = Field(1, ge=0, description=(
        "An episode is a window of this many consecutive sessions with every training question whose evidence "
        "lies in it (where questions cite evidence turns); 0: an episode is a whole trace."))
    queries_per_trace: int | None = Field(8, ge=1, description=(
        "Questions answered per whole-trace episode (data without evidence ids, or window_sessions 0)."))
    workers: int = Field(1, ge=1, description="Episodes run in parallel.")
    new_skill_floor: float = Field(0.3, ge=0, lt=1, description="Probability floor of new/refined skills.")
    floor_decay_updates: int = Field(5, ge=0, description="Updates over which that floor decays to nothing.")
    evolve_every: int = Field(0, ge=0, description="Run an evolution cycle every N updates (0: never).")
    reward: Literal["f1", "evidence", "coverage"] = Field("f1", description=(
        "What an episode's questions score: `f1` answers each from the memory (the paper's reward); `evidence` "
        "is the share of each question's evidence turns cited by the memories in its answer budget (no answerer "
        "call: cheaper and less noisy, where questions cite evidence turns); `coverage` is the share of the gold "
        "answer's words those memories hold (no answerer call, any data with answers, and a memory that cites "
        "the right turn but lost what it said earns nothing)."))
    shaping_penalty: float = Field(0.0, ge=0, description=(
        "Reward shaping, off at 0: subtract this times the share of executor calls whose output was "
        "unreadable or had rejected operations, so the policy learns to avoid skill sets that confuse it."))
    fusion: Literal["mean", "similarity"] = "mean"
    hidden: int = 256
    proj: int = 128
    ppo: PPOSettings = Field(default_factory=PPOSettings)


class EvolveSettings(Section):
    max_changes: int = Field(3, ge=1, description="Most skill edits per evolution cycle.")
    cycles: int = Field(1, ge=1, description="Most evolution cycles per `memskill evolve`.")
    patience: int = Field(2, ge=1, description="Stop after this many cycles without improvement.")
    fail_threshold: float = Field(0.5, description="A query fails below this F1.")
    buffer_capacity: int = Field(200, ge=1)
    expiry_steps: int = Field(50, ge=1, description="Cases older than this many training updates expire.")
    clusters: int = Field(4, ge=1, description="KMeans clusters of hard-case questions.")
    per_cluster: int = Field(2, ge=1, description="Representatives per cluster.")
    max_cases_shown: int = Field(6, ge=1, description="Most hard cases shown to the designer per cycle.")
    validation_windows: int = Field(24, ge=0, description=(
        "Validation session windows that score a bank version (those with the most questions per span), each "
        "window's memory built on its own, where questions cite evidence; 0: whole validation traces (costly on "
        "LoCoMo)."))
    max_skills: int = Field(12, ge=2, description="Most skills the bank may grow to (new skills beyond are refused).")
    confidence: float = Field(0.95, ge=0.5, lt=1, description=(
        "A new bank version replaces the best only if the lower bound of this interval of its paired "
        "per-question gain on validation is above zero (paired bootstrap); otherwise it is rolled back."))


class GamesPerTask(Section):
    """How many ALFWorld games of each task type `prepare alfworld` generates per role."""

    memory: int = Field(4, ge=1, description="Train games whose expert trajectories build the memory (batch A).")
    train: int = Field(2, ge=0, description="Train games played during training with that memory (batch B).")
    seen: int = Field(2, ge=0, description="Evaluation games in training floor plans (split `validation`).")
    unseen: int = Field(2, ge=0, description="Evaluation games in held-out floor plans (split `test`).")


class AlfworldSettings(Section):
    """The embodied benchmark: game counts, the step limit, parallel environments, the actor's view."""

    games_per_task: GamesPerTask = Field(default_factory=GamesPerTask)
    max_steps: int = Field(50, ge=1, description="Commands per game; a failure counts this many steps.")
    workers: int = Field(2, ge=1, description="Environment worker processes.")
    history_steps: int = Field(8, ge=0, description="Recent commands and feedback shown to the actor.")


class MLflowSettings(Section):
    enabled: bool = Field(True, description="Record every stage run in MLflow.")
    tracking_uri: str = Field("sqlite:///mlflow.db", description="Any MLflow tracking URI; local by default.")
    artifact_root: str = Field("mlruns", description="Where a new experiment stores its artifacts.")


class PathSettings(Section):
    data_dir: str = "data"
    artifacts_dir: str = "artifacts"


class Settings(BaseSettings):
    """Every hyperparameter of memskill; sections mirror params.yaml."""

    model_config = SettingsConfigDict(env_prefix="MEMSKILL_", env_nested_delimiter="__", extra="forbid")

    dataset: str = "sample"
    seed: int = 0
    paths: PathSettings = Field(default_factory=PathSettings)
    prepare: PrepareSettings = Field(default_factory=PrepareSettings)
    spans: SpanSettings = Field(default_factory=SpanSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    memory: MemorySettings = Field(default_factory=MemorySettings)
    eval: EvalSettings = Field(default_factory=EvalSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)
    evolve: EvolveSettings = Field(default_factory=EvolveSettings)
    alfworld: AlfworldSettings = Field(default_factory=AlfworldSettings)
    mlflow: MLflowSettings = Field(default_factory=MLflowSettings)

    @model_validator(mode="before")
    @classmethod
    def _renamed_keys(cls, data: Any) -> Any:
        """Old setting names keep working for one release, with a warning naming the new one."""
        if not isinstance(data, dict):
            return data
        for (old_section, old_key), (new_section, new_key) in RENAMED.items():
            section = data.get(old_section)
            if not isinstance(section, dict) or old_key not in section:
                continue
            section = dict(section)
            value = section.pop(old_key)
            data = {**data, old_section: section}
            warnings.warn(f"setting {old_section}.{old_key} is renamed {new_section}.{new_key}; the old name "
                          "stops working in the next release", FutureWarning, stacklevel=2)
            target = dict(data.get(new_section) or {})
            target.setdefault(new_key, value)
            data[new_section] = target
        return data

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, env_settings)
        params = _params_file.get()
        if params is not None:
            sources += (YamlConfigSettingsSource(settings_cls, yaml_file=params),)
        return sources


#: MEMSKILL_* environment variables that are not settings.
OTHER_ENV = {"MEMSKILL_PIPELINE_ID", "MEMSKILL_MODELS_DIR"}


def check_environment(environ: dict[str, str] | None = None) -> None:
    """Refuse a MEMSKILL_* variable that names no setting (a typo would otherwise be ignored in silence, and the
    run would use the value from params.yaml), as an unknown key in params.yaml is refused."""
    for name in sorted(environ if environ is not None else os.environ):
        upper = name.upper()
        if not upper.startswith("MEMSKILL_") or upper in OTHER_ENV:
            continue
        parts = upper.removeprefix("MEMSKILL_").lower().split("__")
        model: Any = Settings
        for depth, part in enumerate(parts):
            renamed = depth == 1 and (parts[0], part) in RENAMED
            if not (isinstance(model, type) and issubclass(model, BaseModel)) or renamed:
                break
            field = model.model_fields.get(part)
            if field is None:
                raise ConfigError(f"environment variable {name} names no setting ({'.'.join(parts)}): nested keys "
                                  "are joined by two underscores, e.g. MEMSKILL_LLM__EXECUTOR__BACKEND")
            model = field.annotation


def load_settings(params: str | Path | None = None, overrides: dict[str, Any] | None = None,
                  read_params_file: bool = True) -> Settings:
    """Read params.yaml (if present and `read_params_file`), apply MEMSKILL_* env vars, then `overrides`
    (dotted keys, or sections as nested mappings)."""
    path = Path(params) if params is not None else DEFAULT_PARAMS
    if params is not None and not path.exists():
        raise ConfigError(f"params file not found: {path}")
    if path.is_dir():
        raise ConfigError(f"params file {path} is a directory")
    check_environment()
    token = _params_file.set(path if read_params_file and path.exists() else None)
    try:
        return Settings(**_nest(overrides or {}))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid settings ({path}, MEMSKILL_* env): {problems}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"params file {path} is not UTF-8 text (byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"params file {path} is not valid YAML: {exc}") from None
    except SettingsError as exc:  # e.g. a list-valued env var that is not JSON
        raise ConfigError(f"invalid settings in the MEMSKILL_* environment: {exc}") from None
    except (TypeError, AttributeError, ValueError) as exc:
        raise ConfigError(f"params file {path} must be a mapping of sections to settings ({exc})") from None
    finally:
        _params_file.reset(token)


def with_overrides(settings: Settings, overrides: dict[str, Any]) -> Settings:
    """`settings` with some keys changed (dotted keys), validated like any other settings."""
    def merge(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
        return {**base, **{k: merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
                           for k, v in change.items()}}

    return load_settings(None, merge(settings.model_dump(), _nest(overrides)), read_params_file=False)


def _nest(dotted: dict[str, Any]) -> dict[str, Any]:
    """{'llm.executor.model': 'x'} -> {'llm': {'executor': {'model': 'x'}}}; None values are dropped."""
    nested: dict[str, Any] = {}
    for key, value in dotted.items():
        if value is None:
            continue
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
