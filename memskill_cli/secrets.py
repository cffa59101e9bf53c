"""API keys: read from env vars or files only, and scrubbed from every message memskill prints."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from memskill_cli.errors import ConfigError

_known: set[str] = set()
_lock = threading.Lock()


def register(secret: str) -> None:
    if len(secret) >= 4:
        with _lock:
            _known.add(secret)


def redact(text: str) -> str:
    """Replace every registered secret in `text` with a fixed marker."""
    with _lock:
        secrets = sorted(_known, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def load_api_keys(env_var: str, key_file: str | None) -> list[str]:
    """Keys from a file (one per line) or an env var (comma-separated); each is registered for redaction."""
    if key_file:
        path = Path(key_file).expanduser()
        if not path.is_file():
            raise ConfigError(f"API key file not found: {path}")
        keys = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    else:
        keys = [k.strip() for k in os.environ.get(env_var, "").split(",") if k.strip()]
    for key in keys:
        register(key)
    return keys
