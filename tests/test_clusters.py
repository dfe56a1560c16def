"""Known-issue clusters (seed 002): new cases that read alike within a day form a cluster;
at 3 the leads are mailed a known= suggestion once, at 6 on-call is paged once; the report
lists clusters and the cases tagged with the same known issue together. On SQLite and
PostgreSQL; the daemon's wiring through Dovecot and SMTP."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import timedelta
from urllib.parse import unquote

import pytest

from mailproc import cases, clusters, db, oncall, tokens
from mailproc.clock import Clock
from mailproc.commands.known import KNOWN
from mailproc.config import load
from mailproc.context import load_context
from mailproc.models import Case, Cluster, ClusterMember, Outbox
from mailproc.reports import clusters as report
from mailproc.subject import parse_commands

from helpers import T0, mail, run_once

ALWAYS = "Mon-Sun 00:00-24:00"
SECRET = "s" * 40

# Realistic pairs: the same problem in other words, and different problems in similar words.
SAME = [
    (("Calendar sync stopped working", "Hi, since this morning our calendar does not sync with Outlook anymore. "
      "New events created in the app never show up in Outlook. Error: Sync failed (code 4012)."),
     ("Re: Outlook sync failing", "Hello support, the sync with outlook is failing for all our users. Events from "
      "the calendar are not appearing. We get Sync failed (code 4012) in the settings page.")),
    (("Sincronização do calendário não funciona", "Bom dia, desde hoje de manhã a sincronização com o Outlook "
      "parou. Os eventos novos não aparecem no Outlook. Erro: Sync failed (code 4012)."),
     ("Erro de sincronização com Outlook", "Olá, a sincronização do calendário com o outlook está falhando desde "
      "hoje. Aparece a mensagem Sync failed (code 4012) e os eventos não aparecem.")),
    (("La sincronización con Outlook falla", "Hola, desde esta mañana el calendario no se sincroniza con Outlook. "
      "Sale el error Sync failed (code 4012)."),
     ("Fwd: Error de sincronización del calendario", "Buenos días, los eventos del calendario no aparecen en "
      "Outlook, la sincronización falla con el error Sync failed (code 4012).")),
    (("Can't log in after password reset", "I reset my password yesterday and now the login page says invalid "
      "credentials. I tried twice."),
     ("Login not working after resetting password", "After I changed my password the app keeps telling me my "
      "credentials are invalid and won't let me in.")),
    (("Invoice PDF is blank", "The invoice PDF we downloaded for October is completely blank, no lines at all."),
     ("Blank invoice download", "When I download the October invoice as PDF it opens as an empty page.")),
]
DIFFERENT = [
    (SAME[0][0], ("Calendar shows wrong time zone", "Hi, since this morning our calendar shows all events one hour "
                  "late. The time zone in settings is right, Outlook shows them right.")),
    (("Outlook sync failing", "Hello support, the sync with outlook is failing for all our users."),
     ("Contacts sync with Google failing", "Hello support, the sync of contacts with Google is failing for one of "
      "our users, duplicates appear.")),
    (("Can't log in after password reset", "I reset my password yesterday and now the login page says invalid "
      "credentials."),
     ("Can't reset my password", "I try to reset my password but the reset email never arrives, I checked spam.")),
    (("Invoice PDF is blank", "The invoice PDF we downloaded for October is completely blank."),
     ("Invoice amount is wrong", "The October invoice charges us for 12 seats but we only have 10.")),
    (("Erro de sincronização com Outlook", "Olá, a sincronização do calendário com o outlook está falhando desde "
      "hoje."),
     ("Erro ao exportar relatório", "Olá, a exportação do relatório para Excel está falhando desde hoje, aparece "
      "um erro.")),
]

# The sync failure in six customers' words (EN), then an unrelated case.
SYNC = [
    ("Calendar sync stopped working", "Hi, since this morning our calendar does not sync with Outlook anymore. "
     "New events never show up in Outlook. Error: Sync failed (code 4012)."),
    ("Outlook sync failing", "Hello, the sync with Outlook is failing for all our users since today. Calendar "
     "events are not appearing, the settings page says Sync failed (code 4012)."),
    ("RE: Events not syncing to Outlook", "Our calendar events stopped syncing with Outlook this morning. Sync "
     "failed (code 4012) every time we retry."),
    ("Outlook calendar sync error 4012", "Calendar sync to Outlook fails with Sync failed (code 4012), events "
     "missing since the morning."),
    ("Sync failed code 4012", "Since this morning the calendar will not sync to Outlook: Sync failed (code 4012). "
     "Events created today are missing."),
    ("Calendar not syncing with Outlook", "Hi team, our Outlook calendar stopped syncing, new events are missing "
     "and we see Sync failed (code 4012)."),
]
UNRELATED = ("Invoice PDF is blank", "The invoice PDF we downloaded for October is completely blank, no lines.")
PT = [
    ("Sincronização do calendário não funciona", "Bom dia, desde hoje de manhã a sincronização com o Outlook parou. "
     "Os eventos novos não aparecem no Outlook. Erro: Sync failed (code 4012)."),
    ("Erro de sincronização com Outlook", "Olá, a sincronização do calendário com o outlook está falhando desde "
     "hoje. Aparece a mensagem Sync failed (code 4012) e os eventos não aparecem."),
    ("Calendário não sincroniza com o Outlook", "Os eventos do calendário não aparecem no Outlook desde hoje de "
     "manhã, a sincronização falha: Sync failed (code 4012)."),
]
ES = [
    ("La sincronización con Outlook falla", "Hola, desde esta mañana el calendario no se sincroniza con Outlook. "
     "Sale el error Sync failed (code 4012)."),
    ("Error de sincronización del calendario", "Buenos días, los eventos del calendario no aparecen en Outlook, la "
     "sincronización falla con el error Sync failed (code 4012)."),
    ("El calendario no sincroniza con Outlook", "Desde esta mañana los eventos nuevos no aparecen en Outlook: Sync "
     "failed (code 4012) al sincronizar el calendario."),
]


def _score(a, b) -> float:
    return clusters.score(clusters.text_of(*a), clusters.text_of(*b))


@pytest.mark.parametrize("a, b", SAME)
def test_the_same_problem_in_other_words_scores_at_the_threshold(a, b):
    assert _score(a, b) >= clusters.THRESHOLD


@pytest.mark.parametrize("a, b", DIFFERENT)
def test_different_problems_in_similar_words_score_below_it(a, b):
    assert _score(a, b) < clusters.THRESHOLD


def test_the_compared_text_is_the_subject_and_the_start_of_the_text_without_prefixes_accents_or_small_words():
    text = clusters.text_of("Re: Fwd: Sincronização FALHOU", "Olá, a sincronização do calendário " + "x" * 400
                            + " hidden")
    assert text.split() == sorted(set(text.split()))
    assert "sincro" in text and "falhou" in text and "calend" in text and "ola" not in text
    assert "re" not in text.split() and "hidden" not in text  # past DESCRIPTION characters
    assert clusters.text_of("RES: x", "") == clusters.text_of("x", "")


def test_the_slug_is_a_couple_of_words_of_the_summary():
    assert clusters.slug("Re: Calendar sync stopped working!") == "calendar-sync-stopped"
    assert clusters.slug("Sincronização não funciona") == "sincronizacao-funciona"
    assert clusters.slug("??") == "issue"
    assert KNOWN.fullmatch(f"12-{clusters.slug('Ça ne marche pas: erreur 4012')}")


# --- the pass, on both databases -----------------------------------------------------------


@pytest.fixture
def ctx(db_url, make_config):
    agents = {"lena": dict(address="lena@agents.example", teams="Support Team", hours=ALWAYS, roles="lead"),
              "omar": dict(address="omar@agents.example", teams="Support Team", hours=ALWAYS, roles="oncall"),
              "tess": dict(address="tess@agents.example", teams="Support Team", hours=ALWAYS, roles="lead, oncall"),
              "zed": dict(address="zed@agents.example", teams="Support Team", hours=ALWAYS)}
    config = load(make_config(database=db_url, agents=agents, extra={"secret": SECRET},
                              mailboxes=[dict(name="support", host="127.0.0.1", port=1, username="u", password="p",
                                              address="support@example.com")]))
    db.open_database(config.database)
    yield load_context(config, Clock(T0))
    db.close()


def _case(summary: str, text: str, at, *, contact: str, type: str = "bug", **values) -> Case:
    return cases.open_case({"contact": contact, "summary": summary, "description": text, "type": type, **values},
                           decided={}, rules={}, actor=contact, now=at)


def _cluster_of(case: Case) -> int:
    return ClusterMember.get(ClusterMember.case == case.id).cluster_id


def _text(row: Outbox) -> str:
    return email.message_from_bytes(bytes(row.raw), policy=email.policy.default).get_body(("plain",)).get_content()


def _mails(kind: str) -> list[Outbox]:
    return list(Outbox.select().where(Outbox.kind == kind).order_by(Outbox.id))


def test_three_customers_with_one_sync_failure_cluster_and_the_leads_are_told_once(ctx):
    at = T0
    first = [_case(s, t, at + timedelta(minutes=10 * i), contact=f"c{i}@shop{i}.example")
             for i, (s, t) in enumerate(SYNC[:2])]
    other = _case(*UNRELATED, at + timedelta(minutes=25), contact="ap@books.example")
    found = clusters.run(ctx, at + timedelta(minutes=30))
    assert len(found.opened) == 2 and [c for c, _ in found.joined] == [first[1].id] and not found.suggested
    assert _cluster_of(first[0]) == _cluster_of(first[1]) != _cluster_of(other)
    assert not _mails("known_issue_suggestion")

    third = _case(*SYNC[2], at + timedelta(minutes=40), contact="it@third.example")
    found = clusters.run(ctx, at + timedelta(minutes=45))
    cluster = Cluster.get_by_id(_cluster_of(first[0]))
    assert found.suggested == [cluster.id] and _cluster_of(third) == cluster.id
    assert cluster.size == 3 and cluster.suggested_at is not None and cluster.paged_at is None
    assert cluster.summary == SYNC[0][0] and cluster.known == "1-calendar-sync-stopped"
    sent = _mails("known_issue_suggestion")
    assert sorted(o.to_addr for o in sent) == ["lena@agents.example", "tess@agents.example"]  # the leads only
    text = _text(sent[0])
    listed = [int(n) for n in re.findall(r"^  #(\d+) ", text, re.M)]
    assert listed == [c.id for c in (*first, third)] and "it@third.example" in text and other.contact not in text

    # re-running does nothing more
    again = clusters.run(ctx, at + timedelta(minutes=50))
    assert again.total == 0 and not again.suggested
    assert len(_mails("known_issue_suggestion")) == 2 and Cluster.get_by_id(cluster.id).size == 3


def test_each_case_link_replies_with_a_token_for_that_case_and_lead_and_the_known_command(ctx):
    made = [_case(s, t, T0 + timedelta(minutes=i), contact=f"c{i}@x{i}.example") for i, (s, t) in enumerate(SYNC[:3])]
    clusters.run(ctx, T0 + timedelta(minutes=5))
    [row] = [o for o in _mails("known_issue_suggestion") if o.to_addr == "lena@agents.example"]
    text = _text(row)
    links = re.findall(r"mailto:(\S+)\?subject=(\S+)", text)
    assert len(links) == 3
    for case, (address, subject) in zip(made, links):
        token = address.split("+", 1)[1].split("@", 1)[0]
        verified = tokens.verify(token, T0 + timedelta(minutes=6), [SECRET.encode()], ["lena", "tess"])
        assert (verified.case, verified.agent) == (case.id, "lena")
        commands = parse_commands(unquote(subject)).commands
        assert [(c.name, c.value) for c in commands] == [("known", "1-calendar-sync-stopped")]
        assert f"[Case #{case.id}]" in unquote(subject)


def test_the_sixth_pages_on_call_once_with_a_status_page_draft(ctx):
    made = []
    for i, (s, t) in enumerate(SYNC):
        made.append(_case(s, t, T0 + timedelta(minutes=5 * i), contact=f"c{i}@shop{i}.example"))
        found = clusters.run(ctx, T0 + timedelta(minutes=5 * i + 1))
        assert found.paged == ([] if i < 5 else [_cluster_of(made[0])])
    cluster = Cluster.get_by_id(_cluster_of(made[0]))
    assert cluster.size == 6 and cluster.paged_at is not None
    assert {_cluster_of(c) for c in made} == {cluster.id}
    [page] = _mails("known_issue_page")
    settings = oncall.settings(ctx.config)
    on_call = oncall.on_call(settings, ctx.config.timezone, T0 + timedelta(minutes=26))
    assert page.to_addr == f"{on_call}@agents.example"
    text = _text(page)
    assert "status page" in text and "We are investigating reports of a problem: Calendar sync" in text
    assert len(re.findall(r"^  #\d+ ", text, re.M)) == 6
    assert len(_mails("known_issue_suggestion")) == 2  # told at 3, not again at 4, 5, 6
    assert clusters.run(ctx, T0 + timedelta(hours=1)).total == 0
    _case(*SYNC[0], T0 + timedelta(hours=2), contact="seventh@x.example")
    assert clusters.run(ctx, T0 + timedelta(hours=2, minutes=1)).joined
    assert len(_mails("known_issue_page")) == 1 and len(_mails("known_issue_suggestion")) == 2


def test_one_failure_reported_in_portuguese_spanish_and_english_is_one_cluster(ctx):
    pt = [_case(s, t, T0 + timedelta(minutes=i), contact=f"p{i}@loja.example") for i, (s, t) in enumerate(PT)]
    es = [_case(s, t, T0 + timedelta(minutes=10 + i), contact=f"e{i}@tienda.example") for i, (s, t) in enumerate(ES)]
    en = [_case(s, t, T0 + timedelta(minutes=20 + i), contact=f"c{i}@shop.example") for i, (s, t) in enumerate(SYNC)]
    clusters.run(ctx, T0 + timedelta(minutes=30))
    # sincronização / sincronización, calendário / calendario, Outlook and the error's words: PT and ES
    # are one cluster from the start, and the English mails, quoting the same error, join it
    assert len({_cluster_of(c) for c in pt + es}) == 1 and {_cluster_of(c) for c in en} == {_cluster_of(pt[0])}
    cluster = Cluster.get_by_id(_cluster_of(pt[0]))
    assert cluster.size == 12 and cluster.paged_at is not None and len(_mails("known_issue_page")) == 1


INVOICE = [
    ("Invoice PDF is blank", "The invoice PDF we downloaded for October is completely blank, no lines at all."),
    ("Blank invoice download", "When I download the October invoice as PDF it opens as an empty page."),
    ("October invoice PDF empty", "Our October invoice PDF downloads as a blank page, could you resend it?"),
]


def test_two_clusters_suggested_in_one_pass_get_one_known_id_each(ctx):
    for i, (s, t) in enumerate(SYNC[:3]):
        _case(s, t, T0 + timedelta(minutes=i), contact=f"c{i}@shop.example")
    for i, (s, t) in enumerate(INVOICE):
        _case(s, t, T0 + timedelta(minutes=5 + i), contact=f"ap{i}@books.example")
    found = clusters.run(ctx, T0 + timedelta(minutes=20))
    assert len(found.suggested) == 2
    knowns = [Cluster.get_by_id(i).known for i in found.suggested]
    assert knowns == ["1-calendar-sync-stopped", "2-invoice-pdf-blank"]
    assert len(_mails("known_issue_suggestion")) == 4  # two leads, two clusters


def test_only_the_same_type_within_the_window_is_compared_and_internal_cases_are_left_out(ctx):
    old = _case(*SYNC[0], T0 - timedelta(hours=30), contact="old@x.example")
    clusters.run(ctx, T0 - timedelta(hours=29))
    other_type = _case(*SYNC[1], T0, contact="a@x.example", type="request")
    internal = _case(*SYNC[2], T0, contact="ana@agents.example", internal=True)
    new = _case(*SYNC[3], T0 + timedelta(minutes=1), contact="b@x.example")
    found = clusters.run(ctx, T0 + timedelta(minutes=2))
    assert not found.joined and len(found.opened) == 2  # the request and the bug, each alone
    assert _cluster_of(new) != _cluster_of(old) and _cluster_of(other_type) != _cluster_of(new)
    assert not ClusterMember.select().where(ClusterMember.case == internal.id).exists()
    # a case created after `now` waits for its time
    later = _case(*SYNC[4], T0 + timedelta(hours=1), contact="c@x.example")
    assert clusters.run(ctx, T0 + timedelta(minutes=3)).total == 0
    assert clusters.run(ctx, T0 + timedelta(hours=1, minutes=1)).joined == [(later.id, _cluster_of(new))]


def test_the_report_lists_clusters_and_the_cases_of_each_known_issue_together(ctx):
    empty = report.build(ctx, day=T0.date(), now=T0)
    assert empty.data["clusters"] == [] and empty.data["known_issues"] == [] and empty.data["missing_docs"] == []
    assert report.section(ctx, T0 - timedelta(days=1), T0, T0) == {"clusters": [], "missing_docs": []}
    made = [_case(s, t, T0 + timedelta(minutes=i), contact=f"c{i}@x{i}.example") for i, (s, t) in enumerate(SYNC[:3])]
    lone = _case(*UNRELATED, T0 + timedelta(minutes=5), contact="ap@books.example")
    clusters.run(ctx, T0 + timedelta(minutes=10))
    for case in (made[0], made[2], lone):
        cases.set_field(case, "known_issue", "77-calendar-sync", actor="lena@agents.example",
                        now=T0 + timedelta(minutes=20))
    cases.set_field(made[1], "known_issue", "78-other", actor="lena@agents.example", now=T0 + timedelta(minutes=20))
    built = report.build(ctx, day=T0.date(), now=T0 + timedelta(hours=1))
    [cluster] = built.data["clusters"]
    assert cluster["size"] == 3 and [m["case"] for m in cluster["members"]] == [c.id for c in made]
    assert cluster["suggested_at"] is not None and cluster["paged_at"] is None
    known = {k["known"]: [c["case"] for c in k["cases"]] for k in built.data["known_issues"]}
    assert known == {"77-calendar-sync": [made[0].id, made[2].id, lone.id], "78-other": [made[1].id]}
    assert "77-calendar-sync: 3 cases" in built.text and f"#{lone.id}" in built.text
    assert "<svg" not in built.html and "<script" not in built.html and "data:" not in built.html
    section = report.section(ctx, T0, T0 + timedelta(days=1), T0 + timedelta(days=1))
    assert [c["size"] for c in section["clusters"]] == [3]
    # the next suggestion takes an ID above every known issue in use
    assert clusters.next_known_id() == 79


# --- the daemon's wiring ---------------------------------------------------------------------


def test_run_once_clusters_new_mail_after_the_sweep(dovecot, imap_user, smtp, make_config, sqlite_url):
    box = dict(name="support", host=dovecot.host, port=dovecot.port, username=imap_user[0], password=imap_user[1],
               address="support@example.com")
    agents = {"lena": dict(address="lena@agents.example", teams="Support Team", hours=ALWAYS, roles="lead")}
    config = make_config(database=sqlite_url, mailboxes=[box], smtp=dict(host=smtp.host, port=smtp.port),
                         agents=agents)
    now = T0
    # all three read as bugs by rules/classification.toml ("error"): only cases of one type are compared
    reports = [SYNC[0], SYNC[3], ("Outlook sync failing", "Hello, the sync with Outlook is failing for all our "
                                  "users since today, the settings page shows the error Sync failed (code 4012).")]
    for i, (subject, body) in enumerate(reports):
        now += timedelta(minutes=5)
        dovecot.append(imap_user[0], mail(subject, body, sender=f"c{i}@shop{i}.example", message_id=f"sync-{i}"),
                       internaldate=now)
        run_once(config, now + timedelta(minutes=1))
    db.open_database(load(config).database)
    try:
        assert {c.type for c in Case.select()} == {"bug"}
        [cluster] = Cluster.select().where(Cluster.size >= 2)
        assert cluster.size == 3 and cluster.suggested_at is not None
        [row] = _mails("known_issue_suggestion")
        assert row.to_addr == "lena@agents.example"
        for count in range(1, 20):
            got = [m for m in smtp.wait_for(count) if m.message["Message-ID"].strip("<>") == row.message_id]
            if got:
                break
        assert got and got[0].rcpt_tos == ["lena@agents.example"]
        assert "Possible known issue" in got[0].message["Subject"]
    finally:
        db.close()


# --- short routine mails, cluster types that page, and claims that need a recipient ---------------

INVOICES = [("Invoice for March", "Please send me the invoice for March."),
            ("invoice", "Hi, can you send the March invoice please? Thanks"),
            ("Re: invoice March", "Please send invoice."),
            ("March invoice", "Could you send me the invoice for March"),
            ("Invoice please", "Send me the invoice, March."),
            ("Fwd: invoice", "invoice for march please")]


def test_short_texts_are_not_comparable():
    assert not clusters.comparable(clusters.text_of("Help", ""))
    assert not clusters.comparable(clusters.text_of("help!", "help"))
    assert not clusters.comparable(clusters.text_of(*INVOICES[0]))
    assert all(clusters.comparable(clusters.text_of(s, t)) for s, t in SYNC)


def test_short_routine_mails_neither_open_nor_join_a_cluster(ctx):
    made = [_case(s, t, T0 + timedelta(minutes=i), contact=f"c{i}@x{i}.example", type="bug")
            for i, (s, t) in enumerate(INVOICES)]
    found = clusters.run(ctx, T0 + timedelta(minutes=10))
    assert found.joined == [] and found.suggested == [] and found.paged == []
    assert len({_cluster_of(c) for c in made}) == len(made)  # each alone, none grows
    assert {m.similarity for m in ClusterMember.select()} == {0.0}  # none was compared
    # a full-length case like them is not drawn into them either
    full = _case("Invoice for March missing", "Please send me the invoice for March, the PDF download page shows "
                 "an error and the accounting export is empty", T0 + timedelta(minutes=20), contact="a@b.example")
    found = clusters.run(ctx, T0 + timedelta(minutes=21))
    assert found.joined == [] and found.opened == [_cluster_of(full)]
    assert clusters.run(ctx, T0 + timedelta(minutes=30)).total == 0  # short ones are not read again
    assert not _mails("known_issue_suggestion") and not _mails("known_issue_page")


@pytest.mark.parametrize("kind", ["enhancement", "admin"])
def test_six_alike_wishes_or_tasks_suggest_a_known_issue_but_page_nobody(ctx, kind):
    made = [_case(s, t, T0 + timedelta(minutes=i), contact=f"c{i}@x{i}.example", type=kind)
            for i, (s, t) in enumerate(SYNC)]
    found = clusters.run(ctx, T0 + timedelta(minutes=10))
    cluster = Cluster.get_by_id(_cluster_of(made[0]))
    assert cluster.size == 6 and found.suggested == [cluster.id] and found.paged == []
    assert cluster.paged_at is None and not _mails("known_issue_page")
    assert len(_mails("known_issue_suggestion")) == 2


def test_six_alike_questions_page_on_call_an_outage_may_be_asked(ctx):
    made = [_case(s, t, T0 + timedelta(minutes=i), contact=f"c{i}@x{i}.example", type="request")
            for i, (s, t) in enumerate(SYNC)]
    found = clusters.run(ctx, T0 + timedelta(minutes=10))
    cluster = Cluster.get_by_id(_cluster_of(made[0]))
    assert cluster.size == 6 and found.paged == [cluster.id] and cluster.paged_at is not None
    assert len(_mails("known_issue_page")) == 1


def _site(db_url, make_config, agents):
    config = load(make_config(database=db_url, agents=agents, extra={"secret": SECRET},
                              mailboxes=[dict(name="support", host="127.0.0.1", port=1, username="u", password="p",
                                              address="support@example.com")]))
    db.open_database(config.database)
    return load_context(config, Clock(T0))


def test_without_a_lead_or_anyone_on_call_nothing_is_claimed_and_a_later_pass_tries_again(db_url, make_config):
    ctx = _site(db_url, make_config, {"zed": dict(address="zed@agents.example", teams="Support Team", hours=ALWAYS)})
    try:
        made = [_case(s, t, T0 + timedelta(minutes=i), contact=f"c{i}@x{i}.example")
                for i, (s, t) in enumerate(SYNC)]
        found = clusters.run(ctx, T0 + timedelta(minutes=10))
        cluster = Cluster.get_by_id(_cluster_of(made[0]))
        assert cluster.size == 6 and found.suggested == [] and found.paged == []
        assert cluster.suggested_at is None and cluster.paged_at is None
        assert not _mails("known_issue_suggestion") and not _mails("known_issue_page")
        # the next case of the cluster finds the claims still open (still nobody: still unclaimed)
        _case(*SYNC[0], T0 + timedelta(minutes=20), contact="seventh@x.example")
        found = clusters.run(ctx, T0 + timedelta(minutes=21))
        assert found.joined and found.suggested == [] and Cluster.get_by_id(cluster.id).suggested_at is None
    finally:
        db.close()


def test_with_nobody_on_call_the_leads_are_paged(db_url, make_config):
    agents = {"lena": dict(address="lena@agents.example", teams="Support Team", hours=ALWAYS, roles="lead"),
              "zed": dict(address="zed@agents.example", teams="Support Team", hours=ALWAYS)}
    ctx = _site(db_url, make_config, agents)
    try:
        assert oncall.settings(ctx.config) is None
        made = [_case(s, t, T0 + timedelta(minutes=i), contact=f"c{i}@x{i}.example")
                for i, (s, t) in enumerate(SYNC)]
        found = clusters.run(ctx, T0 + timedelta(minutes=10))
        cluster = Cluster.get_by_id(_cluster_of(made[0]))
        assert found.suggested == [cluster.id] and found.paged == [cluster.id] and cluster.paged_at is not None
        [page] = _mails("known_issue_page")
        assert page.to_addr == "lena@agents.example"
        text = _text(page)
        assert "nobody is on call, so each lead is paged" in text and "We are investigating reports" in text
    finally:
        db.close()


def test_a_known_issues_open_cases_leave_out_resolved_and_pending_closure(ctx):
    made = [_case(s, t, T0 + timedelta(minutes=i), contact=f"c{i}@x{i}.example") for i, (s, t) in enumerate(SYNC[:4])]
    for case, status in zip(made, ("resolved", "pending_closure", "closed", "assigned")):
        cases.set_field(case, "known_issue", "5-calendar-sync", actor="lena@agents.example",
                        now=T0 + timedelta(hours=1))
        Case.update(status=status).where(Case.id == case.id).execute()
    built = report.build(ctx, day=T0.date(), now=T0 + timedelta(hours=2))
    [known] = built.data["known_issues"]
    assert len(known["cases"]) == 4 and known["open"] == 1
    assert "5-calendar-sync: 4 cases, 1 open" in built.text
