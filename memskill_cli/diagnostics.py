"""`memskill models check`: a short real generation and embedding, measured."""

from __future__ import annotations

import time
from dataclasses import dataclass

from memskill_cli.config import Settings
from memskill_cli.embeddings import Encoder
from memskill_cli.llm import ChatRequest, create_backend

CHECK_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
    "required": ["city", "country"],
    "additionalProperties": False,
}


@dataclass
class CheckReport:
    model: str
    load_s: float
    answer: dict[str, str]
    prompt_tokens: int
    completion_tokens: int
    prompt_tok_per_s: float
    gen_tok_per_s: float
    embed_model: str
    embed_dim: int
    embed_per_s: float
    paraphrase_similarity: float
    unrelated_similarity: float


def run_check(settings: Settings, role: str = "executor") -> CheckReport:
    """Load the role's model, ask one JSON-schema question, embed a few sentences; time each part."""
    role_settings = settings.llm.role(role)
    start = time.perf_counter()
    client = create_backend(role_settings)
    load_s = time.perf_counter() - start
    # Prompt throughput: a long prompt and a one-token answer; generation: a short prompt, long answer.
    long_prompt = "Memory systems store facts from conversations. " * 60
    prompt_probe = client.complete(ChatRequest([{"role": "user", "content": long_prompt + "Reply: ok"}],
                                               max_tokens=1, temperature=0.0))
    gen_probe = client.complete(ChatRequest(
        [{"role": "user", "content": "Count from 1 to 60, separated by spaces."}], max_tokens=96, temperature=0.0))
    answer = client.complete(ChatRequest(
        [{"role": "user", "content": "Where is the Eiffel Tower? Answer as JSON with city and country."}],
        json_schema=CHECK_SCHEMA, max_tokens=48, temperature=0.0))
    encoder = Encoder(settings.embedding.model, settings.embedding.batch_size, settings.embedding.device)
    sentences = ["A man is playing a guitar.", "Someone strums a guitar.", "The stock market fell sharply."] * 22
    start = time.perf_counter()
    vectors = encoder.encode(sentences)
    embed_s = time.perf_counter() - start
    return CheckReport(
        model=role_settings.model,
        load_s=load_s,
        answer=answer.json(CHECK_SCHEMA),
        prompt_tokens=prompt_probe.usage.prompt_tokens,
        completion_tokens=gen_probe.usage.completion_tokens,
        prompt_tok_per_s=prompt_probe.usage.prompt_tokens / max(prompt_probe.latency_s, 1e-9),
        gen_tok_per_s=gen_probe.usage.completion_tokens / max(gen_probe.latency_s, 1e-9),
        embed_model=encoder.identity,
        embed_dim=int(vectors.shape[1]),
        embed_per_s=len(sentences) / max(embed_s, 1e-9),
        paraphrase_similarity=float(vectors[0] @ vectors[1]),
        unrelated_similarity=float(vectors[0] @ vectors[2]),
    )
