"""The layout holds: the core imports neither the CLI nor the stages, there is no import cycle, and each DVC
stage lists in `deps` every module of the package it runs (so editing code never leaves a stale result)."""

from __future__ import annotations

import yaml

from tests.import_graph import ROOT, closure, cycles, graph

# dvc stage -> (its CLI command module, its stage module)
STAGE_CODE = {
    "prepare": ("prepare", "prepare"),
    "build-cache": ("build_cache", "build_cache"),
    "train": ("train", "train"),
    "evolve": ("evolve", "evolve"),
    "eval": ("evaluate", "evaluate"),
    "report": ("report", "report"),
}


def _rel(path) -> str:
    return str(path.relative_to(ROOT))


def test_the_core_imports_neither_the_cli_nor_the_stages():
    edges = graph()
    outward = {
        _rel(module): sorted(_rel(d) for d in deps if _rel(d).startswith(("stages/", "memskill_cli/cli/")))
        for module, deps in edges.items()
        if _rel(module).startswith("memskill_cli/") and not _rel(module).startswith("memskill_cli/cli/")
    }
    assert {m: d for m, d in outward.items() if d} == {}


def test_there_is_no_import_cycle():
    assert [[_rel(p) for p in cycle] for cycle in cycles(graph())] == []


def test_every_dvc_stage_lists_the_code_it_runs():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert set(stages) == set(STAGE_CODE)
    edges = graph()
    for stage, (command, module) in STAGE_CODE.items():
        deps = [d for d in stages[stage]["deps"] if "${" not in d]
        runs = closure([ROOT / "memskill_cli/cli" / f"{command}.py", ROOT / "stages" / f"{module}.py"], edges)
        missing = sorted(_rel(f) for f in runs if not any(_rel(f) == d or _rel(f).startswith(d + "/") for d in deps))
        assert missing == [], f"dvc.yaml stage {stage!r} runs code it does not list in deps: {missing}"
        if ROOT / "memskill_cli/skills.py" in runs:  # the seed bank is data the skills module reads
            assert "memskill_cli/resources" in deps, stage
        assert f"memskill -q {command.replace('_', '-').replace('evaluate', 'eval')}" in stages[stage]["cmd"]


def test_dvc_stages_declare_metrics_and_plots():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for stage in ("train", "evolve", "eval"):
        assert stages[stage]["metrics"], stage
    for stage in ("train", "evolve"):
        [plot] = stages[stage]["plots"]
        [(path, options)] = plot.items()
        assert path.endswith(".csv") and options["x"] and options["y"]
