"""The report: the pipeline's outputs -> a Markdown file and a static HTML page with PNG plots.

Reads only files the other stages wrote: eval metrics and predictions, the training history, the evolution
state. `compare_table` puts two eval runs' metrics side by side.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from memskill_cli.errors import DataError
from memskill_cli.fileio import atomic_dir, read_json, read_jsonl, write_text
from memskill_cli.metrics import EMBODIED_METRICS, QA_METRICS, metric_names
from memskill_cli.significance import Gain

Table = tuple[list[str], list[list[str]]]


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def eval_table(summary: dict[str, Any]) -> Table:
    """Overall metrics per method, then the headline metric (F1, or success rate) per category."""
    names = metric_names(summary)
    headline = names[0]
    categories = sorted({c for r in summary["methods"].values() for c in r["per_category"]})
    labels = {"judge": "judge", "steps": "steps", "success": "success rate"}
    header = ["method", "selector", "n", *(labels.get(n, n.upper()) for n in names),
              *(f"{headline} {c}" for c in categories)]
    rows = [[method, r.get("selector", "-"), _fmt(r["overall"]["n"]), *(_fmt(r["overall"].get(n)) for n in names),
             *(_fmt(r["per_category"].get(c, {}).get(headline)) for c in categories)]
            for method, r in summary["methods"].items()]
    return header, rows


def quality_table(summary: dict[str, Any]) -> Table:
    """Memory quality without an answerer: how the executor calls went, whether retrieval cites the evidence, and
    how much of the gold answer's words the answer context holds."""
    header = ["method", "evidence recall", "evidence recall (any)", "answer coverage", "executor calls", "truncated",
              "verbatim copies", "completion tokens / span", "memories / span", "rejected ops"]
    rows = []
    for method, r in summary["methods"].items():
        overall, cost = r["overall"], r.get("cost", {})
        rows.append([method, _fmt(overall.get("evidence_recall")), _fmt(overall.get("evidence_recall_any")),
                     _fmt(overall.get("answer_coverage")), _fmt(cost.get("executor_calls")),
                     _fmt(cost.get("truncation_rate")), _fmt(cost.get("verbatim_copy_rate")),
                     _fmt(cost.get("completion_tokens_per_span")), _fmt(cost.get("memories_per_span")),
                     ", ".join(f"{k} {v}" for k, v in cost.get("rejected_by_reason", {}).items()) or "-"])
    return header, rows


def cost_table(usages: dict[str, dict[str, dict[str, float]]]) -> Table:
    header = ["stage", "role", "calls", "cache hits", "prompt tokens", "of them from the prefix cache",
              "completion tokens", "LLM seconds"]
    rows = [[stage, role, _fmt(int(u["calls"])), _fmt(int(u["cache_hits"])), _fmt(int(u["prompt_tokens"])),
             _fmt(int(u.get("cached_prompt_tokens", 0))),  # usage written before it was counted has none
             _fmt(int(u["completion_tokens"])), f"{u['latency_s']:.1f}"]
            for stage, roles in usages.items() for role, u in roles.items()]
    return header, rows


def timeline_table(state: dict[str, Any]) -> Table:
    header = ["version", "parent", "round", "validation score", "gain over the best (95% interval)", "status",
              "changes"]
    rows = []
    for v in state["versions"]:
        changes = "; ".join(f"{c['op']} {c['skill']}: {c.get('reason', '')}" for c in v["changes"]) or "(seed)"
        rejected = "; ".join(f"rejected {c.get('op')} {c.get('skill')}: {c['why']}" for c in v["rejected"])
        gain = Gain.model_validate(v["gain"]) if v.get("gain") else None
        interval = f"{gain.mean:+.3f} [{gain.low:+.3f}, {gain.high:+.3f}]" if gain else "-"
        if gain and gain.groups:  # resampled by session window, not by question
            interval += f" by {gain.groups} windows"
        if gain and gain.outlook():  # could more validation data resolve it?
            interval += f"; {gain.outlook()}"
        rows.append([f"v{v['version']}", _fmt(v["parent"]), _fmt(v["round"]), _fmt(v["score"]), interval,
                     v["status"], changes + (f" | {rejected}" if rejected else "")])
    return header, rows


def plot_rewards(history: list[dict[str, Any]], path: Path) -> None:
    updates = [h["update"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(updates, [h["reward_mean"] for h in history], marker="o", label="mean")
    ax.fill_between(updates, [h["reward_min"] for h in history], [h["reward_max"] for h in history], alpha=0.2,
                    label="min-max")
    ax.set(xlabel="PPO update", ylabel="episode reward (F1 or success rate)", title="Training reward")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_skill_usage(history: list[dict[str, Any]], path: Path) -> None:
    skills = sorted({name for h in history for name in h.get("skill_usage", {})})
    updates = [h["update"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    bottom = [0.0] * len(history)
    for skill in skills:
        counts = [h.get("skill_usage", {}).get(skill, 0) for h in history]
        ax.bar(updates, counts, bottom=bottom, label=skill)
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    ax.set(xlabel="PPO update", ylabel="selections", title="Skill usage over training")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _cited(example: dict[str, Any], count: int = 5) -> list[str]:
    """The first memories an answer used, each with the turn ids it cites (its provenance), when known."""
    turns = example.get("retrieved_turns") or [[] for _ in example["retrieved"]]
    return [f"{text} [{', '.join(ids)}]" if ids else text for text, ids in zip(example["retrieved"], turns,
                                                                                 strict=False)][:count]


def examples(eval_dir: Path, method: str = "memskill", count: int = 3) -> list[dict[str, Any]]:
    path = eval_dir / "runs" / method / "predictions.jsonl"
    return read_jsonl(path)[:count] if path.exists() else []


def _md_table(table: Table) -> str:
    header, rows = table
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _html_table(table: Table) -> str:
    header, rows = table
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _score(row: dict[str, Any]) -> str:
    if "success" in row:
        return f"{'won' if row['success'] else 'lost'} in {row['steps']} steps"
    return f"F1 {row['f1']:.2f}"


def build_report(dataset: str, artifacts: Path, out_dir: Path) -> Path:
    """Write report.md, report.html and the PNGs under `out_dir`; returns the HTML path."""
    eval_dir, train_dir, evolve_dir = (artifacts / kind / dataset for kind in ("eval", "train", "evolve"))
    if not (eval_dir / "metrics.json").exists():
        raise DataError("no evaluation to report on; run `memskill eval` first", file=str(eval_dir / "metrics.json"))
    summary = read_json(eval_dir / "metrics.json")
    history = read_jsonl(train_dir / "history.jsonl") if (train_dir / "history.jsonl").exists() else []
    state = read_json(evolve_dir / "state.json") if (evolve_dir / "state.json").exists() else None
    usages = {"eval": summary.get("llm_usage", {})}
    if history:
        usages["train"] = history[-1].get("llm_usage", {})
    if (evolve_dir / "llm_usage.json").exists():
        usages["evolve"] = read_json(evolve_dir / "llm_usage.json")
    sections: list[tuple[str, str, str]] = [  # (title, markdown, html)
        ("Evaluation", _md_table(eval_table(summary)), _html_table(eval_table(summary))),
        ("Memory quality", _md_table(quality_table(summary)), _html_table(quality_table(summary)))]
    with atomic_dir(out_dir) as tmp:
        if history:
            plot_rewards(history, tmp / "reward.png")
            plot_skill_usage(history, tmp / "skill_usage.png")
            sections.append(("Training", "![reward](reward.png)\n\n![skill usage](skill_usage.png)",
                             '<img src="reward.png" alt="training reward">'
                             '<img src="skill_usage.png" alt="skill usage">'))
        if state:
            table = timeline_table(state)
            sections.append(("Skill-bank timeline", _md_table(table), _html_table(table)))
        cost = cost_table(usages)
        sections.append(("Cost per stage", _md_table(cost), _html_table(cost)))
        shown = examples(eval_dir)
        if shown:
            md = "\n\n".join(f"**Q:** {e['question']}  \n**gold:** {' | '.join(e['gold'])}  \n**predicted:** "
                             f"{e['prediction']} ({_score(e)})  \n**memories used** (cited turns):  \n"
                             + "  \n".join(f"- {m}" for m in _cited(e)) for e in shown)
            page = "".join(f"<div class='ex'><p><b>Q:</b> {html.escape(e['question'])}<br><b>gold:</b> "
                           f"{html.escape(' | '.join(e['gold']))}<br><b>predicted:</b> "
                           f"{html.escape(e['prediction'])} ({_score(e)})</p><ul>"
                           + "".join(f"<li>{html.escape(m)}</li>" for m in _cited(e)) + "</ul></div>"
                           for e in shown)
            sections.append(("Examples (memskill)", md, page))
        title = f"memskill report: {dataset} ({summary['split']} split)"
        write_text(tmp / "report.md", f"# {title}\n\n" + "\n\n".join(f"## {t}\n\n{m}" for t, m, _ in sections)
                   + "\n")
        style = ("body{font-family:sans-serif;max-width:1000px;margin:2em auto}table{border-collapse:collapse}"
                 "td,th{border:1px solid #ccc;padding:4px 8px;font-size:90%}img{max-width:48%}")
        write_text(tmp / "report.html",
                   f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
                   f"</title><style>{style}</style></head><body><h1>{html.escape(title)}</h1>"
                   + "".join(f"<h2>{html.escape(t)}</h2>{h}" for t, _, h in sections) + "</body></html>\n")
    return out_dir / "report.html"


RunMetrics = dict[str, dict[str, float]]  # method -> metric -> value
COMPARED = QA_METRICS + EMBODIED_METRICS


def eval_dir_metrics(path: Path) -> RunMetrics:
    """An eval output's overall metrics per method (a directory holding metrics.json, or the file)."""
    summary = read_json(path / "metrics.json" if path.is_dir() else path)
    return {m: {k: v for k, v in r["overall"].items() if isinstance(v, (int, float))}
            for m, r in summary["methods"].items()}


def compare_table(a: RunMetrics, b: RunMetrics) -> str:
    """A Markdown table of two eval runs' metrics (F1/EM/judge or success/steps) per method and the difference."""
    rows = []
    for method in sorted(set(a) | set(b)):
        present = {m for r in (a.get(method, {}), b.get(method, {})) for m in r}
        for metric in [m for m in COMPARED if m in present]:
            va, vb = a.get(method, {}).get(metric), b.get(method, {}).get(metric)
            delta = f"{vb - va:+.3f}" if va is not None and vb is not None else "-"
            rows.append([method, metric, _fmt(va), _fmt(vb), delta])
    return _md_table((["method", "metric", "A", "B", "B - A"], rows))
