"""merge=N: this case is a duplicate of case N, which goes on. Nothing is moved or
deleted: every message and event stays where it was, the two cases are linked
(`merged_into`), and this one is closed. Later mail that threads to it — its
token in a subject, a reply to one of its mails — lands on case N (`thread`
follows the link), and reply tokens of this case count for case N."""

from __future__ import annotations

from mailproc import cases
from mailproc.commands._common import Change, CommandError, need_value, set_status
from mailproc.models import Case, CaseLink

name = "merge"
syntax = "merge=N"
help = "this case duplicates case N: close it, link it, and send its later mail to N"


def run(ctx, case, value, *, actor, now, message):
    written = need_value(name, value, syntax).lstrip("#")
    if not written.isdigit():
        raise CommandError(f"merge={value}: give the number of the case that goes on (merge=123)")
    target = Case.get_or_none(Case.id == int(written))
    if target is None:
        raise CommandError(f"merge={value}: there is no case #{written}")
    if target.id == case.id:
        raise CommandError("merge: a case cannot be merged into itself")
    if cases.survivor(target.id) == case.id:
        raise CommandError(f"merge={value}: case #{target.id} was merged into this one; merge the other way")
    if CaseLink.select().where(CaseLink.case == case, CaseLink.kind == "merged_into").exists():
        raise CommandError("merge: this case was merged already")
    cases.link(case, target, "merged_into", actor=actor, now=now, rule=f"command:{name}", message=message.row,
               detail=f"merged into case #{target.id}", other_detail=f"case #{case.id} merged into this one")
    set_status(case, "closed", command=name, actor=actor, now=now, message=message)
    return Change(None, None, target.id, f"merged into case #{target.id} (this case is closed; its later mail "
                                         f"goes to #{target.id})")
