"""Benchmark (issue: memory a small model builds well): where an executor call's time goes on this machine.

For the first spans of a LoCoMo validation conversation (256 tokens, the seed skills, no memories), each embedded
model gets the executor's real request three times: once cold (the span's part of the prompt is read), then again
with its JSON-schema grammar and without it; llama.cpp's prompt cache holds the whole prompt by then, so the
repeats cost generation only. Prints per model: milliseconds per generated token with and without the grammar,
seconds reading the span's new prompt tokens, and completion tokens per span; from those, the seconds per span the
output length implies. This is what bounds executor time per conversation, whatever the prompt says.

Run: .venv/bin/python bench/bench_decode.py [--models qwen2.5-coder-0.5b qwen2.5-coder-1.5b] [--spans 4]
Reads ../shared/data/locomo. Nothing is cached.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from locomo import locomo_spans

from memskill_cli.config import Settings
from memskill_cli.embeddings import Encoder
from memskill_cli.executor import Executor
from memskill_cli.llm import ChatRequest, RoleClient, create_backend
from memskill_cli.skills import SkillBank


def timed(client: RoleClient, request: ChatRequest) -> tuple[float, int]:
    start = time.perf_counter()
    response = client.complete(request)
    return time.perf_counter() - start, response.usage.completion_tokens


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"])
    parser.add_argument("--spans", type=int, default=4, help="Spans of conv-47 timed (after one warm-up span).")
    args = parser.parse_args()
    spans = [s for s, _ in locomo_spans(Path(tempfile.mkdtemp()), Encoder(), 256).for_trace("conv-47")]
    executor_role, skills = Settings().llm.executor, SkillBank.seed().skills
    for model in args.models:
        role = executor_role.model_copy(update={"model": model, "n_ctx": 4096})
        client = RoleClient("executor", create_backend(role), default_max_tokens=role.max_tokens)
        executor = Executor(client)
        client.complete(executor.request(spans[0], [], skills))  # loads the model, caches the prefix
        grammar, plain, reading, tokens = [], [], [], []
        for span in spans[1: args.spans + 1]:
            request = executor.request(span, [], skills)
            cold, _ = timed(client, request)
            seconds, n = timed(client, request)
            grammar.append(seconds / n)
            reading.append(cold - seconds)
            tokens.append(n)
            seconds, n = timed(client, ChatRequest(request.messages))
            plain.append(seconds / n)
        ms = 1000 * statistics.fmean(grammar)
        print(f"{model}: {ms:.0f} ms/token with the grammar, {1000 * statistics.fmean(plain):.0f} without; "
              f"{statistics.fmean(reading):.1f} s reading a span's new prompt tokens; "
              f"{statistics.fmean(tokens):.0f} completion tokens/span -> "
              f"{statistics.fmean(reading) + ms * statistics.fmean(tokens) / 1000:.1f} s/span")


if __name__ == "__main__":
    main()
