"""Benchmark (issue: foundation): embedded model tokens/s, and client overhead against a local fake
OpenAI-compatible server with a fixed 200 ms latency: 1 vs 16 workers on 160 requests.

The embedded models are loaded in one process, as a stage loads its roles' models, and each writes again after the
encoder has run; `--omp-default` measures the same in a second process with libgomp's own wait policy instead of
the one `memskill_cli` sets (OpenMP threads spinning ~1M rounds before they sleep), which shows what it buys.

Run: .venv/bin/python bench/bench_llm.py [--with-1.5b] [--omp-default]
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from memskill_cli.config import LLMRoleSettings
from memskill_cli.embeddings import Encoder
from memskill_cli.llm import ChatRequest
from memskill_cli.llm.llamacpp import LlamaCppClient
from memskill_cli.llm.openai_compat import OpenAIClient
from tests.fake_openai import FakeOpenAIServer


def embedded(models: list[str]) -> None:
    clients = {model: LlamaCppClient(LLMRoleSettings(model=model, n_ctx=4096)) for model in models}
    prompt = "Memory systems store facts from long conversations. " * 80
    write = ChatRequest([{"role": "user", "content": "Write 120 words about the sea."}], max_tokens=160,
                        temperature=0.0)
    for model, client in clients.items():
        pre = client.complete(ChatRequest([{"role": "user", "content": prompt + "Reply: ok"}], max_tokens=1))
        gen = client.complete(write)
        print(f"{model}: prompt {pre.usage.prompt_tokens / pre.latency_s:.0f} tok/s ({pre.usage.prompt_tokens} "
              f"tokens), generation {gen.usage.completion_tokens / gen.latency_s:.1f} tok/s "
              f"({gen.usage.completion_tokens} tokens, incl. its short prompt)")
    Encoder().encode([f"Fact {i}: the sea is deep and blue." for i in range(64)])
    for model, client in clients.items():
        gen = client.complete(write)
        print(f"{model}, after the encoder ran: generation {gen.usage.completion_tokens / gen.latency_s:.1f} tok/s")


def overhead() -> None:
    os.environ["BENCH_KEY"] = "bench-key"
    requests = [ChatRequest([{"role": "user", "content": f"q{i}"}]) for i in range(160)]
    with FakeOpenAIServer(latency_s=0.2) as server:
        timings = {}
        for workers in (1, 16):
            client = OpenAIClient(LLMRoleSettings(backend="openai", model="m", base_urls=[server.url],
                                                  api_key_env="BENCH_KEY", max_concurrency=workers))
            start = time.perf_counter()
            client.map(requests)
            timings[workers] = time.perf_counter() - start
            client.close()
    speedup = timings[1] / timings[16]
    print(f"openai client, 160 requests at 200 ms: 1 worker {160 / timings[1]:.1f} req/s, "
          f"16 workers {160 / timings[16]:.1f} req/s, speed-up {speedup:.1f}x (target >= 12x)")


if __name__ == "__main__":
    models = ["qwen2.5-coder-0.5b", *(["qwen2.5-coder-1.5b"] if "--with-1.5b" in sys.argv else [])]
    if "--embedded-only" in sys.argv:
        embedded(models)
        sys.exit()
    overhead()
    print(f"OpenMP: OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']} GOMP_SPINCOUNT={os.environ['GOMP_SPINCOUNT']}")
    embedded(models)
    if "--omp-default" in sys.argv:   # an empty value is ignored by libgomp (with a warning): its default applies
        print("OpenMP: libgomp's default wait policy")
        subprocess.run([sys.executable, __file__, "--embedded-only", *sys.argv[1:]], check=True,
                       env=os.environ | {"OMP_WAIT_POLICY": "", "GOMP_SPINCOUNT": ""})
