"""memskill: learn and evolve memory skills for LLM agents.

Offline by default: the Hugging Face libraries are told so before anything imports them, so a model name that
is not local fails with a clear message instead of a network lookup (set HF_HUB_OFFLINE=0 to opt in).

OpenMP threads wait for their next piece of work by spinning (~1M rounds) before they sleep, also set before
anything loads the OpenMP runtime that llama.cpp and torch share. Under libgomp's default, a process holding two
llama.cpp models, or torch's thread pool beside one, wrote each token a third slower (33 -> 45 ms, the 1.5B on 2
cores); spinning without a bound fixes that but keeps a core busy while the process idles. Measured in
bench/bench_llm.py and DEVELOPERS.md.

MKL (torch's CPU matrix products) runs in strict conditional numerical reproducibility: a text's embedding is then
the same bits whatever else shares its batch. Without it, on AVX-512 processors MKL picks kernels by the batch's
row count and a vector moved by ~1e-7 with its batch, so parallel runs depended on thread timing (the
kill-and-resume test demands byte-identical controllers). Same speed (tests/test_embeddings.py).
A value already in the environment is kept."""

import os

for _name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_name, "1")
os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")
os.environ.setdefault("GOMP_SPINCOUNT", "1000000")
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")  # read on MKL's first call, so torch may already be imported

__version__ = "0.1.0"

#: The library API (`from memskill_cli import MemSkill`), imported on first use so the CLI starts fast.
_API = ("MemSkill", "AddResult", "Answer", "HistoryEntry", "SearchHit", "SourceSpan", "SpanOutcome")
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> object:
    if name in _API:  # imported by name: pipeline stages import this package but never run the library API
        import importlib

        return getattr(importlib.import_module("memskill_cli.api"), name)
    raise AttributeError(f"module 'memskill_cli' has no attribute {name!r}")
