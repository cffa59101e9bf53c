"""Token counting with a real tokenizer (default: the bundled MiniLM WordPiece), offline."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from tokenizers import Tokenizer

from memskill_cli.errors import ConfigError


class TokenCounter:
    def __init__(self, name: str = "all-MiniLM-L6-v2") -> None:
        self.name = name
        self._tokenizer = _load(name)

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def split(self, text: str, budget: int) -> list[str]:
        """Cut text into pieces of at most `budget` tokens, on token boundaries."""
        offsets = self._tokenizer.encode(text, add_special_tokens=False).offsets
        pieces = []
        for start in range(0, len(offsets), budget):
            chunk = offsets[start:start + budget]
            end = offsets[start + budget][0] if start + budget < len(offsets) else len(text)
            pieces.append(text[chunk[0][0]:end].strip())
        return [p for p in pieces if p] or [text]


@cache
def _load(name: str) -> Tokenizer:
    if name == "all-MiniLM-L6-v2":
        from memskill_cli.embeddings import bundled_minilm_dir

        path = bundled_minilm_dir() / "tokenizer.json"
    else:
        path = Path(name).expanduser()
        if path.is_dir():
            path = path / "tokenizer.json"
    if not path.is_file():
        raise ConfigError(f"tokenizer {name!r}: no tokenizer.json found (give a path to one, or a model folder)")
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer
