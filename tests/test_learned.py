"""The model learnt from agents' corrections (mailproc/learned.py): exported weights give the
library's own probabilities; `classify learn` waits for enough corrections, then trains on
them and on the cases the rules got right; the model weighs in beside the rules (type as
evidence, priority when sure) and says so; the nightly slot retrains; the starter model
ships and loads; [learn] is validated. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from helpers import mail, run, run_json
from mailproc import cases, commands, db, learned, scheduled
from mailproc.clock import Clock
from mailproc.commands import Origin
from mailproc.config import ConfigError, load
from mailproc.context import load_context
from mailproc.models import Case, LearnedModel, Message

NOW = datetime(2027, 1, 5, 9, 0, tzinfo=timezone.utc)
AGENT = "ana@example.com"

# Words no shipped rule knows: what the rules make of them is the default type.
BROKEN = ["Our zorblax frobnicator stopped glimmering", "The zorblax frobnicator glimmers no more",
          "zorblax frobnicator: no glimmer since Monday", "frobnicator of the zorblax is dark, not glimmering"]
PLAIN = ["Where do I find the quux palette", "Can you tell me which quux colours exist",
         "Quux palette: which colours can I pick", "Is there a list of quux colours"]


def example(text: str, label: str) -> learned.Example:
    return learned.Example(learned.features(text.lower(), "", ()), label, 1.0, True)


# --- the exported model ------------------------------------------------------------------------

@pytest.mark.parametrize("labels", [("bug", "request"), ("bug", "request", "admin")])
def test_the_exported_weights_give_the_librarys_probabilities(labels):
    texts = {"bug": BROKEN, "request": PLAIN,
             "admin": ["Please add two zorblax licences", "Add licences for quux team", "Remove one licence"]}
    data = [example(t, label) for label in labels for t in texts[label]]
    model = learned.train("type", data, NOW)
    vectorizer, classifier = learned.pipeline(data)
    for text in ["zorblax frobnicator dark", "quux colours palette list", "licences", "nothing known here"]:
        found = learned.features(text, "", ())
        want = dict(zip(classifier.classes_, classifier.predict_proba(vectorizer.transform([found]))[0]))
        got = model.probabilities(found)
        assert set(got) == set(labels) and all(abs(got[c] - want[c]) < 1e-9 for c in labels), (text, got, want)
    assert model.predict(learned.features("zorblax frobnicator not glimmering", "", ()))[0] == "bug"


def test_a_starter_file_round_trips_to_the_same_predictions(tmp_path):
    data = [example(t, "bug") for t in BROKEN] + [example(t, "request") for t in PLAIN]
    model = learned.train("type", data, NOW)
    path = tmp_path / "starter.json"
    learned.write_starter(path, [model], "four mails each", NOW)
    read = learned.read_starter(path.read_text())["type"]
    assert read.source == "starter model, 8 labelled mails" and read.classes == model.classes
    found = learned.features("zorblax glimmering", "", ())
    assert abs(read.probabilities(found)["bug"] - model.probabilities(found)["bug"]) < 1e-3


def test_the_shipped_starter_model_loads_and_reads_the_four_types():
    shipped = learned.starter_models()
    assert set(shipped) == {"type", "priority"} and set(shipped["type"].classes) == {
        "request", "admin", "enhancement", "bug"}
    kind, _p = shipped["type"].predict(learned.features("please cancel our subscription",
                                                        "please cancel our subscription and the invoices", ()))
    assert kind == "admin"


def test_a_trainer_without_two_values_or_without_the_library_says_why(monkeypatch):
    with pytest.raises(learned.LearnError, match="same value"):
        learned.train("type", [example(t, "bug") for t in BROKEN], NOW)
    import builtins
    real = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError(name)
        return real(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(learned.LearnError, match=r"pip install 'mailproc\[learn\]'"):
        learned.train("type", [example(BROKEN[0], "bug"), example(PLAIN[0], "request")], NOW)


# --- learning from a desk's corrections ----------------------------------------------------------

@pytest.fixture
def site(db_url, make_config):
    return make_config(database=db_url, mailboxes=[
        dict(name="support", host="127.0.0.1", port=1, username="u", password="p", address="support@example.com")],
        sections={"learn": {"min_corrections": 20, "starter": "no"}})


def _open(text: str, type_: str, priority: str, at: datetime) -> Case:
    return cases.open_case({"contact": "cus@shop.example", "summary": text, "description": text + ".",
                            "type": type_, "priority": priority},
                           decided={"type": type_, "priority": priority},
                           rules={"type": "classification:default", "priority": "priority:default"},
                           actor="cus@shop.example", now=at)


def _correct(case: Case, verb: str, value: str, at: datetime) -> None:
    row = Message.create(raw_sha256="0" * 64, size=1, source="ingest", arrived_at=at.replace(tzinfo=None),
                         stored_at=at.replace(tzinfo=None))
    with db.proxy.obj.atomic():
        commands.REGISTRY[verb].run(None, case, value, actor=AGENT, now=at, message=Origin(row, ""))


def _desk(site, corrected: int) -> None:
    """`corrected` zorblax cases the rules called request and agents made bug P2, and 30
    quux questions the rules got right (resolved, never corrected)."""
    db.open_database(load(site).database)
    try:
        for i in range(corrected):
            at = NOW - timedelta(days=20, hours=i)
            case = _open(f"{BROKEN[i % 4]} ({i})", "request", "P5", at)
            _correct(case, "type", "bug", at + timedelta(hours=1))
            _correct(case, "priority", "P2", at + timedelta(hours=1))
        for i in range(30):
            at = NOW - timedelta(days=10, hours=i)
            case = _open(f"{PLAIN[i % 4]} ({i})", "request", "P5", at)
            Case.update(resolved_at=at + timedelta(hours=2)).where(Case.id == case.id).execute()
    finally:
        db.close()


def test_learn_waits_for_enough_corrections(site, capsys):
    _desk(site, 5)
    data = run_json(site, capsys, "classify", "learn", now=NOW.isoformat())
    assert [(r["field"], r["trained"]) for r in data] == [("type", False), ("priority", False)]
    assert "5 corrections of type so far; a model is trained from 20" in data[0]["why"]
    db.open_database(load(site).database)
    try:
        assert LearnedModel.select().count() == 0
    finally:
        db.close()


def test_learnt_models_weigh_in_beside_the_rules_and_say_so(site, tmp_path, capsys):
    eml = tmp_path / "new.eml"
    eml.write_bytes(mail(subject="zorblax frobnicator", body="The zorblax frobnicator is not glimmering today.",
                         sender="someone@else.example"))
    [before] = run_json(site, capsys, "classify", str(eml), now=NOW.isoformat())
    assert before["fields"]["type"] == "request" and "model" not in before["decided_by"]

    _desk(site, 24)
    data = run_json(site, capsys, "classify", "learn", now=NOW.isoformat())
    types, priorities = data
    assert types["trained"] and (types["examples"], types["corrections"]) == (54, 24)
    assert types["accuracy"] is not None and types["accuracy"] >= 0.9  # k-fold, on the corrected cases
    assert "zorblax" in types["strongest"]["bug"] and "quux" in types["strongest"]["request"]
    assert priorities["trained"] and set(priorities["classes"]) == {"P2", "P5"}

    [after] = run_json(site, capsys, "classify", str(eml), now=NOW.isoformat())
    assert after["fields"]["type"] == "bug" and after["fields"]["needs_triage"] is False
    assert after["decided_by"]["type"] == "classification:model"
    assert "model (bug +" in after["decided_by"]["evidence"] and "learnt from 24 corrections" in \
        after["decided_by"]["evidence"]
    assert after["fields"]["priority"] == "P2" and after["decided_by"]["priority"] == "model:priority"
    assert after["decided_by"]["model"].startswith("priority P2 (")

    code, out = run(site, "classify", str(eml), now=NOW.isoformat(), capsys=capsys)
    assert code == 0 and "model (bug +" in out and "model:priority" in out
    code, out = run(site, "classify", "learn", now=NOW.isoformat(), capsys=capsys)
    assert code == 0 and "type: trained on 54 cases (24 corrected)" in out and "right on 100% of the corrections" in out
    assert any(line.split()[0] == "bug" and "zorblax" in line for line in out.splitlines() if line.startswith("  "))

    # a quux question still reads as the rules and the model agree
    eml.write_bytes(mail(subject="quux palette", body="Which quux colours can I pick?", sender="x@else.example"))
    [plain] = run_json(site, capsys, "classify", str(eml), now=NOW.isoformat())
    assert plain["fields"]["type"] == "request" and plain["fields"]["priority"] != "P2"


def test_a_new_case_gets_the_models_decision_through_intake(site, capsys):
    _desk(site, 24)
    run_json(site, capsys, "classify", "learn", now=NOW.isoformat())
    db.open_database(load(site).database)
    try:
        from mailproc.stages.classify import decide, facts_of
        from mailproc.parse import parse
        ctx = load_context(load(site), Clock(NOW))
        facts = facts_of(parse(mail(subject="frobnicator", body="Our zorblax frobnicator is not glimmering today.")),
                         "support")
        fields, by = decide(ctx.rules, facts, NOW, None, learned.in_use(1.0, 0.8, starter=False))
        assert (fields["type"], fields["priority"], by["priority"]) == ("bug", "P2", "model:priority")
        fields, by = decide(ctx.rules, facts, NOW, None, learned.in_use(0.0, 0.8, starter=False))  # weight 0: off
        assert fields["type"] == "request" and "model" not in by
    finally:
        db.close()


def test_learning_again_keeps_the_newest_few_and_uses_the_newest(site, capsys):
    _desk(site, 24)
    for day in range(learned.KEEP + 2):
        run_json(site, capsys, "classify", "learn", now=(NOW + timedelta(days=day)).isoformat())
    db.open_database(load(site).database)
    try:
        assert LearnedModel.select().where(LearnedModel.field == "type").count() == learned.KEEP
        newest = learned.current("type")
        assert newest is not None and abs(newest.trained_at.replace(tzinfo=timezone.utc) - (
            NOW + timedelta(days=learned.KEEP + 1))) < timedelta(minutes=1)  # the CLI's clock runs on from --now
    finally:
        db.close()


def test_the_nightly_slot_retrains(db_url, make_config):
    site = make_config(database=db_url, sections={"learn": {"min_corrections": 20, "nightly": "03:00"}})
    _desk(site, 24)
    config = load(site)
    db.open_database(config.database)
    try:
        ctx = load_context(config, Clock(NOW))
        names = [j.name for j in scheduled.jobs(ctx)]
        assert "learn" in names
        sched = scheduled.Scheduler(ctx)
        night = datetime(2027, 1, 6, 3, 1, tzinfo=timezone.utc)  # the installation's zone is UTC here
        sched.run(night)
        assert {m.field for m in LearnedModel.select()} == {"type", "priority"}
        sched.run(night + timedelta(minutes=5))  # once a night
        assert LearnedModel.select().count() == 2
        sched.run(night + timedelta(days=1))
        assert LearnedModel.select().where(LearnedModel.field == "type").count() == 2
    finally:
        db.close()


def test_classify_report_is_a_word_too(site, capsys):
    _desk(site, 3)
    data = run_json(site, capsys, "classify", "report", now=NOW.isoformat())
    assert data["fields"]["type"]["corrections"] == 3
    code, _out = run(site, "classify", "learn", "x.eml", capsys=capsys)
    assert code == 2


@pytest.mark.parametrize("key, value", [("weight", "-1"), ("priority_probability", "1.5"), ("starter", "maybe"),
                                        ("nightly", "25:00"), ("min_corrections", "0"), ("learning_rate", "2")])
def test_bad_learn_settings_fail_at_load(make_config, key, value):
    with pytest.raises(ConfigError) as caught:
        load(make_config(sections={"learn": {key: value}}))
    message = key if key == "learning_rate" else f"[learn] {key}"
    assert message in str(caught.value)


def test_the_json_of_a_stored_model_is_plain_weights(site, capsys):
    _desk(site, 24)
    run_json(site, capsys, "classify", "learn", now=NOW.isoformat())
    db.open_database(load(site).database)
    try:
        row = LearnedModel.select().where(LearnedModel.field == "type").get()
        data = json.loads(row.data)
        assert set(data) == {"classes", "intercepts", "terms", "idf", "weights"} and "zorblax" in data["terms"]
        assert len(data["idf"]) == len(data["terms"]) == len(data["weights"][0])
    finally:
        db.close()


def test_the_models_guess_counts_where_no_rule_speaks_and_not_against_a_rule():
    """Beside a rule, the model must be MIN_PROBABILITY sure; where no rule found anything,
    MIN_PROBABILITY_ALONE: then its guess beats the default type, weaker still it is triage."""
    from types import SimpleNamespace

    from mailproc.models import Customer
    from mailproc.rules import load_rules
    from mailproc.rules.matching import Facts
    from mailproc.stages.classify import decide

    rules = load_rules()
    customer = Customer(match="shop.example", company="Shop", plan="paid", licenses=5)

    def facts(subject: str, body: str) -> Facts:
        return Facts(subject=subject, body=body, sender="a@shop.example", mailbox=None, customer=customer)

    p = 0.0
    model = SimpleNamespace(predict=lambda found: ("enhancement", p), known=lambda found: 10, source="a test model")
    models = learned.InUse(model, None, 1.5, 0.8)  # type: ignore[arg-type]
    for p, want, source in [(0.5, "enhancement", "classification:model"), (0.3, "request", "classification:default")]:
        fields, by = decide(rules, facts("hello", "just a note"), NOW, None, models)
        assert (fields["type"], by["type"], fields["needs_triage"]) == (want, source, source.endswith("default")), p
    p = 0.55  # beside a rule's evidence (an error is a bug), a guess under 60 % says nothing
    fields, by = decide(rules, facts("reports", "an error on the reports page"), NOW, None, models)
    assert fields["type"] == "bug" and "model" not in by.get("evidence", "")
    p = 0.95  # a sure model outweighs one weak rule
    fields, by = decide(rules, facts("reports", "an error on the reports page"), NOW, None, models)
    assert fields["type"] == "enhancement" and "model (enhancement +1.42)" in by["evidence"]


def test_the_priority_model_needs_less_certainty_against_a_rule_that_only_read_the_directory():
    from types import SimpleNamespace

    from mailproc.models import Customer
    from mailproc.rules import load_rules
    from mailproc.rules.matching import Facts
    from mailproc.stages.classify import decide

    rules = load_rules()
    customer = Customer(match="shop.example", company="Shop", plan="paid", licenses=5)
    model = SimpleNamespace(predict=lambda found: ("P5", 0.7), known=lambda found: 20, source="a test model")
    models = learned.InUse(None, model, 1.5, 0.8)  # type: ignore[arg-type]

    def priority(subject: str, body: str) -> tuple[str, str]:
        fields, by = decide(rules, Facts(subject=subject, body=body, sender="a@shop.example", mailbox=None,
                                         customer=customer), NOW, None, models)
        assert fields["type"] == "bug"
        return fields["priority"], by["priority"]

    # the rules read "blocks our daily work" (a facet in the text): 70 % is not enough
    assert priority("export broken", "The export fails with error 500 and blocks our daily work.")[1] \
        .startswith("priority:bug-blocking")
    # the rules only read the directory (a paid customer's bug): 70 % is enough
    assert priority("export broken", "The export fails with error 500.") == ("P5", "model:priority")


def test_the_priority_model_never_overrides_seed_004_urgency_nor_reads_a_few_words():
    from types import SimpleNamespace

    from mailproc.rules import load_rules
    from mailproc.rules.matching import Facts
    from mailproc.stages.classify import decide

    rules = load_rules()
    known = 20
    model = SimpleNamespace(predict=lambda found: ("P3", 0.7), known=lambda found: known, source="a test model")
    models = learned.InUse(None, model, 1.5, 0.8)  # type: ignore[arg-type]

    def decided(subject: str, body: str) -> tuple[str, str]:
        fields, by = decide(rules, Facts(subject=subject, body=body, sender="a@nowhere.example", mailbox=None,
                                         customer=None), NOW, None, models)
        return fields["priority"], by["priority"]

    # an unknown sender's urgent bug is P2 by the urgent rule: it read the text, so 70 % is not enough
    assert decided("forms not converting", "Our contact forms are not converting since this morning.") == (
        "P2", "priority:bug-urgent")
    assert decided("export broken", "The export fails with error 500.") == ("P3", "model:priority")
    known = 3  # the same mail, but the model knows too little of it
    assert decided("export broken", "The export fails with error 500.") == ("P6", "priority:bug-other")


def test_too_little_text_to_train_on_is_a_learn_error():
    data = [learned.Example([f"only{i}"], label, 1.0, True) for i, label in enumerate(["bug", "request"] * 3)]
    with pytest.raises(learned.LearnError, match="could not train"):
        learned.train("type", data, NOW)


def test_each_database_has_its_own_current_model(tmp_path):
    model = learned.train("type", [example(t, "bug") for t in BROKEN] + [example(t, "request") for t in PLAIN], NOW)
    first, second = f"sqlite:///{tmp_path}/a.sqlite3", f"sqlite:///{tmp_path}/b.sqlite3"
    db.open_database(first)
    try:
        db.insert(LearnedModel, field="type", trained_at=NOW, examples=8, corrections=8, accuracy=None,
                  data=model.to_json())
        assert learned.current("type") is not None
    finally:
        db.close()
    db.open_database(second)
    try:
        assert learned.current("type") is None
    finally:
        db.close()
