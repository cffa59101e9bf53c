"""`memskill report` from real stage outputs (scripted LLM), and `--compare`."""

import json
import re
from html.parser import HTMLParser

from memskill_cli.components import Components
from memskill_cli.config import EmbeddingSettings, PrepareSettings, Settings, SpanSettings
from memskill_cli.data.cache import build_cache
from memskill_cli.data.prepare import prepare
from memskill_cli.evaluation import bank_scorer, evaluate, load_context, scoring_groups
from memskill_cli.evolution.hardcases import buffer_from_training
from memskill_cli.evolution.loop import evolve
from memskill_cli.learning import make_trainer, source_turns, train
from memskill_cli.llm import RoleClient, UsageLedger
from memskill_cli.report import build_report, timeline_table
from stages.report import compare
from tests.conftest import REPO
from tests.scripted import ScriptedClient
from tests.test_eval import answer_script
from tests.test_evolution import designer_script, forgetful_executor

VOID = {"meta", "img", "br", "hr", "link", "input"}


class BalanceChecker(HTMLParser):
    """Checks that every non-void element is closed in order: a well-formed page."""

    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.images = [], [], []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


def test_report_from_a_scripted_pipeline_run(tmp_path, encoder):
    [prepared] = prepare("sample", PrepareSettings(source=str(REPO / "data/sample/sample.yaml")), tmp_path / "data")
    info = build_cache(prepared.path, SpanSettings(max_tokens=128), EmbeddingSettings(), tmp_path / "cache", encoder)
    artifacts = tmp_path / "artifacts"
    ledger = UsageLedger()
    clients = {"executor": RoleClient("executor", ScriptedClient(forgetful_executor, "exec"), ledger=ledger),
               "answerer": RoleClient("answerer", ScriptedClient(answer_script, "ans"), ledger=ledger),
               "judge": RoleClient("judge", ScriptedClient(lambda r: '{"explanation": "", "score": 1}'), ledger=ledger),
               "designer": RoleClient("designer", ScriptedClient(designer_script, "des"), ledger=ledger)}
    settings = Settings(train={"updates": 2, "episodes_per_update": 1, "queries_per_trace": 3, "skills_per_span": 2},
                        memory={"selector": "all"}, eval={"split": "validation"})
    components = Components(encoder, clients, ledger)
    trainer = make_trainer(settings, prepared.path, info.path, components)
    train(settings, trainer, artifacts / "train/sample", ledger, resume=False)
    context = load_context(settings, prepared.path, info.path, components, memory_root=tmp_path / "mem")
    buffer = buffer_from_training(artifacts / "train/sample", settings.evolve)
    evolve(settings.evolve, bank_scorer(context), source_turns(context.traces), encoder.encode, clients["designer"],
           artifacts / "evolve/sample", trainer.bank, buffer, "run-1", max_changes=3, cycles=1,
           groups=scoring_groups(context))
    context.skill_bank = trainer.bank
    evaluate(context, ["memskill", "no-memory", "raw-rag"], artifacts / "eval/sample")

    page = build_report("sample", artifacts, tmp_path / "report")
    checker = BalanceChecker()
    checker.feed(page.read_text())
    assert not checker.errors and not checker.stack
    assert sorted(checker.images) == ["reward.png", "skill_usage.png"]
    for image in checker.images:
        assert (tmp_path / "report" / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (tmp_path / "report/report.md").read_text()
    for text in ("| memskill |", "| no-memory |", "| raw-rag |", "Skill-bank timeline", "rolled_back",
                 "forget-everything", "Cost per stage", "| train | executor |", "**Q:**"):
        assert text in markdown, text
    # The rolled-back version shows its paired gain over the best with the interval that decided it, resampled by
    # the scored session windows.
    windows = len(set(scoring_groups(context).values()))
    assert re.search(rf"\| [+-]\d\.\d{{3}} \[[+-]\d\.\d{{3}}, [+-]\d\.\d{{3}}\] by {windows} windows \| rolled_back \|",
                     markdown)

    (artifacts / "eval/other").mkdir()
    summary = json.loads((artifacts / "eval/sample/metrics.json").read_text())
    summary["methods"]["memskill"]["overall"]["f1"] += 0.1
    (artifacts / "eval/other/metrics.json").write_text(json.dumps(summary))
    table = compare(str(artifacts / "eval/sample"), str(artifacts / "eval/other"), "sqlite:///unused.db")
    assert "| memskill | f1 |" in table and "+0.100" in table


def test_the_timeline_says_how_many_windows_would_resolve_a_gain_within_noise():
    """A rolled-back version with a positive gain says how much validation data would have told it from noise (as
    LoCoMo's best 1.5B edit: ~5x the 59 validation windows); a loss or a kept gain says nothing more."""
    def version(number: int, gain: dict | None, status: str) -> dict:
        return {"version": number, "parent": 1, "round": 1, "score": 0.8, "gain": gain, "status": status,
                "changes": [], "rejected": []}

    within_noise = {"mean": 0.026, "low": -0.032, "high": 0.087, "n": 284, "confidence": 0.95, "groups": 59}
    loss = within_noise | {"mean": -0.02, "low": -0.07, "high": 0.03}
    kept = {"mean": 0.05, "low": 0.01, "high": 0.09, "n": 284, "confidence": 0.95}
    _, rows = timeline_table({"versions": [version(1, None, "kept"), version(2, within_noise, "rolled_back"),
                                           version(3, loss, "rolled_back"), version(4, kept, "best")]})
    intervals = [row[4] for row in rows]
    assert intervals[0] == "-"
    assert intervals[1] == "+0.026 [-0.032, +0.087] by 59 windows; clear of zero at ~294 windows"
    assert intervals[2] == "-0.020 [-0.070, +0.030] by 59 windows"
    assert intervals[3] == "+0.050 [+0.010, +0.090]"
