"""memskill: learn and evolve memory skills for LLM agents.

Offline by default: the Hugging Face libraries are told so before anything imports them, so a model name that
is not local fails with a clear message instead of a network lookup (set HF_HUB_OFFLINE=0 to opt in)."""

import os

for _name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_name, "1")

__version__ = "0.1.0"

#: The library API (`from memskill_cli import MemSkill`), imported on first use so the CLI starts fast.
_API = ("MemSkill", "AddResult", "Answer", "HistoryEntry", "SearchHit", "SpanOutcome")
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> object:
    if name in _API:  # imported by name: pipeline stages import this package but never run the library API
        import importlib

        return getattr(importlib.import_module("memskill_cli.api"), name)
    raise AttributeError(f"module 'memskill_cli' has no attribute {name!r}")
