"""The framework's own cost and its parallel scaling, against a local fake endpoint that answers every request
after a fixed latency (200 ms): eval answering, memory construction over many traces, and training episodes,
each with 1 and 16 workers.

    .venv/bin/python bench/bench_throughput.py [--latency 0.2] [--workers 16]

Targets (issue 15): framework overhead under 5% of wall time (the same pass against a zero-latency endpoint gives the
framework's own time) and 16 workers at least 12x one worker. The framework's time includes the MiniLM passes that
embed each span's new facts (model compute, run one pass at a time on the same cores), printed apart. The endpoint
keeps connections alive, as real servers (vLLM, OpenAI) do. The data: 32 synthetic two-session conversations
written here (16 for training, 16 for validation; spans of about two turns), 2 questions per session.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from memskill_cli.components import Components, build_encoder
from memskill_cli.config import Settings
from memskill_cli.data.cache import build_cache
from memskill_cli.data.prepare import prepare
from memskill_cli.evaluation import answer_rows, build_memories, load_context, make_selector, select_queries
from memskill_cli.learning import make_trainer
from memskill_cli.llm import UsageLedger, build_role_clients
from tests.fake_openai import FakeOpenAIServer, completion

CONVERSATIONS = 32
NAMES = ("Ana", "Bo")


def dataset(path: Path) -> Path:
    conversations = []
    for c in range(CONVERSATIONS):
        sessions, questions = [], []
        for s in (1, 2):
            sessions.append({"date": f"{s} May 2024", "turns": [[NAMES[t % 2], f"Fact {t} of chat {c} session {s}."]
                                                               for t in range(4)]})
            questions += [{"q": f"What is fact {t} of session {s}?", "a": f"fact {t}", "category": "single-hop",
                           "evidence": [f"S{s}:{t + 1}"]} for t in (0, 1)]
        conversations.append({"id": f"chat-{c:02d}", "split": "train" if c < CONVERSATIONS // 2 else "validation",
                              "speakers": list(NAMES), "sessions": sessions, "questions": questions})
    path.write_text(yaml.safe_dump({"conversations": conversations}))
    return path


def behaviour(body: dict, auth: str) -> tuple[int, dict, dict]:
    prompt = body["messages"][-1]["content"]
    if "New excerpt" in prompt:  # a fact of the span's own (each is embedded, as real facts are: none repeats)
        fact = re.search(r"Fact \d+ of chat \d+ session \d+", prompt.split("New excerpt", 1)[1])
        return completion(json.dumps({"operations": [{"turns": [1], "fact": f"Ana said: {fact and fact[0]}"}]}))
    return completion("fact 1")


def _serve(latency: float, urls: multiprocessing.Queue) -> None:
    with FakeOpenAIServer(behaviour, latency_s=latency, keep_alive=True) as server:
        urls.put(server.url)
        threading.Event().wait()


def endpoint(latency: float) -> str:
    """A fake endpoint in its own process, so its work never competes with ours for the GIL."""
    urls: multiprocessing.Queue = multiprocessing.Queue()
    multiprocessing.Process(target=_serve, args=(latency, urls), daemon=True).start()
    return urls.get(timeout=60)


def settings_for(url: str, workers: int, root: Path) -> Settings:
    role = {"backend": "openai", "base_urls": [url], "model": "fake", "max_concurrency": workers, "max_retries": 0}
    return Settings(
        llm={"executor": role, "answerer": role, "judge": role, "designer": role, "cache_enabled": False},
        spans={"max_tokens": 40}, memory={"workers": workers, "cache_dir": str(root / f"memories-{workers}")},
        eval={"split": "validation", "judge": False, "skills_per_span": 3},
        train={"workers": workers, "episodes_per_update": 16, "updates": 1, "skills_per_span": 3})


def run_workloads(url: str, workers: int, root: Path, prepared: Path, cache: Path, encoder) -> dict[str, float]:
    """Wall seconds of each workload with `workers` (fresh memory folder, no response cache)."""
    settings = settings_for(url, workers, root / f"run-{time.monotonic_ns()}")
    ledger = UsageLedger()
    components = Components(encoder, build_role_clients(settings.llm, ledger), ledger)
    ctx = load_context(settings, prepared, cache, components)
    traces = [t for t in ctx.traces if t.split == "validation"]
    bank, selector = make_selector("memskill", ctx)
    seconds = {}

    def measure(name: str, work: Callable[[], Any]) -> Any:
        """Run `work`, keeping its wall seconds and the encoder's passes in them under `name`; returns its result."""
        start, encoded = time.perf_counter(), encoder.seconds
        result = work()
        seconds[name] = time.perf_counter() - start
        seconds[f"{name} encoder"] = encoder.seconds - encoded
        return result

    measure("memory construction", lambda: build_memories(ctx, "memskill", bank, selector, traces))
    queries = select_queries(ctx.queries, settings)
    measure("eval answering", lambda: answer_rows(ctx, "no-memory", queries, [[] for _ in queries]))
    trainer = make_trainer(settings, prepared, cache, components)
    # the episodes' own time, not the PPO update after them
    seconds["training episodes"] = measure("training episodes", trainer.step)["episodes_seconds"]
    seconds["calls"] = sum(ledger.role(r).calls for r in ("executor", "answerer"))
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    [prepared] = prepare("sample", Settings(prepare={"source": str(dataset(root / "chats.yaml"))}).prepare,
                         root / "prepared")
    encoder = build_encoder(Settings())
    info = build_cache(prepared.path, settings_for("", 1, root).spans, Settings().embedding, root / "cache", encoder)
    results: dict[tuple[int, float], dict[str, float]] = {}
    urls = {latency: endpoint(latency) for latency in (args.latency, 0.0)}  # zero latency: the framework's own time
    for workers in (1, args.workers):
        for latency, url in urls.items():
            results[workers, latency] = run_workloads(url, workers, root, prepared.path, info.path, encoder)
    print(f"fake endpoint, {args.latency * 1000:.0f} ms per request; {CONVERSATIONS // 2} validation traces, "
          f"{results[1, args.latency]['calls']:.0f} LLM calls per pass")
    for name in ("eval answering", "memory construction", "training episodes"):
        parts = []
        for workers in (1, args.workers):
            wall, own = results[workers, args.latency][name], results[workers, 0.0][name]
            passes = results[workers, 0.0][f"{name} encoder"]
            parts.append(f"{workers} workers {wall:.2f} s (framework {own:.2f} s = {100 * own / wall:.1f}%, "
                         f"of which MiniLM passes {passes:.2f} s; without them {100 * (own - passes) / wall:.1f}%)")
        speedup = results[1, args.latency][name] / results[args.workers, args.latency][name]
        print(f"{name}: {'; '.join(parts)}; speed-up {speedup:.1f}x")
    print(minilm_floor(encoder, args.workers, args.latency))


def minilm_floor(encoder, workers: int, latency: float) -> str:
    """What the encoder alone costs a lockstep round: `workers` traces each embed one new fact (one pass, the
    facts of equal token length) before any can send its next request. Model compute, near the cores' peak."""
    facts = [f"Ana said: Fact 7 of chat {10 + i} session 3." for i in range(workers)]
    encoder.encode(facts[:1])  # warm
    seconds = []
    for _ in range(5):
        start = time.perf_counter()
        encoder.encode(facts)
        seconds.append(time.perf_counter() - start)
    best = min(seconds)
    return (f"MiniLM floor: one pass of {workers} facts takes {best * 1000:.0f} ms, so a round where each of "
            f"{workers} traces embeds one fact spends at least {100 * best / (latency + best):.1f}% of its wall time "
            f"in the encoder")


if __name__ == "__main__":
    main()
