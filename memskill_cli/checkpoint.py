"""Training checkpoints: safetensors for tensors, JSON for everything else; written atomically, no pickle."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from memskill_cli.controller import ControllerConfig, SkillController
from memskill_cli.errors import DataError
from memskill_cli.fileio import atomic_dir, read_json, reading, sha256_file, write_json
from memskill_cli.skills import SkillBank


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors, layout = {}, {"param_groups": state["param_groups"], "state": {}}
    for index, slots in state["state"].items():
        layout["state"][str(index)] = {}
        for name, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{name}"] = value.contiguous()
                layout["state"][str(index)][name] = "tensor"
            else:
                layout["state"][str(index)][name] = value
    return tensors, layout


def save_checkpoint(directory: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    meta: dict[str, Any]) -> None:
    """Replace `directory` as a whole: a crash mid-write leaves the previous checkpoint intact."""
    with atomic_dir(directory) as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / "controller.safetensors"))
        tensors, layout = _optimizer_tensors(optimizer)
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        write_json(tmp / "optimizer.json", layout)
        write_json(tmp / "state.json", meta)


@contextlib.contextmanager
def _checkpoint_file(path: Path) -> Iterator[None]:
    """A missing, truncated, foreign or mis-shaped checkpoint file is a DataError naming it."""
    with reading(path, "checkpoint file"):
        try:
            yield
        except (SafetensorError, RuntimeError, KeyError, TypeError, AttributeError, ValidationError) as exc:
            raise DataError(f"not a usable memskill checkpoint ({type(exc).__name__}: {str(exc)[:200]})",
                            file=str(path)) from None


def load_checkpoint(directory: Path, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer | None = None) -> dict[str, Any]:
    if not directory.is_dir():
        raise DataError("no checkpoint directory here", file=str(directory))
    with _checkpoint_file(directory / "controller.safetensors"):
        model.load_state_dict(load_file(str(directory / "controller.safetensors")))
    if optimizer is not None:
        with _checkpoint_file(directory / "optimizer.safetensors"):
            tensors = load_file(str(directory / "optimizer.safetensors"))
            layout = read_json(directory / "optimizer.json")
            state = {
                int(index): {name: tensors[f"{index}.{name}"] if value == "tensor" else value
                             for name, value in slots.items()}
                for index, slots in layout["state"].items()
            }
            optimizer.load_state_dict({"state": state, "param_groups": layout["param_groups"]})
    return read_json(directory / "state.json")


def load_controller(directory: Path) -> tuple[SkillController, str, SkillBank | None]:
    """A trained controller for selection (eval mode), its identity (the hash of its weights) and the skill
    bank it last trained with (None in checkpoints that do not record it)."""
    weights = directory / "controller.safetensors"
    if not (directory / "state.json").exists() or not weights.exists():
        raise DataError("not a controller checkpoint (needs state.json and controller.safetensors)",
                        file=str(directory))
    state = read_json(directory / "state.json")
    with _checkpoint_file(directory / "state.json"):
        controller = SkillController(ControllerConfig(**state["controller"]))
        bank = SkillBank.model_validate(state["skill_bank"]) if state.get("skill_bank") else None
    load_checkpoint(directory, controller)
    controller.eval()
    return controller, sha256_file(weights)[:16], bank
