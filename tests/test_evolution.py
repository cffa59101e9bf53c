"""Hard cases, case selection, edit validation, snapshots and rollback; and a real designer run."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from memskill_cli.components import Components
from memskill_cli.config import EmbeddingSettings, PrepareSettings, Settings, SpanSettings
from memskill_cli.data.cache import build_cache
from memskill_cli.data.prepare import prepare
from memskill_cli.evaluation import bank_scorer, load_context, version_measure
from memskill_cli.evolution.designer import apply_edits, validate_edits
from memskill_cli.evolution.hardcases import HardCase, HardCaseBuffer, buffer_from_training, select_cases
from memskill_cli.evolution.loop import evolve
from memskill_cli.learning import source_turns
from memskill_cli.llm import RoleClient, UsageLedger
from memskill_cli.skills import SkillBank
from tests.conftest import REPO, cli_in, small_models
from tests.scripted import ScriptedClient
from tests.test_eval import answer_script, executor_script


def case(query_id, score, question="q", **kw):
    return {"query_id": query_id, "trace_id": "t", "question": question, "gold": ["g"], "category": "single-hop",
            "evidence": [], "prediction": "p", "retrieved": [], "score": score, **kw}


def test_buffer_refreshes_expires_and_caps():
    buffer = HardCaseBuffer(threshold=0.5, capacity=3, expiry_steps=10)
    assert not buffer.add(case("ok", 0.9), step=1)  # a success never enters
    assert buffer.add(case("a", 0.2), step=1)
    buffer.add(case("a", 0.1), step=4)
    assert buffer.cases["a"].failures == 2 and buffer.cases["a"].step == 4 and buffer.cases["a"].score == 0.1
    for name, step in (("b", 5), ("c", 6), ("d", 7)):
        buffer.add(case(name, 0.0), step=step)
    assert set(buffer.cases) == {"b", "c", "d"}  # capacity keeps the newest
    buffer.expire(16)
    assert set(buffer.cases) == {"c", "d"}  # b (step 5) is older than 10 steps


def test_selection_takes_the_hardest_of_each_cluster():
    topics = {"pets": ["What is the cat called?", "Which dog breed is Coco?", "What is the kitten's name?"],
              "travel": ["Which city did she fly to?", "Where is the marina?", "Which country did he visit?"]}
    cases = []
    for topic, questions in topics.items():
        for i, question in enumerate(questions):
            cases.append(HardCase(**case(f"{topic}{i}", score=0.1 * i, question=question), step=1,
                                  failures=1 + (i == 2)))
    cases.append(HardCase(**case("dup", 0.0, question="What is the cat called?"), step=1))

    def encode(texts):
        return np.array([[1.0, 0.0] if any(w in t for w in ("cat", "dog", "kitten")) else [0.0, 1.0]
                         for t in texts])

    # difficulty = (1 - score) x failures: the third question of each topic failed twice and is the hardest
    chosen = select_cases(cases, encode, clusters=2, per_cluster=1, max_cases=10)
    assert sorted(c.question for c in chosen) == ["What is the kitten's name?", "Which country did he visit?"]
    everything = select_cases(cases, encode, clusters=2, per_cluster=5, max_cases=20)
    assert len(everything) == 6  # the duplicate question was dropped
    assert len(select_cases(cases, encode, clusters=2, per_cluster=3, max_cases=4)) == 4


def edit(op, skill, **kw):
    return {"op": op, "skill": skill, "description": "Record dated life events precisely.",
            "instructions": "Insert each dated event with its absolute date and the person's name.",
            "actions": ["INSERT"], "reason": "temporal questions fail", **kw}


def test_invalid_edits_are_rejected_with_reasons():
    bank = SkillBank.seed()
    edits = [
        edit("add", "Dated_Events"),  # read as dated-events
        edit("add", "insert"),  # duplicate name
        edit("add", "purge-old", actions=["DELETE"]),  # new skills may only INSERT/UPDATE
        edit("add", "templated", instructions="Store {fact} about {person} now please."),
        edit("add", "huge", instructions="x" * 2000),
        edit("refine", "delete", actions=["INSERT"]),  # a seed keeps its action type
        edit("refine", "nope"),
        edit("add", "9 lives!"),
        {"op": "add", "skill": "no-reason", "description": "long enough text", "instructions": "long enough text"},
        edit("refine", "insert", instructions=bank.get("insert").instructions.rsplit(".", 2)[0] + "."),  # re-sent
        edit("refine", "update", actions=["UPDATE"]),
        edit("add", "one-too-many"),
    ]
    accepted, rejected = validate_edits(bank, edits, max_changes=2)
    assert [e["skill"] for e in accepted] == ["dated-events", "update"]
    restated = next(e["why"] for e in rejected if (e["op"], e["skill"]) == ("refine", "insert"))
    why = {e["skill"]: e["why"] for e in rejected if (e["op"], e["skill"]) != ("refine", "insert")}
    assert "already exists" in why["insert"]
    assert "only INSERT or UPDATE" in why["purge-old"]
    assert "placeholder" in why["templated"]
    assert "too long" in why["huge"]
    assert "keeps its action type" in why["delete"]
    assert "no skill named" in why["nope"]
    assert "not a slug" in why["9-lives!"]
    assert "reason" in why["no-reason"]
    assert "restates skill 'insert'" in restated
    assert "budget" in why["one-too-many"]
    grown = apply_edits(bank, accepted, round_=1)
    assert grown.names == ["insert", "update", "delete", "skip", "dated-events"]
    assert grown.get("update").version == 2 and grown.get("update").provenance.origin == "refined"
    assert grown.get("dated-events").provenance.round == 1


def test_edits_naming_the_hard_cases_specifics_or_overfilling_the_bank_are_rejected():
    from memskill_cli.evolution.designer import case_specifics

    bank = SkillBank.seed()
    shown = ["Case 1 [single-hop, failed 1x, score 0.00]\n  Question: What is the name of Priya's postdoc advisor?\n"
             "  Gold: Dr Okafor\n  Predicted: none\n  Source turns holding the answer:\n"
             "    D3:4: Priya: my advisor at Imperial is Dr Okafor since 2019\n  What memory returned:\n    (none)"]
    specifics = case_specifics(shown, bank)
    assert {"Priya", "Imperial", "2019"} <= specifics and not specifics & {"What", "Question", "Case", "Gold"}
    edits = [edit("add", "trivia", instructions="Insert the name of Priya's postdoc advisor when it is mentioned."),
             edit("add", "nested", actions=[["INSERT"]]),
             edit("add", "work-relations", instructions="Insert who a person works with or for, and since when."),
             edit("add", "one-more", description="Record the places people live in and move to."),
             edit("add", "delete-person", actions=["UPDATE"], instructions=bank.get("delete").instructions),
             edit("add", "add-pet", instructions="When adding a new pet, give its breed and age. Do not name the pet.")]
    accepted, rejected = validate_edits(bank, edits, max_changes=3, max_skills=5, specifics=specifics)
    assert [e["skill"] for e in accepted] == ["work-relations"]
    why = {e["skill"]: e["why"] for e in rejected}
    assert "specifics" in why["trivia"] and "Priya" in why["trivia"]
    assert "list of action names" in why["nested"]
    assert "bank is full" in why["one-more"] and "5" in why["one-more"]
    assert "restates skill 'delete'" in why["delete-person"]
    assert "not to name" in why["add-pet"]


def test_a_version_replaces_the_best_only_on_a_significant_paired_gain(tmp_path):
    from memskill_cli.evolution.snapshots import SnapshotStore

    seed = SkillBank.seed()
    store = SnapshotStore.open(tmp_path, seed, HardCaseBuffer(), source="run")
    base = {f"q{i}": 0.3 for i in range(10)}
    assert store.record_score(1, base) == "best"
    noisy = store.add(seed.model_copy(update={"version": 2}), 1, {}, [], [])
    # +0.04 F1 on average over 10 questions, all of it from one question: noise, not a better bank.
    assert store.record_score(noisy.version, {**base, "q0": 0.7}) == "rolled_back"
    entry = store.state.get(noisy.version)
    assert entry.gain.mean == pytest.approx(0.04) and entry.gain.low <= 0 < entry.gain.high
    assert store.state.best == 1 and store.state.current == 1
    better = store.add(seed.model_copy(update={"version": 3}), 1, {}, [], [])
    assert store.record_score(better.version, {q: v + 0.1 * (1 + i % 3) for i, (q, v) in
                                               enumerate(base.items())}) == "best"
    assert store.state.get(better.version).gain.low > 0 and store.state.best == better.version
    assert store.state.get(1).status == "kept"


def test_a_gain_carried_by_one_memory_build_is_not_significant_when_builds_are_resampled(tmp_path):
    """Questions answered from one window's memory rise and fall together: a gain that comes from one build of
    five is what a lucky build looks like. Question by question it would pass the gate; by window it does not."""
    from memskill_cli.evolution.snapshots import SnapshotStore
    from memskill_cli.significance import paired_gain

    windows = {f"w{w}q{q}": f"w{w}" for w in range(5) for q in range(10)}
    base = {question: 0.3 for question in windows}
    lucky = {question: 0.8 if window == "w0" else 0.3 for question, window in windows.items()}
    ids = sorted(windows)
    by_question = paired_gain([base[q] for q in ids], [lucky[q] for q in ids])
    by_window = paired_gain([base[q] for q in ids], [lucky[q] for q in ids], groups=[windows[q] for q in ids])
    assert by_question.mean == by_window.mean == pytest.approx(0.1)
    assert by_question.significant and by_question.groups is None
    assert not by_window.significant and by_window.groups == 5 and by_window.n == 50
    # A gain every window shares (+0.05 to +0.09 by window) survives resampling windows.
    steady = {q: 0.35 + 0.01 * int(q[1]) for q in ids}
    assert paired_gain([base[q] for q in ids], [steady[q] for q in ids], groups=[windows[q] for q in ids]).significant

    seed = SkillBank.seed()
    store = SnapshotStore.open(tmp_path, seed, HardCaseBuffer(), source="run")
    assert store.record_score(1, base, groups=windows) == "best"
    version = store.add(seed.model_copy(update={"version": 2}), 1, {}, [], [])
    assert store.record_score(version.version, lucky, groups=windows) == "rolled_back"
    assert store.state.get(version.version).gain.groups == 5 and store.state.best == 1


def test_the_windows_a_gain_would_need_to_clear_zero_are_projected_from_its_spread():
    """A small gain within noise on 8 windows: the projection says how many windows would resolve it. Checked with
    the bootstrap itself, the same windows repeated to that many clear zero, and one repeat fewer do not."""
    from memskill_cli.significance import paired_gain

    per_window = [0.08, -0.06, 0.05, 0.02, -0.03, 0.07, -0.01, 0.04]  # mean +0.0200, spread 0.05

    def gain(copies: int):
        diffs = [d for _ in range(copies) for d in per_window for _ in range(3)]  # 3 questions a window
        groups = [(c, w) for c in range(copies) for w in range(len(per_window)) for _ in range(3)]
        return paired_gain([0.5] * len(diffs), [0.5 + d for d in diffs], groups=groups)

    small = gain(1)
    assert not small.significant and small.mean == pytest.approx(0.02)
    needed = small.units_to_clear()
    assert needed > 2 * len(per_window) and small.outlook() == f"clear of zero at ~{needed} windows"
    copies = -(-needed // len(per_window))
    assert gain(copies).significant                 # as many windows as projected: resolved
    assert not gain(copies - 1).significant         # fewer: still within noise
    assert gain(copies).outlook() == "" and paired_gain([0.5] * 3, [0.4] * 3).outlook() == ""  # resolved; a loss
    assert paired_gain([0.5] * 4, [0.5] * 4).units_to_clear() is None  # no gain: no amount of data resolves it


def test_bank_versions_are_scored_on_the_windows_with_the_most_questions_per_span():
    """A scoring's cost is its executor calls, one per span: the windows that answer the most questions per span
    narrow the gain's interval most for that cost."""
    from memskill_cli.data.windows import Window, densest_windows

    def window(spans: int, questions: int) -> Window:
        return Window("trace", [(None, None)] * spans, ["question"] * questions)

    windows = {"sparse": window(6, 1), "dense": window(2, 9), "middle": window(4, 8), "tie": window(1, 2)}
    assert list(densest_windows(windows, 2)) == ["dense", "middle"]
    assert list(densest_windows(windows, 10)) == ["dense", "middle", "tie", "sparse"]


def forgetful_executor(request):
    """Stores nothing when the harmful skill is among the selected ones: a bank that gets worse."""
    if "### forget-everything" in request.messages[-1]["content"]:
        return '{"operations": [{"action": "NOOP"}]}'
    return executor_script(request)


def designer_script(request):
    text = request.messages[0]["content"]
    if "Failed cases" in text:
        return json.dumps({"patterns": [{"type": "missing_storage", "description": "facts lost", "cases": [1]}],
                           "recommendations": ["store less"]})
    return json.dumps({"edits": [
        {"op": "add", "skill": "forget-everything", "description": "Keep the memory small and tidy always.",
         "instructions": "Store nothing at all from this span, ever.", "actions": ["INSERT"],
         "reason": "less is more"},
        {"op": "add", "skill": "insert", "description": "duplicate name here", "instructions": "duplicate text",
         "actions": ["INSERT"], "reason": "oops"},
    ]})


def forgetful_setup(tmp_path, encoder, settings):
    """The sample's validation harness with the forgetful executor and the scripted designer, on one ledger."""
    [prepared] = prepare("sample", PrepareSettings(source=str(REPO / "data/sample/sample.yaml")), tmp_path / "prep")
    info = build_cache(prepared.path, SpanSettings(max_tokens=128), EmbeddingSettings(), tmp_path / "cache", encoder)
    ledger = UsageLedger()
    clients = {"executor": RoleClient("executor", ScriptedClient(forgetful_executor, "exec"), ledger=ledger),
               "answerer": RoleClient("answerer", ScriptedClient(answer_script, "ans"), ledger=ledger)}
    designer = RoleClient("designer", ScriptedClient(designer_script, "designer"), ledger=ledger)
    context = load_context(settings, prepared.path, info.path, Components(encoder, clients, ledger),
                           memory_root=tmp_path / "mem")
    return context, designer, ledger


def test_worse_bank_rolls_back_and_the_best_is_exported(tmp_path, encoder):
    settings = Settings(eval={"split": "validation", "judge": False}, memory={"selector": "all"})
    context, designer, _ = forgetful_setup(tmp_path, encoder, settings)
    buffer = HardCaseBuffer()
    for i in range(4):
        buffer.add({**case(f"q{i}", 0.0, question=f"Where does person {i} live?", evidence=["S1:1"]),
                    "trace_id": "sample-01"}, step=1)
    summary = evolve(settings.evolve, bank_scorer(context), source_turns(context.traces), encoder.encode, designer,
                     tmp_path / "evolve", SkillBank.seed(), buffer, "run-1", max_changes=3, cycles=1)
    [cycle] = summary["cycles"]
    assert [e["skill"] for e in cycle["accepted"]] == ["forget-everything"]
    assert "already exists" in cycle["rejected"][0]["why"]
    assert cycle["outcome"] == "rolled_back" and cycle["score"] < summary["best_score"]
    assert summary["best_version"] == 1 and summary["current"] == 1
    exported = SkillBank.load(tmp_path / "evolve/best_bank.yaml")
    assert exported.names == SkillBank.seed().names
    assert "forget-everything" in (tmp_path / "evolve/versions/v2/diff.patch").read_text()
    state = json.loads((tmp_path / "evolve/state.json").read_text())
    assert any("rolled back" in f["why"] for f in state["failed_proposals"])
    assert [v["status"] for v in state["versions"]] == ["best", "rolled_back"]
    # The designer saw the evidence turns next to what memory returned.
    prompt = designer.backend.requests[0].messages[0]["content"]
    assert "Source turns holding the answer" in prompt and "S1:1: Maya:" in prompt


def test_history_cases_feed_the_buffer(tmp_path):
    history = tmp_path / "history.jsonl"  # a training run without a checkpoint: rebuilt from its history
    rows = [{"update": u, "episodes": [{"id": "t", "cases": [
        {"query_id": "q1", "question": "Q?", "gold": ["a"], "category": "temporal", "evidence": [], "prediction": "b",
         "retrieved": [], "f1": 0.0},
        {"query_id": "q2", "question": "R?", "gold": ["a"], "category": "temporal", "evidence": [], "prediction": "a",
         "retrieved": [], "f1": 1.0}]}]} for u in (1, 2)]
    history.write_text("\n".join(json.dumps(r) for r in rows))
    buffer = buffer_from_training(tmp_path, Settings().evolve)
    assert list(buffer.cases) == ["q1"] and buffer.cases["q1"].failures == 2


@pytest.mark.llm
def test_real_evolve_produces_a_valid_bank_version(tmp_path):
    cli = cli_in(tmp_path, eval={"max_queries": 5}, llm=small_models())
    train_dir = tmp_path / "artifacts/train/sample"
    train_dir.mkdir(parents=True)
    cases = [{"query_id": f"sample-01/q00{i}", "question": q, "gold": [g], "category": "single-hop",
              "evidence": [e], "prediction": "not mentioned", "retrieved": [], "f1": 0.0}
             for i, (q, g, e) in enumerate([("Where does Maya work?", "Riverside Hospital", "S1:1"),
                                            ("What is the name of Maya's first cat?", "Pepper", "S1:3")])]
    (train_dir / "history.jsonl").write_text(json.dumps({"update": 1, "episodes": [{"id": "sample-01",
                                                                                     "cases": cases}]}))
    for args in (["prepare", "sample"], ["build-cache"], ["evolve", "--max-changes", "3"]):
        result = subprocess.run(cli + args, capture_output=True, text=True, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    state = json.loads((tmp_path / "artifacts/evolve/sample/state.json").read_text())
    [cycle] = state["cycles"]
    assert len(cycle["accepted"]) + len(cycle["rejected"]) >= 1
    assert all(e.get("why") for e in cycle["rejected"])
    best = SkillBank.load(tmp_path / "artifacts/evolve/sample/best_bank.yaml")  # validates
    assert set(SkillBank.seed().names) <= set(best.names)


def test_evolution_state_resumes_only_for_the_same_source_and_keeps_new_cases(tmp_path):
    from memskill_cli.evolution.snapshots import SnapshotStore

    seed = SkillBank.seed()
    first = HardCaseBuffer()
    first.add(case("a", 0.0), step=3)
    store = SnapshotStore.open(tmp_path, seed, first, source="controller-1")
    store.record_score(1, {"q1": 0.4})
    store.save()
    # Same training run, later updates: the run resumes and the new failures come in (step restarts never hide them).
    later = HardCaseBuffer()
    later.add(case("a", 0.1), step=5)
    later.add(case("b", 0.0), step=1)
    resumed = SnapshotStore.open(tmp_path, seed, later, source="controller-1")
    assert resumed.state.get(1).score == 0.4
    resumed.merge_cases(later)
    assert set(resumed.state.buffer.cases) == {"a", "b"} and resumed.state.buffer.cases["a"].step == 5
    # A retrained controller: the old scores were measured for something that no longer exists.
    fresh = SnapshotStore.open(tmp_path, seed, later, source="controller-2")
    assert fresh.state.get(1).score is None and fresh.state.source == "controller-2"
    assert set(fresh.state.buffer.cases) == {"a", "b"}


@pytest.mark.parametrize("reward", ["evidence", "coverage"])
def test_bank_versions_are_scored_by_the_answer_free_training_reward(tmp_path, encoder, reward):
    """With an answer-free training reward, a version's validation questions score what training rewards (the
    evidence turns its memories cite, or the answer words they hold), and no question is answered."""
    settings = Settings(eval={"split": "validation", "judge": False}, memory={"selector": "all"},
                        train={"reward": reward})
    context, designer, ledger = forgetful_setup(tmp_path, encoder, settings)
    assert version_measure(context) == reward
    buffer = HardCaseBuffer()
    buffer.add({**case("q0", 0.0, evidence=["S1:1"]), "trace_id": "sample-01"}, step=1)
    summary = evolve(settings.evolve, bank_scorer(context), source_turns(context.traces), encoder.encode, designer,
                     tmp_path / "evolve", SkillBank.seed(), buffer, "run-1", max_changes=3, cycles=1)
    assert ledger.role("answerer").calls == 0 and ledger.role("executor").calls > 0
    # The seed bank copies every turn of a window, so its memories cite every question's evidence turns; the
    # forgetful version stores nothing and holds none of it.
    seed_rows = [json.loads(line) for line in
                 (tmp_path / "evolve/versions/v1/runs/memskill/predictions.jsonl").read_text().splitlines()]
    forgetful = json.loads((tmp_path / "evolve/versions/v2/scores.json").read_text())
    assert seed_rows and all(r["prediction"] == f"(not answered: scored by {reward})" for r in seed_rows)
    if reward == "evidence":
        assert all(r["score"] == 1.0 for r in seed_rows)
    else:
        assert summary["best_score"] > 0.5
        assert all(r["score"] == r["answer_coverage"] for r in seed_rows)
    assert set(forgetful) == {r["query_id"] for r in seed_rows} and set(forgetful.values()) == {0.0}
    [cycle] = summary["cycles"]
    assert cycle["outcome"] == "rolled_back" and summary["best_version"] == 1
    metrics = json.loads((tmp_path / "evolve/versions/v1/runs/memskill/metrics.json").read_text())
    assert metrics["overall"]["scored_by"] == reward and metrics["windows"] >= 1


def test_a_changed_policy_scores_the_best_again_before_a_new_version_is_paired_with_it(tmp_path, encoder):
    """In the outer loop PPO runs between cycles: a new version must be paired with the best scored under the same
    policy, or what PPO learned in between passes for the edit's gain."""
    proposals = iter(["add-plans", "add-hobbies", "add-travel"])

    def designer_reply(request):
        if "Failed cases" in request.messages[0]["content"]:
            return json.dumps({"patterns": [{"type": "missing_storage", "description": "lost", "cases": [1]}],
                               "recommendations": ["store more"]})
        name = next(proposals)
        return json.dumps({"edits": [{"op": "add", "skill": name, "description": f"Store facts about {name[4:]}.",
                                      "instructions": f"INSERT each new fact about {name[4:]} the excerpt states.",
                                      "actions": ["INSERT"], "reason": "missing kind of fact"}]})

    designer = RoleClient("designer", ScriptedClient(designer_reply, "designer"), ledger=UsageLedger())
    policy = {"name": "policy-1", "level": 0.2}
    scored = []

    def score(bank, out_dir):  # what the policy of the moment gets from any bank: the edits add nothing
        scored.append((bank.version, policy["name"]))
        return {f"q{i}": policy["level"] + 0.01 * (i % 3) for i in range(30)}

    buffer = HardCaseBuffer()
    buffer.add(case("q0", 0.0, question="Where did Ana travel?"), step=1)

    def cycle():
        return evolve(Settings(evolve={"patience": 5}).evolve, score, {}, encoder.encode, designer,
                      tmp_path / "evolve", SkillBank.seed(), buffer, "", max_changes=3, cycles=1,
                      scored_with=policy["name"])

    first = cycle()
    assert first["cycles"][0]["outcome"] == "rolled_back" and scored == [(1, "policy-1"), (2, "policy-1")]
    policy.update(name="policy-2", level=0.6)  # PPO improved the policy; the bank did not change
    second = cycle()
    [entry] = second["cycles"]
    assert scored[2:] == [(1, "policy-2"), (3, "policy-2")]
    assert entry["best_rescored"] == {"version": 1, "score_before": pytest.approx(0.21),
                                      "score": pytest.approx(0.61)}
    assert entry["outcome"] == "rolled_back" and entry["gain"]["mean"] == pytest.approx(0.0)
    assert second["best_version"] == 1
    # The same policy again: the best's scores stand, only the new version is scored.
    third = cycle()
    assert scored[4:] == [(4, "policy-2")] and "best_rescored" not in third["cycles"][0]


def test_on_trial_a_version_is_judged_after_the_policy_trained_on_it(tmp_path, encoder):
    """In the outer loop a proposed version is not scored at once: the controller trains on it first, and the next
    cycle (or the end of training) scores it paired with the best, both under the policy of then."""
    proposals = iter([("add-plans", "INSERT each plan with its date, who makes it and where it happens."),
                      ("add-hobbies", "Write one memory per pastime the person names, with how often they do it.")])

    def designer_reply(request):
        if "Failed cases" in request.messages[0]["content"]:
            return json.dumps({"patterns": [{"type": "missing_storage", "description": "lost", "cases": [1]}],
                               "recommendations": ["store more"]})
        name, instructions = next(proposals)
        return json.dumps({"edits": [{"op": "add", "skill": name, "description": f"Store facts about {name[4:]}.",
                                      "instructions": instructions, "actions": ["INSERT"],
                                      "reason": "missing kind of fact"}]})

    designer = RoleClient("designer", ScriptedClient(designer_reply, "designer"), ledger=UsageLedger())
    policy = {"name": "untrained"}
    scored = []

    def score(bank, out_dir):  # a policy that learned to use add-plans gets more from a bank that has it
        scored.append((bank.version, policy["name"]))
        level = 0.7 if policy["name"] == "trained" and "add-plans" in bank.names else 0.2
        return {f"q{i}": level + 0.01 * (i % 3) for i in range(30)}

    buffer = HardCaseBuffer()
    buffer.add(case("q0", 0.0, question="Where did Ana travel?"), step=1)

    def cycle(bank, propose=True):
        return evolve(Settings(evolve={"patience": 5}).evolve, score, {}, encoder.encode, designer,
                      tmp_path / "evolve", bank, buffer, "", max_changes=3, cycles=int(propose),
                      scored_with=policy["name"], trial=True)

    first = cycle(SkillBank.seed())
    assert scored == [] and first["cycles"][0]["outcome"] == "on_trial" and first["judged"] is None
    on_trial = SkillBank.load(Path(first["current_bank"]))
    assert "add-plans" in on_trial.names and first["best_version"] == 1
    # A run resumed after a kill, whose policy never trained on the version on trial: its trial goes on.
    again = cycle(SkillBank.seed())
    assert scored == [] and again["cycles"] == [] and again["current_bank"] == first["current_bank"]
    policy["name"] = "trained"  # a PPO phase on the version on trial
    second = cycle(on_trial)
    assert scored == [(1, "trained"), (2, "trained")]
    assert second["judged"]["outcome"] == "best" and second["judged"]["gain"]["low"] > 0.4
    assert second["best_version"] == 2 and second["cycles"][0]["outcome"] == "on_trial"
    state = json.loads((tmp_path / "evolve/state.json").read_text())
    assert state["cycles"][0]["outcome"] == "best"  # the verdict joined the record of the cycle that proposed it
    third_bank = SkillBank.load(Path(second["current_bank"]))
    assert {"add-plans", "add-hobbies"} <= set(third_bank.names)
    policy["name"] = "retrained"  # this policy gets nothing from any bank: the version on trial is rolled back
    last = cycle(third_bank, propose=False)
    assert scored[2:] == [(2, "retrained"), (3, "retrained")] and last["cycles"] == []
    assert last["judged"]["outcome"] == "rolled_back" and last["best_version"] == 2
    assert SkillBank.load(Path(last["current_bank"])).hash == SkillBank.load(Path(last["exported"])).hash
    assert any(f["skill"] == "add-hobbies" and f["why"].startswith("rolled back") for f in
               json.loads((tmp_path / "evolve/state.json").read_text())["failed_proposals"])
