"""memskill: learn and evolve memory skills for LLM agents.

Offline by default: the Hugging Face libraries are told so before anything imports them, so a model name that
is not local fails with a clear message instead of a network lookup (set HF_HUB_OFFLINE=0 to opt in)."""

import os

for _name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_name, "1")

__version__ = "0.1.0"
